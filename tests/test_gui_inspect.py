"""CCD Inspect in the real reference viewer: the browser's night characterised
(report text equal to the core's, plots on tabs), the report written, the
bad-pixel mask shown; another folder scanned first; a folder without
calibration frames refused politely."""

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.characterise import REPORT_FILES, characterise, characterise_folder
from ginga_ccdcal.scan import scan_folder

from gui_support import gui, gui_session  # noqa: F401 (pytest fixtures)

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
    # every plot drawn, on its own tab, at the panel's width
    assert tab_titles(plugin.w.plots) == ["Photon transfer", "Bias", "Hot pixels", "Flat"]
    for i in range(4):
        image = plugin.w.plots.get_children()[i].get_widget().widget()
        pixmap = image.pixmap()
        assert pixmap.width() == plugin.settings.get("plot_width")
        assert pixmap.height() > 200
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
    assert not gui.new_errors()

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
    assert not gui.new_errors()
