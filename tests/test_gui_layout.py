"""The viewer with every CCD plugin open fits a 1280x800 laptop screen."""

import shutil

import pytest

from gui_support import gui, gui_session  # noqa: F401 (pytest fixtures)

pytestmark = pytest.mark.gui

#: The laptop screen.
WIDTH, HEIGHT = 1280, 800
#: Global plugin -> (its tab, a widget of its panel).
GLOBALS = {"CCDBrowser": ("CCD Browser", "tree"), "CCDWatch": ("CCD Watch", "watch"),
           "CCDMasters": ("CCD Masters", "list"),
           "CCDInspect": ("CCD Inspect", "characterise")}


def inside(widget, window):
    """True if ``widget`` is shown and lies within ``window`` (Qt widgets)."""
    from qtpy import QtCore
    if not widget.isVisible():
        return False
    top_left = widget.mapTo(window, QtCore.QPoint(0, 0))
    return (top_left.x() >= 0 and top_left.y() >= 0
            and top_left.x() + widget.width() <= window.width()
            and top_left.y() + widget.height() <= window.height())


def test_every_ccd_plugin_open_fits_1280x800(gui, sample_night_dir, tmp_path):
    window = gui.viewer.window
    old = window.size()
    try:
        window.resize(WIDTH, HEIGHT)
        # A copy: the viewer may write beside the frames it shows (Ginga's
        # thumbnails), and the session's sample night is shared.
        raw = tmp_path / "raw"
        shutil.copytree(sample_night_dir, raw)
        browser = gui.open_night(raw, output=tmp_path / "out")
        plugins = {name: gui.global_plugin(name) for name in GLOBALS}
        light = gui.session.frames("light")[0]
        gui.select_row(browser.w.tree, browser.path_of(light.path))
        gui.wait_for(lambda: gui.channel_image("Image") is not None, "the light")
        calibrate = gui.local_plugin("Image", "CCDCalibrate")
        gui.pump(0.5)
        # no panel forces the window taller or wider than the screen
        assert window.minimumSizeHint().height() <= HEIGHT
        assert (window.width(), window.height()) == (WIDTH, HEIGHT)
        # each panel's buttons are reachable: on its tab, Close and Help
        # are inside the window, the rest scrolls
        for name, plugin in plugins.items():
            tab, widget = GLOBALS[name]
            gui.fv.ds.raise_tab(tab)
            gui.pump(0.1)
            scroll = _scroll_area_of(plugin.w[widget])
            assert scroll is not None, name
            assert inside(scroll, window), name
        # the Dialogs tab stays reachable, and CCD Calibrate's buttons in it
        gui.fv.ds.raise_tab("Dialogs")
        gui.pump(0.1)
        assert inside(_scroll_area_of(calibrate.w.calibrate), window)
        screenshot = gui.screenshot("window_1280x800")
        assert screenshot.stat().st_size > 10000
    finally:
        window.resize(old)
        gui.pump(0.1)
    assert not gui.new_errors()


def _scroll_area_of(ginga_widget):
    """The QScrollArea a plugin's panel sits in (see ``common.finish_panel``)."""
    from qtpy import QtWidgets
    widget = ginga_widget.get_widget()
    while widget is not None and not isinstance(widget, QtWidgets.QScrollArea):
        widget = widget.parentWidget()
    return widget
