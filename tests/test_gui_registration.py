"""The real reference viewer finds our plugins through their entry points."""

import importlib.metadata
import sys

import pytest

from gui_support import gui, gui_session  # noqa: F401 (pytest fixtures)

pytestmark = pytest.mark.gui

EXPECTED = {"CCDBrowser": "global", "CCDWatch": "global", "CCDMasters": "global",
            "CCDCalibrate": "local", "CCDInspect": "global"}


def test_entry_points_are_installed():
    eps = importlib.metadata.entry_points(group="ginga.rv.plugins")
    names = {ep.name: ep for ep in eps}
    for name in EXPECTED:
        assert name in names, f"entry point {name} missing (pip install -e .?)"
        spec = names[name].load()()
        assert spec.module == name and spec.ptype == EXPECTED[name]


def test_viewer_lists_our_plugins_with_their_types(gui):
    # the viewer was started without --plugins/--modules: only the entry
    # points can have brought these in
    assert not gui.viewer.rv.settings.get("global_plugins", [])
    assert not gui.viewer.rv.settings.get("local_plugins", [])
    specs = {spec.get("name"): spec for spec in gui.fv.get_plugins()}
    for name, ptype in EXPECTED.items():
        assert name in specs, f"{name} not registered with the viewer"
        assert specs[name].ptype == ptype
        assert specs[name].category == "CCD Calibration"


def test_plugins_load_and_open_without_errors(gui):
    fv = gui.fv
    for name in ("CCDBrowser", "CCDWatch", "CCDMasters", "CCDInspect"):
        assert fv.gpmon.has_plugin(name)
        plugin = gui.global_plugin(name)
        assert fv.gpmon.is_active(name)
        assert str(plugin) == name.lower()
        # the module docstring is the help text Ginga shows
        assert "**Plugin Type: Global**" in sys.modules[type(plugin).__module__].__doc__
    # nothing scanned yet: CCD Inspect says what to do instead of failing
    inspect = fv.gpmon.get_plugin("CCDInspect")
    assert inspect.w.source.get_text().startswith("Choose a folder of raw frames")
    assert not inspect.w.characterise.get_enabled()
    fv.stop_global_plugin("CCDInspect")
    channel = fv.get_channel("Image")
    assert channel.opmon.has_plugin("CCDCalibrate")
    calib = gui.local_plugin("Image", "CCDCalibrate")
    assert channel.opmon.is_active("CCDCalibrate")
    # nothing loaded yet: the plugin says so instead of failing
    assert "**Plugin Type: Local**" in sys.modules[type(calib).__module__].__doc__
    assert "No raw frame" in calib.w.frame.get_text()
    assert not calib.w.calibrate.get_enabled()
    assert not gui.new_errors()


def test_help_shows_this_packages_documentation(gui, monkeypatch, tmp_path):
    from ginga_ccdcal.gui import common
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url))
    # no built documentation: the plugin's own help text, in a Ginga tab
    monkeypatch.setattr(common, "DOCS_PAGE", str(tmp_path / "no-such.html"))
    browser = gui.global_plugin("CCDBrowser")
    assert browser.help() == "HELP: CCDBrowser"
    gui.pump()
    assert "HELP: CCDBrowser" in gui.fv.ds.get_tabnames(None)
    assert opened == []          # never Ginga's online manual
    # built documentation: its section of this package's plugins page
    page = tmp_path / "plugins.html"
    page.write_text("<html></html>")
    monkeypatch.setattr(common, "DOCS_PAGE", str(page))
    watch = gui.global_plugin("CCDWatch")
    watch.help()
    calibrate = gui.local_plugin("Image", "CCDCalibrate")
    calibrate.help()
    assert opened == [f"file://{page}#ccd-watch", f"file://{page}#ccd-calibrate"]
    assert not gui.new_errors()
