"""The notebook widgets (ginga_ccdcal.notebook) and the CCD lab notebook.

The widgets are driven here in-process, as a notebook would drive them,
and checked against the core functions they call; the lab notebook runs top
to bottom in a real kernel (nbclient), where any error fails.
"""

import os
import re
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("ipywidgets", reason="the 'notebook' extra is not installed")

from ginga_ccdcal.calibrate import calibrate_frame  # noqa: E402
from ginga_ccdcal.group import group_frames  # noqa: E402
from ginga_ccdcal.masters import build_masters, load_masters  # noqa: E402
from ginga_ccdcal.match import match_light  # noqa: E402
from ginga_ccdcal.notebook import (BackgroundTask, CalibrateView, FrameBrowser,  # noqa: E402
                                   MasterBuilder, StepsView, frame_header_rows,
                                   parse_group_keys)
from ginga_ccdcal.scan import scan_folder  # noqa: E402
from ginga_ccdcal.steps import calibration_steps  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from notebook_support import ROOT, WIDGET_STATE, executed_notebook  # noqa: E402


@pytest.fixture(scope="module")
def scan(sample_night):
    return scan_folder(sample_night.path)


@pytest.fixture(scope="module")
def masters_dir(scan, tmp_path_factory):
    folder = tmp_path_factory.mktemp("masters")
    build_masters(scan.frames, str(folder))
    return folder


# -- the browser -------------------------------------------------------------------

def test_browser_tree_has_nested_groups_with_counts(scan):
    browser = FrameBrowser(scan, "frametype, exptime")
    lines = browser.tree_lines()
    assert [text for text, _ in browser.tree.options] == [text for text, _ in lines]
    # The core's groups, in order, indented by depth, with their counts.
    indent = "\u2003"
    expected = [f"{indent * depth}\u25be {group.label}  ({len(group.frames)} frames)"
                for top in group_frames(scan.frames, ("frametype", "exptime"))
                for depth, group in top.walk()]
    assert [text for text, (kind, _) in lines if kind == "group"] == expected
    assert "\u2003\u25be exptime = 15  (10 frames)" in expected
    # Every frame appears once, under its innermost group.
    frames = [ident for _, (kind, ident) in lines if kind == "frame"]
    assert sorted(frames) == sorted(f.path for f in scan.frames)
    browser.regroup("imagetyp; ccd-temp; exptime")
    assert browser.group_keys == ("imagetyp", "ccd-temp", "exptime")
    depth3 = [text for text, (kind, _) in browser.tree.options
              if kind == "group" and text.startswith("\u2003\u2003\u25be")]
    assert depth3 and all("exptime = " in text for text in depth3)


def test_clicking_a_frame_shows_it_and_its_header(scan):
    browser = FrameBrowser(scan)
    light = scan.of_type("light")[0]
    browser.select(light.path)
    assert browser.view.data.shape == light.shape
    assert len(bytes(browser.view.image_widget.value)) > 1000   # a JPEG Ginga drew
    assert light.name in browser.view.title.value
    summary = browser.summary.value
    assert "IMAGETYP" in summary and "LIGHT" in summary and "30 s" in summary
    rows = frame_header_rows(light)
    assert rows[0] == ("type", "light", "IMAGETYP")
    assert ("EXPTIME", "30.0", "card") in rows
    # A group: its frames listed.
    group_value = next(value for text, value in browser.tree.options if "bias" in text)
    browser.tree.value = group_value
    assert "10 frames" in browser.summary.value and "flood-flat-001bias.fit" in browser.summary.value


def test_group_keys_parsing():
    assert parse_group_keys(" frametype ,FILTER;exptime ") == ("frametype", "FILTER", "exptime")
    assert parse_group_keys("") == ("frametype", "exptime")


# -- background work ---------------------------------------------------------------

def test_background_task_reports_progress_and_cancels():
    task = BackgroundTask()
    started, release = threading.Event(), threading.Event()
    outcome = []

    def work(progress, cancel):
        progress(1, 4, "first quarter")
        started.set()
        release.wait(30)
        cancel.check()
        outcome.append("finished")

    assert task.run(work, outcome.append, label="test")
    assert started.wait(30)
    assert task.bar.value == 250 and "first quarter" in task.label.value
    assert not task.cancel_button.disabled
    assert not task.run(work, outcome.append)          # one run at a time
    task.cancel()
    release.set()
    assert task.wait(30)
    assert outcome == [] and task.error == "cancelled"
    assert task.bar.bar_style == "danger" and "cancelled" in task.label.value
    assert task.cancel_button.disabled


def test_background_task_shows_a_core_error_in_one_line():
    from ginga_ccdcal.errors import FrameError
    task = BackgroundTask()

    def work(progress, cancel):
        raise FrameError("night/x.fits", "truncated")

    task.run(work, lambda result: None, label="reading")
    task.wait(30)
    assert task.error == "night/x.fits: truncated"
    assert "Traceback" not in task.label.value and "x.fits" in task.label.value


# -- masters and calibration ---------------------------------------------------------

def test_master_builder_makes_the_cores_masters(scan, masters_dir, tmp_path):
    builder = MasterBuilder(scan, tmp_path / "m")
    progress = []
    builder.task.bar.observe(lambda change: progress.append(change["new"]), names="value")
    builder.build()
    assert builder.wait(120)
    assert builder.task.error is None, builder.task.label.value
    made = {m.name for m in builder.masters}
    assert made == {m.name for m in load_masters(str(masters_dir))}
    assert made == {"master_bias.fits", "master_dark_15s.fits", "master_dark_30s.fits",
                    "master_flat_R.fits"}
    for master in builder.masters:
        from ginga_ccdcal.masters import load_master
        same = load_master(os.path.join(masters_dir, master.name))
        np.testing.assert_array_equal(load_master(master.path).data, same.data)
    assert progress and progress[-1] == 1000 and progress == sorted(progress)
    assert "made master_flat_R.fits" in builder.log.value
    assert builder.view.data is not None
    # Again: the masters are there already, kept, and said so.
    builder.build("bias")
    builder.wait(60)
    assert "kept master_bias.fits" in builder.log.value


def test_master_builder_cancel_stops_the_core(scan, tmp_path):
    """Cancel reaches the combination through the core's CancelToken: it
    stops at its next check and writes nothing."""
    builder = MasterBuilder(scan, tmp_path)

    def cancel_at_first_report(change):
        # Observers run in the worker thread, inside the core's progress call.
        if change["new"] > 0:
            builder.task.cancel()

    builder.task.bar.observe(cancel_at_first_report, names="value")
    builder.build()
    assert builder.wait(120)
    assert builder.task.error == "cancelled"
    assert builder.task.bar.value < 1000
    assert "cancelled" in builder.task.label.value
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".fits")]


def test_master_builder_options_come_from_the_widgets(scan, tmp_path):
    builder = MasterBuilder(scan, tmp_path)
    builder.methods["bias"].value = "median"
    builder.clip.value = True
    options = builder.current_options()
    assert options.method["bias"] == "median" and options.sigma_clip["flat"]
    assert builder.options.method["bias"] == "average"     # the defaults untouched


def test_calibrate_view_shows_what_calibrate_frame_returns(scan, masters_dir):
    view = CalibrateView(scan, str(masters_dir))
    light = scan.of_type("light")[3]
    view.calibrate(light.path)
    assert view.wait(60) and view.task.error is None
    expected = calibrate_frame(light, match_light(light, load_masters(str(masters_dir))))
    np.testing.assert_array_equal(view.result.data, expected.data)
    np.testing.assert_array_equal(view.cal_view.data, expected.data)
    assert view.raw_view.data.shape == light.shape
    for line in view.match.describe():
        assert line.split(" - ")[0] in view.reasons.value
    assert "OTBDF" in view.cal_view.title.value


def test_calibrate_view_says_what_was_not_done(scan, masters_dir, tmp_path):
    """Without a master flat the widget says so, in the core's words."""
    masters = [m for m in load_masters(str(masters_dir)) if m.kind != "flat"]
    view = CalibrateView(scan, masters)
    view.calibrate()
    view.wait(60)
    assert view.result.header["CALSTAT"] == "OTBD"
    assert "flat NOT applied: no master flat for filter R" in view.reasons.value
    assert "#b00" in view.reasons.value


def test_calibrate_view_without_lights_says_so(scan, masters_dir):
    from ginga_ccdcal.scan import ScanResult
    view = CalibrateView(ScanResult(scan.folder, frames=scan.of_type("bias")), str(masters_dir))
    assert view.calibrate() is False
    assert "no light frames" in view.task.label.value and view.result is None


def test_steps_view_is_the_cores_steps(scan, masters_dir):
    light = scan.of_type("light")[0]
    match = match_light(light, load_masters(str(masters_dir)))
    view = StepsView(light, match)
    expected = calibration_steps(light, match)
    assert [s.title for s in view.steps] == ["raw", "- bias", "- dark", "/ flat"]
    for step, same, picture in zip(view.steps, expected, view.views):
        np.testing.assert_array_equal(step.data, same.data)
        assert same.note in picture.caption.value
        assert len(bytes(picture.image_widget.value)) > 1000
    np.testing.assert_array_equal(view.steps[-1].data, calibrate_frame(light, match).data)


# -- the documented in-memory example -------------------------------------------------

def _docs_example():
    from docutils import nodes
    from docutils.core import publish_doctree
    with open(os.path.join(ROOT, "docs", "notebook.rst"), encoding="utf-8") as stream:
        tree = publish_doctree(stream.read(), settings_overrides={"report_level": 5,
                                                                  "halt_level": 5})
    blocks = [n.astext() for n in tree.findall(nodes.literal_block)
              if "calibrate_ccd" in n.astext()]
    assert len(blocks) == 1
    return blocks[0]


def test_in_memory_example_in_the_docs_runs(sample_night, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.symlink(sample_night.path, tmp_path / "night")
    namespace = {}
    exec(compile(_docs_example(), "notebook.rst", "exec"), namespace)
    assert namespace["in_memory"].unit == "electron"
    assert "electron OTBDF" in capsys.readouterr().out
    np.testing.assert_array_equal(namespace["in_memory"].data, namespace["from_file"].data)


# -- the lab notebook -----------------------------------------------------------------

def _outputs(notebook):
    text = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", output
            if output.output_type == "stream":
                assert output.name == "stdout", output.text
                text.append(output.text)
    return "".join(text)


def test_lab_notebook_runs_top_to_bottom():
    notebook = executed_notebook()
    text = _outputs(notebook)
    assert "78 raw frames written" in text
    assert "same master bias both ways: True" in text
    assert "in memory == from the file: True" in text
    before = float(re.search(r"before the flat: ([\d.]+)", text).group(1))
    after = float(re.search(r"after the flat:\s+([\d.]+)", text).group(1))
    assert before < 0.9 and abs(after - 1) < 0.02
    noise, predicted = map(float, re.search(
        r"scatter ([\d.]+) ADU; photon \+ read noise predict ([\d.]+)", text).groups())
    assert noise == pytest.approx(predicted, rel=0.1)
    ratio = float(re.search(r"30 s / 15 s = ([\d.]+)", text).group(1))
    assert ratio == pytest.approx(2.0, rel=0.1)
    # Every widget was drawn into the saved widget state: the export and the
    # documentation show them.
    state = notebook.metadata["widgets"][WIDGET_STATE]["state"]
    classes = {c for model in state.values() for c in model["state"].get("_dom_classes", [])}
    assert {"ccdcal-browser", "ccdcal-masters", "ccdcal-calibrate", "ccdcal-steps"} <= classes
    images = [m for m in state.values() if m["model_name"] == "ImageModel"]
    assert len(images) == 8 and all(m.get("buffers") for m in images)


def test_lab_notebook_is_stored_without_outputs():
    """The outputs come from running it (tests, docs): none are committed."""
    import nbformat
    notebook = nbformat.read(os.path.join(ROOT, "docs", "notebooks", "ccd_lab.ipynb"),
                             as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    assert "widgets" not in notebook.metadata
