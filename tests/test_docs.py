"""The Sphinx documentation builds without a single warning, and stays in
step with the code: every command, core module and header keyword is on
its page, and the tutorial's Python runs."""

import os
import re
import subprocess
import sys

import pytest

from ginga_ccdcal import classify, provenance
from ginga_ccdcal.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _page(name):
    with open(os.path.join(DOCS, name), encoding="utf-8") as stream:
        return stream.read()


def test_docs_build_without_warnings(tmp_path):
    """``sphinx -W``: a warning anywhere (our pages or a docstring) fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         DOCS, str(tmp_path / "html")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("index", "install", "quickstart", "tutorial", "cli", "plugins",
                 "rules", "api", "characterisation", "performance", "notebook"):
        assert (tmp_path / "html" / f"{page}.html").exists(), page
    # The lab notebook is run by the build and shown with its outputs.
    lab = (tmp_path / "html" / "notebooks" / "ccd_lab.html").read_text(encoding="utf-8")
    assert "in memory == from the file: True" in lab
    assert "application/vnd.jupyter.widget-view+json" in lab
    cli = (tmp_path / "html" / "cli.html").read_text(encoding="utf-8")
    # The help texts are generated from the parser at build time.
    assert "usage: ginga-ccdcal characterise" in cli


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(getattr(a, "choices", None), dict))
    return list(action.choices)


def test_cli_page_has_every_command():
    page = _page("cli.rst")
    documented = re.findall(r"^\.\. ccdcal-help:: (\S+)$", page, re.M)
    assert documented == _subcommands()
    for command in _subcommands():
        assert re.search(rf"^{command}\n-+$", page, re.M), f"no section for {command}"


def test_api_page_has_every_core_module():
    """Every module of the GUI-free core is documented (not the viewer or CLI)."""
    page = _page("api.rst")
    documented = set(re.findall(r"^\.\. automodule:: ginga_ccdcal\.(\w+)$", page, re.M))
    core = {name[:-3] for name in os.listdir(os.path.join(ROOT, "ginga_ccdcal"))
            if name.endswith(".py") and not name.startswith("_")}
    assert core - {"cli", "viewer"} <= documented, core - documented


def test_rules_page_lists_the_keywords_read_and_written():
    page = _page("rules.rst")
    read = (classify.TYPE_KEYWORDS + classify.EXPTIME_KEYWORDS
            + classify.FILTER_KEYWORDS + classify.TEMPERATURE_KEYWORDS)
    missing = [key for key in read if f"``{key}``" not in page]
    assert not missing, f"rules.rst does not say these are read: {missing}"
    # provenance's docstring table: the keywords every product may carry.
    written = re.findall(r"^([A-Z][A-Z0-9-]{2,7})\s{2,}", provenance.__doc__, re.M)
    assert len(written) >= 10
    missing = [key for key in written if key not in page]
    assert not missing, f"rules.rst does not say these are written: {missing}"


def test_screenshots_referenced_exist():
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".rst"):
            for image in re.findall(r"\.\. image:: (\S+)", _page(name)):
                assert os.path.exists(os.path.join(DOCS, image)), (name, image)


def _tutorial_python():
    """The tutorial's Python section: its literal blocks that use the API."""
    from docutils import nodes
    from docutils.core import publish_doctree

    tree = publish_doctree(_page("tutorial.rst"),
                           settings_overrides={"report_level": 5, "halt_level": 5})
    blocks = [node.astext() for node in tree.findall(nodes.literal_block)]
    code = [b for b in blocks if "import" in b and "ginga_ccdcal" in b]
    assert len(code) == 2
    return "\n\n".join(code)


def test_tutorial_python_runs(sample_night_dir, tmp_path, monkeypatch):
    """The tutorial's Python, as printed, on a (small) sample night."""
    monkeypatch.chdir(tmp_path)
    os.symlink(sample_night_dir, tmp_path / "night")
    code = _tutorial_python()
    # The tutorial trims the overscan of the scale-0.25 frames by hand
    # (768 columns); the test night is smaller.
    assert "[:, :768]" in code
    code = code.replace("[:, :768]", f"[:, :{_imaging_width(sample_night_dir)}]")
    namespace = {}
    exec(compile(code, "tutorial.rst", "exec"), namespace)
    assert namespace["ccd"].header["CALSTAT"] == "OTBDF"
    assert namespace["result"].calibration.written
    assert namespace["camera"].gain == pytest.approx(1.5, rel=0.05)


def _imaging_width(folder):
    from ginga_ccdcal.scan import scan_folder
    frame = scan_folder(folder).of_type("bias")[0]
    return int(frame.header["OSCANST"]) - 1
