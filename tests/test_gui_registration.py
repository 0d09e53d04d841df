"""The real reference viewer finds our plugins through their entry points."""

import importlib.metadata

import pytest

from gui_support import gui, gui_session  # noqa: F401 (pytest fixtures)

pytestmark = pytest.mark.gui

EXPECTED = {"CCDBrowser": "global", "CCDMasters": "global",
            "CCDCalibrate": "local"}


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
