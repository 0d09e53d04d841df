"""CCD Inspect in the real reference viewer: the browser's night characterised
(report text equal to the core's, Ginga plot viewers on tabs holding the
report's numbers), the report written, the bad-pixel mask shown; hot and bad
pixels, imaging area and overscan marked on the image shown, following it and
removed on close; another folder scanned first; a folder without calibration
frames refused politely."""

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.characterise import REPORT_FILES, characterise, characterise_folder
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder

from gui_support import gui, gui_session  # noqa: F401 (pytest fixtures)


def plugin_module():
    """The plugin's module, imported once the viewer chose its Qt toolkit."""
    from ginga_ccdcal.gui import CCDInspect
    return CCDInspect

pytestmark = pytest.mark.gui


@pytest.fixture
def inspect(gui):
    """CCD Inspect, started; stopped and forgetting its report afterwards."""
    plugin = gui.global_plugin("CCDInspect")
    saved = plugin.settings.get_dict()
    yield plugin
    if plugin.busy:
        plugin.cancel()
        gui.wait_idle(plugin, timeout=30)
    gui.fv.stop_global_plugin("CCDInspect")
    plugin.report, plugin.written = None, {}
    plugin.settings.set_dict(saved)


def series(plugin, kind, index=0):
    """The plot viewer ``index`` of tab ``kind``: name -> (N, 2) points drawn."""
    from ginga.plot.plotaide import PlotAide
    aide = plugin.plots[kind][index]
    assert isinstance(aide, PlotAide)
    return {name: np.asarray(plot.points) for name, plot in aide.plots.items()}


def check_plots_hold_the_report(plugin, report):
    """Every plot's series are the report's numbers (not an image of them)."""
    ptc = series(plugin, "ptc")
    for filt in ("R", "V"):
        pairs = sorted((p.signal, p.variance) for p in report.ptc if p.filter == filt)
        assert np.allclose(ptc[f"flats {filt}"], pairs)
        assert isinstance(plugin.plots["ptc"][0].plots[f"flats {filt}"],
                          plugin_module().MarkerPlot)
    bias_pair = [p for p in report.ptc if p.filter is None][0]
    assert np.allclose(ptc["bias pair"], [(bias_pair.signal, bias_pair.variance)])
    fit = ptc[f"gain {report.gain:.3f}"]
    assert np.allclose(fit[:, 1], fit[:, 0] / report.gain + report.read_noise_adu ** 2)

    rows, cols = series(plugin, "bias", 0)["rows"], series(plugin, "bias", 1)["columns"]
    assert np.allclose(rows[:, 1], report.bias_row_profile)
    assert np.allclose(cols[:, 1], report.bias_col_profile)
    assert np.ptp(rows[:, 1]) == pytest.approx(report.bias_row_ptp)

    hot = series(plugin, "hot")
    rates = report.dark_rate_map[np.isfinite(report.dark_rate_map)] * report.gain
    counts, edges = np.histogram(rates, bins=200)
    stairs = hot["pixels"]
    assert np.allclose(stairs[0::2, 0], edges[:-1]) and np.allclose(stairs[1::2, 0],
                                                                    edges[1:])
    assert np.allclose(10 ** stairs[0::2, 1], np.maximum(counts, 0.5))
    threshold = (np.median(rates / report.gain) + report.hot_threshold_adu) * report.gain
    (line_name,) = [name for name in hot if name.startswith("hot above")]
    assert np.allclose(hot[line_name][:, 0], threshold)

    flat = series(plugin, "flat")
    for filt, (radius, level) in report.flat_profiles.items():
        name = f"{filt}: {100 * report.vignetting[filt]:.1f} %"
        assert np.allclose(flat[name], np.column_stack([radius, level]))


def wheel(widget, steps):
    """Turn the mouse wheel ``steps`` notches forward over the middle of ``widget``."""
    from qtpy.QtCore import QPoint, QPointF, Qt
    from qtpy.QtGui import QWheelEvent
    from qtpy.QtWidgets import QApplication
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    for _ in range(steps):
        event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())),
                            QPoint(0, 0), QPoint(0, 120), Qt.NoButton, Qt.NoModifier,
                            Qt.NoScrollPhase, False)
        QApplication.sendEvent(widget, event)
    QApplication.processEvents()


def marks(gui, chname):
    """The objects CCD Inspect marked on channel ``chname`` (None if unmarked)."""
    tag = plugin_module().MARKS_TAG
    canvas = gui.fv.get_channel(chname).viewer.get_canvas()
    if not canvas.has_tag(tag):
        return None
    return canvas.get_object_by_tag(tag).objects


def marked_pixels(objects, colour):
    """(row, column) of the points of ``colour``."""
    return {(round(o.y), round(o.x)) for o in objects
            if o.kind == "point" and o.color == colour}


def boxes(objects):
    """colour -> (x1, y1, x2, y2) of the rectangles."""
    return {o.color: (o.x1, o.y1, o.x2, o.y2) for o in objects if o.kind == "rectangle"}


def measured(lines, *names):
    """The report lines about ``names`` ('read noise', 'gain'...)."""
    return [line for line in lines if line.strip().startswith(names)]


def tab_titles(tabs):
    widget = tabs.get_widget()
    return [widget.tabText(i) for i in range(widget.count())]


def characterise_with_button(gui, plugin):
    assert plugin.w.characterise.get_enabled(), plugin.w.source.get_text()
    gui.click(plugin.w.characterise)
    gui.wait_idle(plugin, "the characterisation")


def test_the_browsers_night_characterised_written_and_bad_pixels_shown(gui, inspect,
                                                                        night, tmp_path):
    out = tmp_path / "out"
    gui.open_night(night.path, output=out)
    plugin = inspect
    assert plugin.folder_row.get_path() == str(night.path)
    assert plugin.w.source.get_text() == ("The CCD Browser's scan: 5 bias, 10 dark, "
                                          "10 flat frames (types as the browser shows them).")
    assert plugin.report_row.get_path() == str(out / "ccd_report")
    assert not plugin.w.write.get_enabled() and not plugin.w.bad_pixels.get_enabled()

    characterise_with_button(gui, plugin)
    expected = characterise(scan_folder(night.path))
    shown = plugin.w.report.get_text().splitlines()
    assert measured(shown, "read noise", "gain") == measured(expected.lines(),
                                                             "read noise", "gain")
    assert len(measured(shown, "read noise", "gain")) == 2
    assert shown == expected.lines()
    assert "not measured" not in "\n".join(shown)
    # every plot drawn by a Ginga plot viewer, on its own tab
    assert tab_titles(plugin.w.plots) == ["Photon transfer", "Bias", "Hot pixels", "Flat"]
    assert [len(plugin.plots[kind]) for kind in ("ptc", "bias", "hot", "flat")] == [
        1, 2, 1, 1]
    check_plots_hold_the_report(plugin, expected)
    # live: the mouse wheel over the bias row plot zooms in along X
    gui.fv.ds.raise_tab("CCD Inspect")
    plugin.w.plots.set_index(1)
    gui.pump(0.3)
    aide = plugin.plots["bias"][0]
    (x_lo, _), (x_hi, _) = aide.viewer.get_limits()
    wheel(aide.viewer.get_widget(), steps=3)
    (shown_lo, _), (shown_hi, _) = aide.viewer.get_pan_bbox()[0], aide.viewer.get_pan_bbox()[2]
    assert aide.settings["autoaxis_x"] == "off"
    assert 0 < shown_hi - shown_lo < 0.9 * (x_hi - x_lo)
    assert plugin.messages.lines[0] == (f"Characterised 5 bias, 10 dark, 10 flat frames "
                                        f"of {night.path}.")

    # the report, written where the products go
    gui.click(plugin.w.write)
    gui.wait_idle(plugin, "the report")
    folder = out / "ccd_report"
    for name in REPORT_FILES.values():
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "ccd_report.txt").read_text() == "\n".join(expected.lines()) + "\n"
    mask = fits.getdata(folder / "bad_pixels.fits")
    assert np.array_equal(mask.astype(bool), expected.bad_pixel_mask)
    assert fits.getheader(folder / "bad_pixels.fits")["RDNOISE"] == pytest.approx(
        expected.read_noise_e, abs=1e-4)
    assert plugin.messages.lines[0] == f"Report written to {folder}:"

    # the bad-pixel mask in its channel, bad pixels white
    gui.click(plugin.w.bad_pixels)
    image = gui.channel_image("BadPixels")
    assert np.array_equal(image.get_data(), expected.bad_pixel_mask.astype(np.uint8))
    assert image.get("path") == str(folder / "bad_pixels.fits")
    assert gui.fv.get_channel("BadPixels").viewer.get_cut_levels() == (0, 1)
    assert plugin.messages.lines[0].startswith(f"{expected.n_bad} bad pixels (white)")
    assert not gui.new_errors(), "\n".join(gui.new_errors())[:3000]

    plugin.w.plots.set_index(0)
    gui.fv.ds.raise_tab("CCD Inspect")
    path = gui.screenshot("ccd_inspect")
    assert path.stat().st_size > 10000


def test_another_folder_is_scanned_and_what_is_missing_is_said(gui, inspect, night,
                                                                tmp_path):
    plugin = inspect
    assert plugin.folder_row.get_path() is None
    assert not plugin.w.characterise.get_enabled()
    assert plugin.characterise() is False

    # bias and darks only: no measured gain, no flat plots, no bad-pixel mask
    folder = tmp_path / "no_flats"
    folder.mkdir()
    for path in night.files["bias"] + night.files["dark"]:
        shutil.copy(path, folder)
    plugin.folder_row.set_path(str(folder))
    plugin.folder_row.entry.get_widget().returnPressed.emit()
    gui.pump()
    assert plugin.w.source.get_text() == ("Not the CCD Browser's folder: it is "
                                          "scanned first.")
    assert plugin.report_row.get_path() == str(tmp_path / "no_flats_reduced" / "ccd_report")
    characterise_with_button(gui, plugin)
    expected = characterise_folder(folder)
    shown = plugin.w.report.get_text().splitlines()
    assert shown == expected.lines()
    # no flats: the gain is the header's
    assert measured(shown, "gain")[0].endswith("e-/ADU  (header EGAIN)")
    assert "  note: no flats: gain not measured" in shown
    assert tab_titles(plugin.w.plots) == ["Bias", "Hot pixels"]
    assert sorted(plugin.plots) == ["bias", "hot"]
    assert plugin.folder_row.get_path() == str(folder)
    assert plugin.messages.lines[1].startswith("No plot for: Photon transfer, Flat")
    assert plugin.w.write.get_enabled()
    assert not plugin.w.bad_pixels.get_enabled()
    assert plugin.show_bad_pixels() is False
    # closed and opened again, the panel shows the same report and plots
    gui.click(plugin.w.close_help.get_children()[0])   # Close
    assert not gui.fv.gpmon.is_active("CCDInspect")
    plugin = gui.global_plugin("CCDInspect")
    assert plugin.w.report.get_text().splitlines() == shown
    assert tab_titles(plugin.w.plots) == ["Bias", "Hot pixels"]
    assert plugin.folder_row.get_path() == str(folder)

    # lights only: a message, not a traceback
    lights = tmp_path / "lights"
    lights.mkdir()
    shutil.copy(night.files["light"][0], lights)
    plugin.folder_row.set_path(str(lights))
    characterise_with_button(gui, plugin)
    message = plugin.messages.get_text()
    assert message.startswith(f"Not characterised: {lights}: no bias, dark or flat")
    assert "Traceback" not in message
    # the earlier report stays
    assert plugin.w.report.get_text().splitlines() == shown
    assert not os.path.exists(tmp_path / "no_flats_reduced")
    assert not gui.new_errors(), "\n".join(gui.new_errors())[:3000]


def test_marks_follow_the_image_and_go_with_the_panel(gui, inspect, tmp_path):
    # a camera with an overscan strip: raw frames are wider than the imaging area
    camera = SyntheticCamera((64, 80), seed=1, overscan_columns=8)
    folder = tmp_path / "night"
    paths = write_night(folder, camera, [("bias", 0.0, None, 5), ("dark", 120.0, None, 5),
                                         ("flat", 10.0, "R", 5)], style="maxim", seed=1)
    gui.open_night(folder, output=tmp_path / "out")
    plugin = inspect
    assert not plugin.w.marks.get_enabled()
    characterise_with_button(gui, plugin)
    expected = characterise(scan_folder(folder))
    assert expected.regions is not None and expected.n_hot > 0
    assert expected.n_bad > expected.n_hot

    # a raw dark in a channel, then "Mark on image"
    gui.fv.add_channel("Raw")
    gui.fv.load_file(str(paths[6]), chname="Raw", wait=True)
    gui.fv.change_channel("Raw")
    gui.pump()
    assert plugin.w.marks.get_enabled()
    plugin.w.marks.get_widget().click()
    gui.pump()
    objects = marks(gui, "Raw")
    assert objects is not None, plugin.messages.get_text()
    trim, overscan = expected.regions.trim, expected.regions.overscan
    row0, col0 = trim[0].start, trim[1].start
    hot = {(r + row0, c + col0) for r, c in np.argwhere(expected.hot_map)}
    other = {(r + row0, c + col0)
             for r, c in np.argwhere(expected.bad_pixel_mask & ~expected.hot_map)}
    assert marked_pixels(objects, "red") == hot
    assert marked_pixels(objects, "yellow") == other
    assert boxes(objects) == {
        "green": (trim[1].start - 0.5, trim[0].start - 0.5, trim[1].stop - 0.5,
                  trim[0].stop - 0.5),
        "cyan": (overscan[1].start - 0.5, overscan[0].start - 0.5, overscan[1].stop - 0.5,
                 overscan[0].stop - 0.5)}
    (peak,) = [o for o in objects if o.kind == "point" and o.color == "magenta"]
    row, col = expected.vignetting_peaks["R"]
    assert (peak.y, peak.x) == pytest.approx((row + row0, col + col0))
    assert plugin.messages.lines[0].startswith("Marked on ")
    assert f"  {expected.n_hot} hot pixels (red circles)" in plugin.messages.lines

    # the mask (imaging area only): the marks move there, without the boxes
    gui.click(plugin.w.bad_pixels)
    gui.pump()
    assert marks(gui, "Raw") is None
    objects = marks(gui, "BadPixels")
    assert marked_pixels(objects, "red") == {tuple(p) for p in
                                             np.argwhere(expected.hot_map)}
    assert boxes(objects) == {}

    # an image of another size is not marked, and the panel says why
    from ginga.AstroImage import AstroImage
    gui.fv.add_channel("Other")
    other_image = AstroImage()
    other_image.load_data(np.zeros((10, 12), dtype=np.float32))
    other_image.set(name="small")
    gui.fv.add_image("small", other_image, chname="Other")
    gui.fv.change_channel("Other")
    gui.pump()
    assert marks(gui, "BadPixels") is None and marks(gui, "Other") is None
    assert plugin.messages.lines[0] == ("Not marked: small in Other is 12 x 10 px, the "
                                        "frames measured are 80 x 64 px (imaging area).")

    # unchecked: gone; checked again, then the panel closed: gone
    gui.fv.change_channel("BadPixels")
    gui.pump()
    assert marks(gui, "BadPixels") is not None
    plugin.w.marks.get_widget().click()
    gui.pump()
    assert marks(gui, "BadPixels") is None
    plugin.w.marks.get_widget().click()
    gui.pump()
    assert marks(gui, "BadPixels") is not None
    gui.click(plugin.w.close_help.get_children()[0])   # Close
    assert marks(gui, "BadPixels") is None
    for chname in ("Raw", "Other"):
        gui.fv.delete_channel(chname)
    assert not gui.new_errors(), "\n".join(gui.new_errors())[:3000]
