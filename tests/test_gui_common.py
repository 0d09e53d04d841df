"""The shared GUI pieces: background task runner, folder row, message area, session,
button rows, the result channel."""

import threading

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.errors import CcdcalError
from ginga_ccdcal.gui.common import (FolderRow, MessageArea, Session,
                                         TaskPanel, add_close_help,
                                         default_output_folder, float_spin,
                                         panel_box, plugin_button,
                                         result_channel_name, show_calibrated)

from gui_support import gui, gui_session  # noqa: F401 (pytest fixtures)

pytestmark = pytest.mark.gui


class Outcome:
    """Collects what a TaskPanel reports back on the GUI thread."""

    def __init__(self):
        self.done = self.error = None
        self.cancelled = None
        self.thread = None

    def on_done(self, result):
        self.done, self.thread = result, threading.current_thread()

    def on_error(self, message, cancelled):
        self.error, self.cancelled = message, cancelled
        self.thread = threading.current_thread()

    @property
    def finished(self):
        return self.thread is not None


def test_task_runs_off_the_gui_thread_and_reports_progress(gui):
    panel = TaskPanel(gui.fv, "test")
    outcome = Outcome()
    halfway = threading.Event()
    go_on = threading.Event()
    seen = {}

    def work(progress, cancel):
        seen["thread"] = threading.current_thread()
        progress(1, 2, "first half")
        halfway.set()
        assert go_on.wait(10)
        return 42

    assert panel.run(work, on_done=outcome.on_done, label="Testing")
    assert panel.busy
    # a second task is refused while the first runs
    assert not panel.run(work, on_done=outcome.on_done)
    gui.wait_for(lambda: halfway.is_set() and panel.bar.get_widget().value() == 50,
                 "the progress bar to reach 50 %")
    assert panel.status.get_text() == "Testing: first half"
    assert panel.cancel_button.get_enabled()
    go_on.set()
    gui.wait_for(lambda: outcome.finished, "the task to finish")
    assert outcome.done == 42
    assert seen["thread"] is not threading.main_thread()
    assert outcome.thread is threading.main_thread()
    assert not panel.busy and not panel.cancel_button.get_enabled()
    assert panel.bar.get_widget().value() == 100


def test_cancel_button_stops_the_work(gui):
    panel = TaskPanel(gui.fv, "test")
    outcome = Outcome()
    started = threading.Event()

    def work(progress, cancel):
        started.set()
        for _ in range(1000):
            cancel.check()
            threading.Event().wait(0.01)
        return "not cancelled"

    panel.run(work, on_done=outcome.on_done, on_error=outcome.on_error, label="Long")
    gui.wait_for(started.is_set, "the task to start")
    gui.click(panel.cancel_button)
    gui.wait_for(lambda: outcome.finished, "the cancelled task to end")
    assert outcome.done is None
    assert outcome.cancelled is True
    assert panel.status.get_text() == "Long: cancelled"


def test_user_errors_become_messages_and_bugs_do_not_show_tracebacks(gui):
    panel = TaskPanel(gui.fv, "test")
    outcome = Outcome()

    def user_error(progress, cancel):
        raise CcdcalError("/data/x.fits: truncated FITS")

    panel.run(user_error, on_done=outcome.on_done, on_error=outcome.on_error)
    gui.wait_for(lambda: outcome.finished, "the failing task to end")
    assert outcome.error == "/data/x.fits: truncated FITS"
    assert outcome.cancelled is False
    assert not gui.new_errors()

    outcome = Outcome()

    def bug(progress, cancel):
        return {}["missing"]

    panel.run(bug, on_done=outcome.on_done, on_error=outcome.on_error)
    gui.wait_for(lambda: outcome.finished, "the buggy task to end")
    assert "KeyError" in outcome.error and "Traceback" not in outcome.error
    # the traceback went to the log, for whoever debugs it
    assert any("Traceback" in e for e in gui.new_errors())
    gui.viewer.logged_errors.clear()


def test_folder_row_reports_the_typed_folder(gui, tmp_path):
    row = FolderRow("Folder:")
    got = []
    row.add_callback("activated", lambda r, path: got.append(path))
    row.set_path(tmp_path)
    assert row.get_path() == str(tmp_path)
    row.entry.get_widget().returnPressed.emit()
    assert got == [str(tmp_path)]
    row.set_path("")
    assert row.get_path() is None


def test_message_area_shows_lines(gui):
    area = MessageArea("Messages")
    area.set_lines(["one", "two"])
    area.add_line("three")
    assert area.lines == ["one", "two", "three"]
    assert area.text.get_text() == "one\ntwo\nthree"
    area.clear()
    assert area.text.get_text() == ""


def test_session_defaults_and_callbacks(tmp_path):
    session = Session()
    events = []
    session.add_callback("scan-changed", lambda s, scan: events.append(("scan", scan)))
    session.add_callback("masters-changed", lambda s, f: events.append(("masters", f)))
    assert session.output_folder is None and session.masters_folder is None
    raw = tmp_path / "raw"
    session.overrides[str(tmp_path / "elsewhere" / "a.fits")] = "flat"
    session.set_scan(str(raw), "SCAN")
    assert events == [("scan", "SCAN")]
    # overrides of another folder do not follow to this one
    assert session.overrides == {}
    assert session.output_folder == str(tmp_path / "raw_reduced")
    assert session.masters_folder == str(tmp_path / "raw_reduced" / "masters")
    session.set_masters_folder(tmp_path / "m")
    assert events[-1] == ("masters", str(tmp_path / "m"))
    assert session.masters() == []
    session.reset()
    assert session.scan is None and session.masters_folder is None


def test_default_output_folder_is_a_sibling(tmp_path):
    assert default_output_folder(str(tmp_path / "night") + "/") == \
        str(tmp_path / "night_reduced")


def test_show_calibrated_puts_the_frame_in_the_result_channel(gui, tmp_path):
    from astropy.nddata import CCDData
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    header = fits.Header({"CALSTAT": "BDF", "OBJECT": "M42"})
    ccd = CCDData(data, unit="adu", header=header)
    path = str(tmp_path / "light_007.fits")
    assert result_channel_name("Image") == "Image_cal"
    assert result_channel_name("Image_cal") == "Image_cal"
    image = show_calibrated(gui.fv, ccd, path, result_channel_name("Image"))
    assert gui.fv.get_channel_info().name == "Image_cal"
    shown = gui.channel_image("Image_cal")
    assert shown is image
    assert np.array_equal(shown.get_data(), data)
    assert (shown.get("name"), shown.get("path")) == ("light_007_cal", path)
    assert shown.get_header()["OBJECT"] == "M42"
    settings = gui.fv.get_channel("Image_cal").viewer.get_settings()
    assert settings.get("autocut_method") == "zscale"
    assert settings.get("autocuts") == "override"
    show_calibrated(gui.fv, ccd, path, "Other_cal", autocut_method="minmax")
    assert gui.fv.get_channel_info().name == "Other_cal"
    assert gui.fv.get_channel("Other_cal").viewer.get_settings().get(
        "autocut_method") == "minmax"


class FakePlugin:
    def __init__(self):
        self.calls = []

    def close(self):
        self.calls.append("close")

    def help(self):
        self.calls.append("help")


def test_close_help_row_calls_the_plugin(gui):
    from ginga.gw import Widgets
    plugin = FakePlugin()
    box = panel_box()
    row = add_close_help(plugin, box)
    assert box.get_children() == [row]
    close, helpb = [w for w in row.get_children() if isinstance(w, Widgets.Button)]
    assert (close.get_text(), helpb.get_text()) == ("Close", "Help")
    gui.click(helpb)
    gui.click(close)
    assert plugin.calls == ["help", "close"]


def test_plugin_button_opens_the_plugin(gui):
    button = plugin_button(gui.fv, "Masters...", "CCDMasters", "tip")
    assert not gui.fv.gpmon.is_active("CCDMasters")
    gui.click(button)
    assert gui.fv.gpmon.is_active("CCDMasters")


def test_float_spin_keeps_its_limits(gui):
    spin = float_spin(2.5, 0.5, 20.0, 0.5)
    assert spin.get_value() == 2.5
    spin.set_value(50.0)
    assert spin.get_value() == 20.0


def test_session_reports_stale_masters(tmp_path):
    session = Session()
    seen = []
    session.add_callback("masters-stale", lambda s, masters: seen.append(masters))
    session.report_stale(("m1", "m2"))
    assert seen == [["m1", "m2"]]
    assert session.aliases is None
