"""The shared GUI pieces: background task runner, folder row, message area, session,
button rows, the result channel."""

import threading

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.errors import CcdcalError
from ginga_ccdcal.gui.common import (FolderRow, MessageArea, Session,
                                         TaskPanel, add_close_help,
                                         calibrated_image, collect_garbage,
                                         default_output_folder, float_spin,
                                         panel_box, plugin_button,
                                         prepare_result_channel,
                                         result_channel_name, show_calibrated,
                                         show_image)

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
    image = calibrated_image(ccd, path)
    assert show_calibrated(gui.fv, image, result_channel_name("Image")) is image
    # shown in a later turn of the event loop (not in the caller's)
    gui.wait_for(lambda: gui.channel_image("Image_cal") is image, "the calibrated frame")
    assert gui.fv.get_channel_info().name == "Image_cal"
    shown = gui.channel_image("Image_cal")
    assert np.array_equal(shown.get_data(), data)
    assert (shown.get("name"), shown.get("path")) == ("light_007_cal", path)
    assert shown.get_header()["OBJECT"] == "M42"
    settings = gui.fv.get_channel("Image_cal").viewer.get_settings()
    assert settings.get("autocut_method") == "zscale"
    assert settings.get("autocuts") == "override"
    other = calibrated_image(ccd, path, autocut_method="minmax")
    show_calibrated(gui.fv, other, "Other_cal", autocut_method="minmax")
    gui.wait_for(lambda: gui.channel_image("Other_cal") is other, "the second frame")
    assert gui.fv.get_channel_info().name == "Other_cal"
    assert gui.fv.get_channel("Other_cal").viewer.get_settings().get(
        "autocut_method") == "minmax"
    assert gui.fv.get_channel("Other_cal").viewer.get_cut_levels() == (0, 11)


def _sky_frame(shape=(150, 200), seed=3):
    """Sky noise, a gradient and a few bright stars: zscale differs from min/max."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:shape[0], :shape[1]]
    data = 100.0 + 0.05 * x + rng.normal(0.0, 5.0, shape)
    for row, col in rng.integers(10, min(shape) - 10, size=(8, 2)):
        data[row - 1:row + 2, col - 1:col + 2] += 5000.0
    return data.astype(np.float32)


@pytest.mark.parametrize("method", ["zscale", "minmax", "histogram"])
def test_cut_levels_worked_out_off_the_gui_thread_are_ginga_s_own(gui, tmp_path, method):
    """The viewer shows a calibrated frame with the cut levels it would have
    computed itself, and does not compute them (the GUI thread waits for
    that on a full-size frame)."""
    from astropy.nddata import CCDData
    ccd = CCDData(_sky_frame(), unit="adu", header=fits.Header({"OBJECT": "M13"}))
    path = str(tmp_path / "light_001.fits")
    # what Ginga's viewer computes for this image, on its own
    gui.fv.add_channel("Plain")
    plain = gui.fv.get_channel("Plain").viewer
    plain.set_autocut_params(method)
    plain.enable_autocuts("override")
    ginga_image = calibrated_image(ccd, path, autocut_method=method)
    ginga_image.set(ccdcal_cuts=None)
    plain.set_image(ginga_image)
    ginga_cuts = plain.get_cut_levels()

    image = calibrated_image(ccd, path, autocut_method=method)
    method_used, low, high = image.get("ccdcal_cuts")
    assert method_used == method
    # exact, but for "histogram": Ginga's image proxy hands it float64
    # pixels, the image float32 ones, so the bin edges (2048 bins between
    # min and max) differ by a rounding -- a fraction of one bin
    within = (ginga_cuts[1] - ginga_cuts[0]) / 2048 if method == "histogram" else 1e-6
    assert (low, high) == pytest.approx(ginga_cuts, rel=1e-6, abs=within)
    viewer = prepare_result_channel(gui.fv, "Image_cal", method).viewer
    autocuts_seen = []
    original = type(viewer.autocuts).calc_cut_levels
    viewer.autocuts.calc_cut_levels = lambda img: autocuts_seen.append(img) or original(
        viewer.autocuts, img)
    try:
        show_calibrated(gui.fv, image, "Image_cal", autocut_method=method)
        gui.wait_for(lambda: gui.channel_image("Image_cal") is image, "the frame")
        assert viewer.get_cut_levels() == pytest.approx((low, high))
        assert autocuts_seen == [], "the viewer computed the cut levels again"
    finally:
        del viewer.autocuts.calc_cut_levels


def test_cut_levels_made_for_another_method_are_not_used(gui, tmp_path):
    """Levels worked out for one method never stand in for another: a channel
    that is not ours (the user's "Image", its own cut settings) computes them
    itself, as Ginga always does."""
    from astropy.nddata import CCDData
    image = calibrated_image(CCDData(_sky_frame(), unit="adu", header=fits.Header()),
                             str(tmp_path / "a.fits"), autocut_method="minmax")
    viewer = gui.fv.get_channel("Image").viewer
    viewer.set_autocut_params("zscale")
    show_image(gui.fv, image, "Image")
    gui.wait_for(lambda: gui.channel_image("Image") is image, "the frame")
    low, high = viewer.get_cut_levels()
    assert (low, high) != pytest.approx(image.get("ccdcal_cuts")[1:])
    assert (low, high) == pytest.approx(viewer.autocuts.calc_cut_levels(image))
    assert not viewer.get_settings().get("profile_use_cuts")


def test_result_channels_make_no_thumbnails(gui, tmp_path):
    """Ginga's Thumbs plugin would make each shown frame's thumbnail on the
    GUI thread; our channels ask it not to (``genthumb``), the user's keep them."""
    from astropy.nddata import CCDData
    image = calibrated_image(CCDData(_sky_frame(), unit="adu", header=fits.Header()),
                             str(tmp_path / "a.fits"))
    show_calibrated(gui.fv, image, "Image_cal")
    gui.wait_for(lambda: gui.channel_image("Image_cal") is image, "the frame")
    assert gui.fv.get_channel("Image_cal").settings.get("genthumb") is False
    assert gui.fv.get_channel("Image").settings.get("genthumb", True) is True


def test_collections_on_the_gui_thread_walk_only_new_objects(gui):
    """A full collection on the GUI thread walks every tracked object (300 000
    at start-up, 150-300 ms); what survives one is frozen, so the next walks
    only what was made since."""
    import gc
    assert gc.get_freeze_count() > 50000      # frozen at start-up already
    made = [[i] for i in range(5000)]           # new objects since
    assert len(gc.get_objects()) >= 5000
    collect_garbage()
    assert len(gc.get_objects()) < 1000
    assert gc.get_freeze_count() > 50000 + 5000
    del made


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
