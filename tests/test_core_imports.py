"""The core installs and imports without Ginga, a Qt binding or matplotlib.

Those come with the extras ``gui`` and ``plots``; every other module of
the package must import (and so the CLI and notebooks must work) in an
environment that has none of them.  Run in a fresh interpreter whose
import system refuses them, as if they were not installed.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Top-level packages only the extras bring.
BLOCKED = ("qtpy", "PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6",
           "matplotlib", "ginga", "PIL")

SCRIPT = r"""
import importlib, pkgutil, sys

BLOCKED = {blocked!r}
# None in sys.modules: "import X" raises ModuleNotFoundError and
# importlib.util.find_spec(X) gives None, as for a package not installed
for name in BLOCKED:
    sys.modules[name] = None
import ginga_ccdcal
# the front ends of the extras: the viewer ("gui") and notebook widgets ("notebook")
FRONT_ENDS = ("ginga_ccdcal.gui", "ginga_ccdcal.notebook")
names = sorted(m.name for m in pkgutil.walk_packages(ginga_ccdcal.__path__, "ginga_ccdcal.")
               if not m.name.startswith(FRONT_ENDS))
for name in names:
    if name == "ginga_ccdcal.__main__":
        continue
    importlib.import_module(name)
leaked = sorted(n for n, m in sys.modules.items() if m is not None
                and n.split(".")[0] in BLOCKED)
assert not leaked, leaked
from ginga_ccdcal.cli import main
print(len(names), "modules")
"""


def run(code, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_core_module_imports_without_qt_ginga_or_matplotlib():
    proc = run(SCRIPT.format(blocked=BLOCKED))
    assert proc.returncode == 0, proc.stderr[-3000:]
    count = int(proc.stdout.split()[0])
    assert count >= 20      # the walk found the package's modules


def test_the_gui_command_says_how_to_install_the_viewer():
    code = SCRIPT.format(blocked=BLOCKED).split("import ginga_ccdcal\n")[0] + (
        "from ginga_ccdcal.cli import main\nsys.exit(main(['gui', '--screenshot', 'x.png']))")
    proc = run(code)
    assert proc.returncode == 2
    assert "pip install 'ginga-ccdcal[gui]'" in proc.stderr
    assert "Traceback" not in proc.stderr


#: What the commands that calibrate nothing must not import: each costs a
#: large part of a second at start-up (issue 15).
HEAVY = ("ccdproc", "astropy.nddata", "scipy", "matplotlib", "dask", "distributed")


def test_scan_and_masters_commands_import_nothing_heavy(tmp_path):
    """``scan`` and ``masters`` start without ccdproc, astropy.nddata, scipy
    or dask: their work needs none of them."""
    script = (
        "import sys\n"
        "from ginga_ccdcal import cli\n"
        "from ginga_ccdcal.sample import SyntheticCamera, write_night\n"
        f"heavy = {HEAVY!r}\n"
        f"write_night({str(tmp_path / 'raw')!r}, SyntheticCamera((16, 20), seed=1),\n"
        "            [('bias', 0.0, None, 3)], style='maxim', seed=1)\n"
        "before = {n for n in sys.modules if n.startswith(heavy)}\n"
        f"assert cli.main(['-q', 'scan', {str(tmp_path / 'raw')!r}]) == 0\n"
        f"assert cli.main(['-q', 'masters', {str(tmp_path / 'raw')!r}, '--out',\n"
        f"                 {str(tmp_path / 'm')!r}]) == 0\n"
        "pulled = sorted({n.split('.')[0] if not n.startswith('astropy') else n\n"
        "                 for n in sys.modules if n.startswith(heavy)} - before)\n"
        "assert not pulled, pulled\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
