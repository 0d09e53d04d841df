"""CCD Calibrate in the real reference viewer: the choice explained, one-click
calibration into <channel>_cal, the options (fitted dark scale, cosmic rays,
gain, read noise), the step-by-step view, Calibrate all, missing masters."""

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.calibrate import CalibrationOptions, calibrate_frame
from ginga_ccdcal.masters import load_masters
from ginga_ccdcal.match import match_light
from ginga_ccdcal.scan import frame_from_file
from ginga_ccdcal.gui.CCDCalibrate import BLINK_INTERVAL, N_STEP_PANELS
from ginga_ccdcal.steps import (as_read_step, blink_pair, calibration_steps, common_cuts,
                                row_profile, step_cuts)

from gui_support import gui, gui_session  # noqa: F401 (pytest fixtures)

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def calibrate_settings(gui_session):
    """Put CCD Calibrate's remembered options back after each test."""
    settings = gui_session.fv.get_preferences().create_category("plugin_CCDCalibrate")
    saved = settings.get_dict()
    yield settings
    settings.set_dict(saved)
    if os.path.exists(settings.preffile):
        settings.save()


def build_masters(gui, folder, output):
    """Scan ``folder`` and build its masters with the buttons."""
    browser = gui.open_night(folder, output=output)
    masters = gui.global_plugin("CCDMasters")
    gui.click(masters.w.build)
    gui.wait_idle(masters, "the masters")
    return browser


def open_light(gui, browser, path, chname="Image"):
    """Click ``path`` in the browser so it loads in ``chname``."""
    gui.fv.change_channel(chname)
    gui.select_row(browser.w.tree, browser.path_of(path))
    gui.wait_for(lambda: (gui.channel_image(chname) is not None
                          and gui.channel_image(chname).get("path") == path),
                 f"{os.path.basename(path)} to load in {chname}")
    channel = gui.fv.get_channel(chname)
    if channel.opmon.is_active("CCDCalibrate"):
        plugin = channel.opmon.get_plugin("CCDCalibrate")
        gui.wait_for(lambda: not plugin._looking_up, "CCD Calibrate to look at it")


def calibrate_with_button(gui, chname="Image"):
    plugin = gui.local_plugin(chname, "CCDCalibrate")
    assert plugin.w.calibrate.get_enabled(), plugin.w.missing.get_text()
    gui.click(plugin.w.calibrate)
    gui.wait_idle(plugin, "the calibration")
    return plugin


def test_one_click_calibration_of_the_sample_night(gui, sample_night_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(sample_night_dir, raw)
    browser = build_masters(gui, raw, tmp_path / "out")
    light = sorted(f.path for f in gui.session.frames("light"))[3]
    open_light(gui, browser, light)
    plugin = gui.local_plugin("Image", "CCDCalibrate")

    # what it will use, and why: exactly the core's explanation
    masters = load_masters(str(tmp_path / "out" / "masters"))
    match = match_light(frame_from_file(light), masters)
    shown = plugin.w.choice.get_text().splitlines()
    assert shown == match.describe()
    assert [m.split(":")[0] for m in shown] == ["bias", "dark", "flat"]
    assert plugin.w.missing.get_text() == "All masters found."
    assert not plugin.w.open_masters.get_enabled()

    calibrate_with_button(gui)
    # the calibrated frame is in Image_cal and equals the core's result
    image = gui.channel_image("Image_cal")
    expected = calibrate_frame(frame_from_file(light), match).data
    assert image.get_data().shape == expected.shape
    assert np.allclose(image.get_data(), expected, equal_nan=True)
    # written with its provenance
    out = tmp_path / "out" / os.path.basename(light)
    assert image.get("path") == str(out)
    header = fits.getheader(out)
    assert header["CALSTAT"].endswith("BDF")
    for role in ("BIAS", "DARK", "FLAT"):
        assert header[f"{role}FILE"] == getattr(match, role.lower()).master.name
    assert np.allclose(fits.getdata(out), expected, equal_nan=True)
    # cut levels chosen to show the sky: zscale, around the background
    viewer = gui.fv.get_channel("Image_cal").viewer
    assert viewer.get_settings().get("autocut_method") == "zscale"
    low, high = viewer.get_cut_levels()
    sky = np.nanmedian(expected)
    assert low < sky < high
    assert high - low < 0.5 * (np.nanmax(expected) - np.nanmin(expected))
    # the raw channel still holds only the raw frame
    raw_channel = gui.fv.get_channel("Image")
    assert [raw_channel.get_image_info(n).path
            for n in raw_channel.get_image_names()] == [light]
    assert plugin.messages.lines[0] == f"Calibrated {os.path.basename(light)} -> {out}"
    assert not gui.new_errors(), "\n".join(gui.new_errors())

    gui.fv.ds.raise_tab("Dialogs")
    path = gui.screenshot("ccd_calibrate")
    assert path.stat().st_size > 10000

    # calibrating again keeps the file and shows it
    gui.fv.change_channel("Image")
    gui.click(plugin.w.calibrate)
    gui.wait_idle(plugin)
    assert "already exists: showing it" in plugin.messages.lines[0]

    # the teaching view: the frame after each step, side by side
    gui.click(plugin.w.show_steps)
    gui.wait_idle(plugin, "the steps")
    frame = frame_from_file(light)
    steps = [as_read_step(frame)] + calibration_steps(frame, match)
    assert [s.title for s in steps] == ["as read", "raw", "- bias", "- dark", "/ flat"]
    # the first panel is the file as the camera wrote it: the bias level is in it
    as_read = fits.getdata(light).astype(np.float32)
    assert np.array_equal(steps[0].data, as_read)
    assert np.nanmedian(as_read) > 1000 > abs(np.nanmedian(expected))
    panels = plugin.step_panels
    assert len(panels) == 5 and all(p.widget.get_widget().isVisible() for p in panels)
    assert plugin.w.pages.get_index() == 1
    assert not plugin.w.same_cuts.get_state()
    for panel, step in zip(panels, steps):
        assert panel.title.get_text() == step.title
        # the note is wrapped to the panel's width, word for word the core's
        assert " ".join(panel.note.get_text().split()) == step.note
        shown = panel.viewer.get_image().get_data()
        assert np.array_equal(shown, step.data, equal_nan=True)
        # each panel's own contrast, about its own pixels
        lo, hi = panel.viewer.get_cut_levels()
        assert (lo, hi) == pytest.approx(step_cuts(step))
        assert lo < np.nanmedian(step.data) < hi
        # its row profile, drawn by Ginga's plot from the core's numbers
        np.testing.assert_allclose(panel.profile.points, np.column_stack(row_profile(step)))
    # the frame as read sits on the bias level, the bias-subtracted one does not
    assert panels[0].viewer.get_cut_levels()[0] > 1000 > panels[2].viewer.get_cut_levels()[1]
    # "same cuts for all": one contrast about each panel's sky level, to compare
    gui.click(plugin.w.same_cuts)
    for panel, cuts in zip(panels, common_cuts(steps)):
        assert panel.viewer.get_cut_levels() == pytest.approx(cuts)
    gui.click(plugin.w.same_cuts)
    assert panels[1].viewer.get_cut_levels() == pytest.approx(step_cuts(steps[1]))
    assert np.array_equal(panels[-1].viewer.get_image().get_data(), expected,
                          equal_nan=True)
    assert not np.allclose(panels[1].viewer.get_image().get_data(), expected)
    assert plugin.w.steps_title.get_text().startswith(
        f"{os.path.basename(light)} step by step, from the file as read; raw = after "
        "overscan subtraction")
    # a step sent to a channel, for Ginga's own tools
    gui.click(panels[0].to_channel)
    # made off the GUI thread, shown in a later turn of the event loop
    gui.wait_for(lambda: (gui.channel_image("Steps") or {}).get("name", "").endswith(
        " as read"), "the step in the Steps channel")
    image = gui.channel_image("Steps")
    assert np.array_equal(image.get_data(), as_read)
    assert image.get("name").endswith(" as read")
    gui.fv.change_channel("Image")
    path = gui.screenshot("ccd_steps")
    assert path.stat().st_size > 10000
    # the panels move together: zoom one, all follow
    panels[2].viewer.zoom_to(3)
    gui.pump()
    assert all(p.viewer.get_zoom() == pytest.approx(3) for p in panels)

    # blink raw / calibrated in the last panel, on a Ginga timer, until pressed again
    def last_shows(step):
        return np.array_equal(panels[-1].viewer.get_image().get_data(), step.data,
                              equal_nan=True)
    raw = blink_pair(steps)[0]
    assert raw is steps[1]  # the sample night's frames have an overscan strip
    gui.click(plugin.w.blink)
    assert plugin.blinking and plugin.w.blink.get_text() == "Stop blinking"
    gui.wait_for(lambda: last_shows(raw), "the raw frame to blink in")
    assert panels[-1].viewer.get_cut_levels() == pytest.approx(step_cuts(raw))
    gui.wait_for(lambda: last_shows(steps[-1]), "the calibrated frame to blink back")
    assert all(p.viewer.get_zoom() == pytest.approx(3) for p in panels)
    gui.click(plugin.w.blink)
    assert not plugin.blinking and last_shows(steps[-1])
    gui.pump(2 * BLINK_INTERVAL)
    assert last_shows(steps[-1])
    # leaving the page, or closing the plugin, stops it
    gui.click(plugin.w.blink)
    plugin.w.pages.set_index(0)
    gui.pump()
    assert not plugin.blinking
    plugin.w.pages.set_index(1)
    gui.click(plugin.w.blink)
    assert plugin.blinking
    plugin.close()
    gui.pump()
    assert not plugin.blinking
    assert not gui.new_errors(), "\n".join(gui.new_errors())


def test_scaled_dark_is_explained_and_calibrate_all_does_the_rest(gui, night, tmp_path):
    browser = build_masters(gui, night.path, tmp_path / "out")
    light = night.files["light"][0]
    open_light(gui, browser, light)
    plugin = gui.local_plugin("Image", "CCDCalibrate")
    # 300 s lights, darks of 60 and 120 s: the 120 s dark scaled by 2.5
    dark_line = plugin.w.choice.get_text().splitlines()[1]
    assert dark_line.startswith("dark: master_dark_120s.fits ")
    assert dark_line.endswith(" - scaled 120 s -> 300 s (x2.5), nearest exposure")
    calibrate_with_button(gui)
    expected = calibrate_frame(frame_from_file(light),
                               match_light(frame_from_file(light),
                                           load_masters(str(tmp_path / "out" / "masters"))))
    assert np.allclose(gui.channel_image("Image_cal").get_data(), expected.data,
                       equal_nan=True)

    gui.click(plugin.w.calibrate_all)
    gui.wait_idle(plugin, "Calibrate all")
    report = plugin.all_report
    assert len(report.written) == len(night.files["light"]) - 1
    assert report.existing == [str(tmp_path / "out" / os.path.basename(light))]
    assert not report.problems
    for path in night.files["light"]:
        assert (tmp_path / "out" / os.path.basename(path)).exists()
    assert plugin.messages.lines[0].startswith(
        f"{len(night.files['light']) - 1} calibrated, 1 already there")


def test_missing_masters_say_so_and_lead_to_the_builder(gui, night, tmp_path):
    browser = gui.open_night(night.path, output=tmp_path / "out")
    light = night.files["light"][-1]          # a V light
    open_light(gui, browser, light)
    plugin = gui.local_plugin("Image", "CCDCalibrate")
    folder = tmp_path / "out" / "masters"
    assert plugin.w.missing.get_text().startswith(f"No masters in {folder}.")
    assert not plugin.w.calibrate.get_enabled()
    assert plugin.calibrate() is False
    assert plugin.calibrate_all() is False
    assert "build them with CCD Masters" in plugin.messages.get_text()
    gui.click(plugin.w.open_masters)
    assert gui.fv.gpmon.is_active("CCDMasters")

    # masters without the V flat: the plugin names what is missing and why
    masters = gui.global_plugin("CCDMasters")
    gui.click(masters.w.build)
    gui.wait_idle(masters)
    os.remove(folder / "master_flat_V.fits")
    masters.session.masters_built()     # as after a rebuild: plugins look again
    gui.wait_idle(plugin, "CCD Calibrate to look at the masters again")
    missing = plugin.w.missing.get_text()
    assert "flat: no master flat for filter V (flats for: R)" in missing
    assert plugin.w.open_masters.get_enabled()
    # calibrating anyway applies bias and dark and records the gap
    gui.fv.change_channel("Image")
    calibrate_with_button(gui)
    header = fits.getheader(tmp_path / "out" / os.path.basename(light))
    assert "F" not in header["CALSTAT"]
    assert any("flat NOT applied" in str(h) for h in header["HISTORY"])
    assert not gui.new_errors(), "\n".join(gui.new_errors())


def test_products_and_broken_files_are_refused_politely(gui, night, tmp_path):
    build_masters(gui, night.path, tmp_path / "out")
    master = str(tmp_path / "out" / "masters" / "master_bias.fits")
    gui.fv.load_file(master, chname="Image")
    plugin = gui.local_plugin("Image", "CCDCalibrate")
    assert "was written by ginga-ccdcal" in plugin.w.frame.get_text()
    assert not plugin.w.calibrate.get_enabled()

    # the file vanished after it was loaded: a message, not a traceback
    light = night.files["light"][0]
    gone = tmp_path / "gone.fits"
    shutil.copy(light, gone)
    gui.fv.load_file(str(gone), chname="Image")
    # the plugin follows the channel: a new image, a new match
    gui.wait_for(lambda: plugin.w.frame.get_text().startswith("gone.fits: light"),
                 "the plugin to pick up the newly shown frame")
    assert plugin.w.calibrate.get_enabled()
    os.remove(gone)
    gui.click(plugin.w.calibrate)
    gui.wait_idle(plugin)
    assert plugin.messages.lines[0].startswith("gone.fits: not calibrated: ")
    assert "Traceback" not in plugin.messages.get_text()
    # the failure is the frame's state, and in Ginga's Errors tab
    assert gui.session.frame_state(str(gone))[0] == "failed"
    assert "CCD Calibrate: gone.fits: not calibrated: " in gui.error_panel_text()
    assert not gui.new_errors(), "\n".join(gui.new_errors())


def test_options_fitted_dark_cosmic_rays_gain_and_read_noise(gui, night, tmp_path):
    browser = build_masters(gui, night.path, tmp_path / "out")
    light = night.files["light"][0]
    open_light(gui, browser, light)
    plugin = gui.local_plugin("Image", "CCDCalibrate")
    masters = load_masters(str(tmp_path / "out" / "masters"))
    frame = frame_from_file(light)
    match = match_light(frame, masters)
    out = tmp_path / "out" / os.path.basename(light)

    # dark scale fitted to the light
    plugin.w.dark_scale.set_text("fit to this light")
    calibrate_with_button(gui)
    fitted = calibrate_frame(frame, match, CalibrationOptions(dark_scale="fit"))
    assert np.allclose(gui.channel_image("Image_cal").get_data(), fitted.data,
                       equal_nan=True)
    assert not np.allclose(fitted.data, calibrate_frame(frame, match).data)
    header = fits.getheader(out)
    assert header["DARKFIT"] is True
    assert header["DARKSCL"] == pytest.approx(fitted.header["DARKSCL"])
    assert (f"dark scale fitted to this light: x{header['DARKSCL']:.4f} "
            "(exposure ratio x2.5)") in plugin.messages.lines

    # cosmic rays, gain and read noise, replacing the output
    gui.fv.change_channel("Image")
    plugin.w.dark_scale.set_text("exposure ratio")
    plugin.w.cosmics.set_state(True)
    plugin.w.gain.set_text("1.5")
    plugin.w.readnoise.set_text("7")
    plugin.w.overwrite.set_state(True)
    calibrate_with_button(gui)
    cleaned = calibrate_frame(frame, match,
                              CalibrationOptions(cosmics=True, gain=1.5, readnoise=7.0))
    assert np.allclose(gui.channel_image("Image_cal").get_data(), cleaned.data,
                       equal_nan=True)
    header = fits.getheader(out)
    assert header["CRCLEAN"] == cleaned.header["CRCLEAN"]
    assert header["BUNIT"] == "electron"
    assert fits.getdata(out, "UNCERT").shape == cleaned.data.shape
    assert f"cosmic rays: {header['CRCLEAN']} pixels cleaned" in plugin.messages.lines
    assert "in electrons (gain 1.5 e-/ADU)" in plugin.messages.lines

    # the options are remembered, in memory and in the settings file
    settings = plugin.settings
    assert (settings.get("dark_scale"), settings.get("cosmics"), settings.get("gain"),
            settings.get("readnoise")) == ("exposure", True, 1.5, 7.0)
    saved = open(settings.preffile, encoding="utf-8").read()
    assert "cosmics = True" in saved and "gain = 1.5" in saved
    plugin.close()
    gui.pump()
    plugin = gui.local_plugin("Image", "CCDCalibrate")
    assert plugin.w.cosmics.get_state() and plugin.w.gain.get_text() == "1.5"
    assert plugin.w.readnoise.get_text() == "7"
    assert plugin.w.dark_scale.get_text() == "exposure ratio"

    # a gain taken from the header; a gain that is not a number is refused
    plugin.w.cosmics.set_state(False)
    plugin.w.gain.set_text("header")
    plugin.w.readnoise.set_text("")
    gui.fv.change_channel("Image")
    calibrate_with_button(gui)
    assert fits.getheader(out)["GAINCOR"] == pytest.approx(
        calibrate_frame(frame, match, CalibrationOptions(gain="header")).header["GAINCOR"])
    plugin.w.gain.set_text("lots")
    assert plugin.calibrate() is False
    assert plugin.messages.lines == ["Options: Gain (e-/ADU; or 'header', or blank) "
                                     "must be a positive number, not 'lots'"]
    assert plugin.show_steps() is False
    assert settings.get("gain") == "header"
    assert not gui.new_errors(), "\n".join(gui.new_errors())


def test_calibrate_remembers_its_frame_while_the_user_clicks_another(
        gui, night, tmp_path, monkeypatch):
    import threading
    from ginga_ccdcal.gui import CCDCalibrate as module
    out = tmp_path / "out"
    browser = build_masters(gui, night.path, out)
    first, second, third = sorted(night.files["light"])[:3]
    open_light(gui, browser, first)
    plugin = gui.local_plugin("Image", "CCDCalibrate")
    # hold the calibration until the user has clicked another light
    gate = threading.Event()
    real = module.calibrate_and_write

    def held(*args, **kwargs):
        assert gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "calibrate_and_write", held)
    gui.click(plugin.w.calibrate)
    assert plugin.busy
    open_light(gui, browser, second)
    gui.wait_for(lambda: plugin.frame is not None and plugin.frame.path == second,
                 "the plugin to follow the second light")
    gate.set()
    gui.wait_idle(plugin, "the calibration of the first light")
    name = os.path.basename(first)
    expected = os.path.join(str(out), name)
    # the result is the first light's, said as such
    assert plugin.result_path == expected
    assert plugin.messages.lines[0] == f"Calibrated {name} -> {expected}"
    assert gui.channel_image("Image_cal").get("path") == expected
    assert gui.session.frame_state(first) == ("calibrated", "")
    assert gui.session.frame_state(second) is None
    # a new frame clears the messages of the earlier one
    gui.fv.change_channel("Image")
    open_light(gui, browser, third)
    gui.wait_for(lambda: plugin.frame is not None and plugin.frame.path == third,
                 "the plugin to follow the third light")
    assert not any(name in line for line in plugin.messages.lines)
    assert not gui.new_errors(), "\n".join(gui.new_errors())


def test_steps_panels_are_made_when_steps_are_asked_for(gui):
    """Each Steps panel holds two Ginga viewers (50-100 ms to make): opening
    CCD Calibrate makes none of them, even after it has shown; asking for
    the steps makes them, one per turn of the event loop, and a plugin
    closed meanwhile stops making them."""
    channel = gui.fv.get_channel("Image")
    gui.fv.start_local_plugin("Image", "CCDCalibrate", None)
    plugin = channel.opmon.get_plugin("CCDCalibrate")
    gui.pump(1.0)
    assert plugin.step_panels == []
    plugin._start_step_panels()              # what Show steps does first
    gui.wait_for(lambda: len(plugin.step_panels) == N_STEP_PANELS, "the Steps panels")
    viewers = [panel.viewer for panel in plugin.step_panels]
    # zoom and pan stay shared, panel to panel, as when all were made at once
    viewers[0].zoom_to(2)
    assert all(v.get_zoom() == pytest.approx(2) for v in viewers)
    # closed before the panels are made: the ones still to come are not
    plugin.close()
    gui.pump()
    gui.fv.start_local_plugin("Image", "CCDCalibrate", None)
    plugin._start_step_panels()
    made = len(plugin.step_panels)
    plugin.close()
    gui.pump(0.5)
    assert len(plugin.step_panels) == made < N_STEP_PANELS