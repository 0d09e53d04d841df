"""Driving the real Ginga reference viewer from pytest (Qt offscreen).

Qt allows a single ``QApplication`` per process, so one reference viewer
is made per test session (`gui_session`) and every GUI test borrows it
through the `gui` fixture, which puts the viewer back in its start state
afterwards: our plugins stopped, extra channels deleted, nothing left in
``Image``.

Test modules import the fixtures they use::

    from gui_support import gui, gui_session  # noqa: F401 (fixtures)
"""

import gc
import os
import pathlib

import pytest

from ginga_ccdcal.gui.common import get_session
from ginga_ccdcal.gui.viewer import PLUGIN_NAMES, create_viewer, current_viewer


#: Where the tests save the screenshots shown in the documentation when
#: the environment variable CCDCAL_UPDATE_SCREENSHOTS is set (otherwise
#: they go to the test's temporary folder, so a test run changes no
#: tracked file).
SCREENSHOT_DIR = pathlib.Path(__file__).resolve().parent.parent / "docs" / "screenshots"

#: Seconds a GUI test waits for background work before failing.
WAIT = 60.0


class GuiDriver:
    """What a GUI test needs from the running viewer, in one object.

    Parameters
    ----------
    viewer : ginga_ccdcal.gui.viewer.RunningViewer
    """

    def __init__(self, viewer, tmp_path):
        self.viewer = viewer
        self.tmp_path = tmp_path
        self.fv = viewer.fv
        self._errors_seen = len(viewer.logged_errors)

    # -- event loop ---------------------------------------------------
    def pump(self, seconds=0.0):
        self.viewer.pump(seconds)

    def wait_for(self, predicate, what, timeout=WAIT):
        """Pump events until ``predicate()``; fail the test on timeout."""
        try:
            self.viewer.wait_for(predicate, timeout, what)
        except TimeoutError as exc:
            pytest.fail(f"{exc}; errors logged by the viewer: "
                        f"{self.new_errors() or 'none'}")

    def wait_idle(self, plugin, what=None, timeout=WAIT):
        """Wait until ``plugin.busy`` is false (its background task ended)."""
        self.wait_for(lambda: not plugin.busy,
                      what or f"{plugin} to finish its background work", timeout)

    # -- plugins and channels -----------------------------------------
    @property
    def session(self):
        """The state the CCD plugins share (`ginga_ccdcal.gui.common.Session`)."""
        return get_session(self.fv)

    def open_night(self, folder, output=None):
        """Scan ``folder`` in the CCD Browser, products going to ``output``.

        Returns the browser once the scan is shown.
        """
        if output is not None:
            self.session.output_folder = str(output)
        browser = self.global_plugin("CCDBrowser")
        assert browser.set_folder(str(folder)), "the scan did not start"
        self.wait_idle(browser, f"the scan of {folder}")
        return browser

    def global_plugin(self, name):
        """Start global plugin ``name`` (if needed) and return its object."""
        return self.viewer.global_plugin(name)

    def local_plugin(self, chname, name):
        """Start local plugin ``name`` in ``chname`` and return its object,
        once it has looked at the channel's image (that is done off the
        GUI thread)."""
        plugin = self.viewer.local_plugin(chname, name)
        self.wait_for(lambda: not getattr(plugin, "_looking_up", False),
                      f"{name} to look at the image in {chname}")
        return plugin

    def channel_image(self, chname):
        """The image shown in channel ``chname`` (None if none)."""
        channel = self.fv.get_channel(chname)
        return channel.viewer.get_image()

    def select_row(self, tree, path):
        """Make ``path`` the selected row of a ``Widgets.TreeView``, as a click does.

        Unlike ``TreeView.select_path`` this does not block Qt's signals,
        so the plugin's 'selected' callback runs.
        """
        item = tree._path_to_item(list(path))
        tree.get_widget().setCurrentItem(item)
        self.pump()

    def select_rows(self, tree, paths):
        """Select several rows at once (ctrl-click)."""
        from qtpy import QtCore
        widget = tree.get_widget()
        flags = QtCore.QItemSelectionModel.SelectionFlag
        widget.clearSelection()
        for path in paths:
            widget.setCurrentItem(tree._path_to_item(list(path)), 0,
                                  flags.Select | flags.Rows)
        self.pump()

    def click(self, button):
        """Press a ``ginga.gw.Widgets.Button`` as the user would."""
        button.get_widget().click()
        self.pump()

    # -- checks and output --------------------------------------------
    def new_errors(self):
        """ERROR messages the viewer logged since this test started."""
        return self.viewer.logged_errors[self._errors_seen:]

    def error_panel_text(self):
        """Text in Ginga's Errors tab (where ``fv.show_error`` writes)."""
        from ginga.gw import Widgets
        errors = self.fv.gpmon.get_plugin("Errors")
        return "\n".join(w.get_text() for w in _descendants(errors.msg_list)
                         if isinstance(w, Widgets.TextArea))

    def screenshot(self, name):
        """Save the main window to ``<name>.png`` (see `SCREENSHOT_DIR`)."""
        folder = SCREENSHOT_DIR if os.environ.get("CCDCAL_UPDATE_SCREENSHOTS") \
            else self.tmp_path
        path = folder / f"{name}.png"
        self.viewer.screenshot(str(path))
        return path

    # -- reset between tests --------------------------------------------
    def reset(self):
        fv = self.fv
        for chname in fv.get_channel_names():
            fv.get_channel(chname).opmon.deactivate("CCDCalibrate")
        for name in PLUGIN_NAMES:
            if fv.gpmon.has_plugin(name) and fv.gpmon.is_active(name):
                plugin = fv.gpmon.get_plugin(name)
                if getattr(plugin, "busy", False):
                    plugin.cancel()
                    self.wait_idle(plugin, timeout=30)
                fv.stop_global_plugin(name)
        # what the plugins remember between openings goes back to the start
        for name, saved in _initial_settings.items():
            fv.gpmon.get_plugin(name).settings.set_dict(saved)
        get_session(fv).reset()
        # Not the current channel: Ginga's Pan and Header lose track of a
        # channel deleted while it is current (and fail on its next namesake)
        fv.change_channel("Image")
        self.pump()
        for chname in fv.get_channel_names():
            if chname != "Image":
                fv.delete_channel(chname)
        image = fv.get_channel("Image")
        for name in list(image.get_image_names()):
            image.remove_image(name)
        fv.change_channel("Image")
        self.pump(0.05)
        # Qt objects of the deleted channels and stopped plugins must be
        # freed here, on the GUI thread, not by a garbage collection that
        # happens to run in a worker thread later (Qt crashes then).
        gc.collect()


def tree_rows(tree):
    """What a ``Widgets.TreeView`` shows: ``{first column: (texts, children)}``.

    Read from the Qt widget itself, so a test checks what the user sees.
    """
    def rows(item_at, count):
        out = {}
        for i in range(count):
            item = item_at(i)
            texts = [item.text(c) for c in range(item.columnCount())]
            out[texts[0]] = (texts, rows(item.child, item.childCount()))
        return out
    widget = tree.get_widget()
    return rows(widget.topLevelItem, widget.topLevelItemCount())


def _descendants(widget):
    """Every widget inside a ginga container, depth first."""
    for child in getattr(widget, "get_children", lambda: [])():
        yield child
        yield from _descendants(child)


_initial_settings = {}


@pytest.fixture(scope="session")
def gui_session():
    """The session's reference viewer (created on first use, offscreen)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    viewer = current_viewer()
    if viewer is None:
        viewer = create_viewer(geometry="1500x850")
    for name in ("CCDBrowser", "CCDWatch", "CCDMasters"):
        _initial_settings[name] = viewer.fv.gpmon.get_plugin(name).settings.get_dict()
    yield viewer
    viewer.close()


@pytest.fixture
def gui(gui_session, tmp_path):
    """A `GuiDriver` on the session viewer, reset after the test."""
    driver = GuiDriver(gui_session, tmp_path)
    yield driver
    driver.reset()
