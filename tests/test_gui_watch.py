"""CCD Watch and the browser's header-spellings editor in the real reference viewer.

Watch tests tick the real "Watch" box, copy frames into the raw folder as
a camera would, and pump Qt events until the results show.
"""

import json
import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal import classify
from ginga_ccdcal.calibrate import calibrate_frame
from ginga_ccdcal.masters import load_masters
from ginga_ccdcal.match import match_light
from ginga_ccdcal.scan import frame_from_file

from ginga_ccdcal.gui.common import banner_text

from gui_support import gui, gui_session, tree_rows  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def ginga_home(tmp_path, monkeypatch):
    """Spellings go to a test folder, never to the user's ~/.ginga."""
    home = tmp_path / "ginga-home"
    monkeypatch.setenv("GINGA_HOME", str(home))
    return home


def build_masters_with_button(gui, raw, out):
    """Scan ``raw`` in the browser and build its masters with CCD Masters."""
    browser = gui.open_night(raw, output=out)
    masters = gui.global_plugin("CCDMasters")
    gui.click(masters.w.build)
    gui.wait_idle(masters, "the masters")
    return browser, masters


def start_watch(gui, watch, chname=None):
    """Tick "Watch" (with ``chname`` the current channel); wait until it runs."""
    if chname is not None:
        gui.fv.change_channel(chname)
    assert not watch.w.watch.get_state()
    gui.click(watch.w.watch)
    gui.wait_for(lambda: watch.watching, "the watcher to start")
    return watch.watcher


def stop_watch(gui, watch):
    watcher = watch.watcher
    gui.click(watch.w.watch)
    # unticking returns at once; the threads are joined in the background
    assert watch.watch_state in ("stopping", "off")
    gui.wait_idle(watch, "the watcher to stop")
    assert watch.watch_state == "off" and watch.watcher is None
    assert watcher.wait(timeout=1.0), "the watcher's threads still run"
    assert not watch.w.watch.get_state()
    return watcher


def state_in_tree(browser, name):
    """The State cell of the light file ``name`` in the browser's tree (None if not there)."""
    def find(rows):
        for label, (texts, children) in rows.items():
            if label == name:
                return texts[3]
            found = find(children)
            if found is not None:
                return found
        return None
    return find(tree_rows(browser.w.tree).get("frametype = light", ([], {}))[1])


def shown_path(gui, chname):
    image = gui.channel_image(chname) if chname in gui.fv.get_channel_names() else None
    return None if image is None else image.get("path")


def test_watch_calibrates_new_lights_and_follows_calibration_frames(
        gui, sample_night_dir, tmp_path):
    raw, out, later = tmp_path / "raw", tmp_path / "out", tmp_path / "later"
    shutil.copytree(sample_night_dir, raw)
    # a light and a dark "not yet taken": they arrive while watching
    later.mkdir()
    light_name, dark_name = "SA112-SF1-019R2.fit", "darks-010D30.fit"
    for name in (light_name, dark_name):
        shutil.move(raw / name, later / name)
    browser, masters = build_masters_with_button(gui, raw, out)
    masters_dir = out / "masters"
    assert {r for r in tree_rows(masters.w.list)} >= {"master_dark_30s.fits"}

    watch = gui.global_plugin("CCDWatch")
    # its folders start as the other plugins'
    assert watch.raw_row.get_path() == str(raw)
    assert watch.masters_row.get_path() == str(masters_dir)
    watcher = start_watch(gui, watch, "Image")
    assert (watcher.raw_dir, watcher.out_dir) == (str(raw), str(out))
    assert watcher.masters_dir == str(masters_dir)
    assert watch.w.watch.get_state()
    assert watch.w.watch_status.get_text().startswith(f"Watching {raw} (native)")
    # options cannot change under a running watcher
    assert not watch.w.live.get_enabled() and not watch.w.poll.get_enabled()
    assert not watch.masters_row.entry.get_enabled()
    # full masters: no banner
    assert banner_text(gui.fv, "Image_cal") is None

    shutil.copy(later / light_name, raw / light_name)
    shutil.copy(later / dark_name, raw / dark_name)
    light, dark = str(raw / light_name), str(raw / dark_name)
    output = str(out / light_name)
    gui.wait_for(lambda: shown_path(gui, "Image_cal") == output,
                 "the calibrated light in Image_cal")
    assert gui.fv.get_channel_info().name == "Image_cal"

    # the image shown is the core's calibration of that file, with these masters
    frame = frame_from_file(light)
    match = match_light(frame, load_masters(str(masters_dir)))
    expected = calibrate_frame(frame, match).data
    image = gui.channel_image("Image_cal")
    assert np.allclose(image.get_data(), expected, equal_nan=True)
    assert np.allclose(fits.getdata(output), expected, equal_nan=True)
    viewer = gui.fv.get_channel("Image_cal").viewer
    assert viewer.get_settings().get("autocut_method") == "zscale"

    # both new frames join the tree, in their groups
    gui.wait_for(lambda: browser.path_of(dark) is not None
                 and browser.path_of(light) is not None and not browser.busy,
                 "the new frames to join the tree")
    assert browser.path_of(dark)[:2] == ["frametype = dark", "exptime = 30"]
    assert browser.path_of(light)[0] == "frametype = light"
    # the dark makes the 30 s master dark older than the raw frames
    gui.wait_for(lambda: tree_rows(masters.w.list)["master_dark_30s.fits"][0][5]
                 .startswith("stale"), "CCD Masters to mark the 30 s dark stale")
    assert tree_rows(masters.w.list)["master_bias.fits"][0][5] == "up to date"

    # a line per frame: what happened, and each master with its version
    gui.wait_for(lambda: watcher.counts["calibration"] == 1, "the dark's result")
    log = watch.watch_log.get_text()
    assert f"{light_name}: calibrated -> {output}" in log
    for line in match.describe():
        assert f"    {line}" in log
    assert match.dark.master.version in log
    assert f"{dark_name}: new dark 30 s frame; older now: master_dark_30s.fits" in log

    # our own products dropped in the folder are ignored, and said so
    shutil.copy(masters_dir / "master_bias.fits", raw / "copied_master.fits")
    gui.wait_for(lambda: "copied_master.fits: ignored" in watch.watch_log.get_text(),
                 "the copied master to be reported as ignored")

    # the scan summary follows the tree
    assert browser.messages.lines[0].endswith("78 frames (10 bias, 20 dark, 10 flat, "
                                              "38 light)")

    # the new light's state in the tree, and the checklist of the watch
    gui.wait_for(lambda: state_in_tree(browser, light_name) == "calibrated",
                 "the light's state")
    gui.wait_for(lambda: watch.checklist.text() == "bias \u2713  dark \u2713  flat \u2713",
                 "the checklist of the watched light")
    assert watch.checklist.subject.get_text() == f"for {light_name}"

    # show the new frames: calibration groups folded, the new light selected
    gui.fv.ds.raise_tab("CCD Watch")
    gui.screenshot("ccd_watch")
    gui.fv.ds.raise_tab("CCD Browser")
    tree = browser.w.tree
    for path in (["frametype = bias"], ["frametype = flat"], ["frametype = dark"]):
        tree.get_widget().collapseItem(tree._path_to_item(path))
    tree.set_selected([browser.path_of(light)])
    gui.pump(0.3)     # let the tree lay itself out before scrolling
    tree.scroll_to_path(browser.path_of(light))
    assert gui.screenshot("ccd_browser_states").stat().st_size > 10000

    # a raw frame clicked now goes to Image, not among the results
    first = gui.session.frames("light")[0].path
    gui.select_row(browser.w.tree, browser.path_of(first))
    gui.wait_for(lambda: shown_path(gui, "Image") == first, "the clicked light in Image")
    assert shown_path(gui, "Image_cal") == output

    stop_watch(gui, watch)
    assert "Stopped watching" in watch.watch_log.lines[-1]
    assert watch.w.watch_status.get_text() == "Not watching."
    assert watch.w.live.get_enabled()
    assert not gui.new_errors()


def test_live_masters_by_polling_and_closing_stops_the_watch(gui, night, tmp_path):
    out = tmp_path / "out"
    browser, masters = build_masters_with_button(gui, night.path, out)
    old = {m.name: m.version for m in load_masters(str(out / "masters"))}
    watch = gui.global_plugin("CCDWatch")
    gui.click(watch.w.live)
    gui.click(watch.w.poll)
    # the masters were just shown: lights still go to Image_cal, not Masters_cal
    gui.fv.change_channel("Masters")
    watcher = start_watch(gui, watch)
    assert watch.watch_chname == "Image_cal"
    assert watcher.mode == "poll" and watcher.rebuild_masters

    # another 60 s dark: the master is rebuilt from six frames
    new_dark = night.path / "late_dark_60.fits"
    shutil.copy(night.files["dark"][0], new_dark)
    gui.wait_for(lambda: watcher.counts["calibration"] == 1, "the new dark's result")
    rebuilt = {m.name: m for m in load_masters(str(out / "masters"))}
    assert rebuilt["master_dark_60s.fits"].n_frames == 6
    assert rebuilt["master_dark_60s.fits"].version != old["master_dark_60s.fits"]
    # CCD Masters shows the new master, up to date
    gui.wait_for(lambda: tree_rows(masters.w.list)["master_dark_60s.fits"][0][4] == "6",
                 "CCD Masters to list the rebuilt dark")
    assert tree_rows(masters.w.list)["master_dark_60s.fits"][0][5] == "up to date"

    # closing the plugin stops the watcher without waiting for it
    gui.fv.stop_global_plugin("CCDWatch")
    assert watch.watch_state in ("stopping", "off")
    gui.wait_for(lambda: watch.watch_state == "off", "the watcher to stop")
    assert watcher.wait(timeout=1.0)
    assert not gui.new_errors()


def test_watch_refuses_a_bad_output_folder(gui, night):
    gui.open_night(night.path)
    watch = gui.global_plugin("CCDWatch")
    watch.out_row.set_path(str(night.path))
    gui.click(watch.w.watch)
    gui.wait_for(lambda: watch.watch_state == "off", "the refusal")
    assert "must differ from the raw folder" in watch.watch_log.get_text()
    assert "must differ from the raw folder" in gui.error_panel_text()
    assert not watch.w.watch.get_state()
    assert watch.w.watch_status.get_text() == "Not watching."
    assert not gui.new_errors()


def test_watch_scans_the_folder_first(gui, night, tmp_path):
    watch = gui.global_plugin("CCDWatch")
    watch.raw_row.set_path(str(night.path))
    watch.out_row.set_path(str(tmp_path / "quick"))
    watch.masters_row.set_path(str(tmp_path / "quick" / "masters"))
    watcher = start_watch(gui, watch)
    assert watcher.masters_dir == str(tmp_path / "quick" / "masters")
    # the browser shows the watched folder, so new frames can join its tree
    browser = gui.fv.gpmon.get_plugin("CCDBrowser")
    gui.wait_for(lambda: gui.session.folder == str(night.path) and not browser.busy,
                 "the browser's scan of the watched folder")
    assert len(gui.session.frames()) == sum(len(v) for v in night.files.values())
    stop_watch(gui, watch)


# -- header spellings ---------------------------------------------------------

def test_spellings_editor_regroups_and_writes_the_shared_file(gui, night, ginga_home):
    # a dark for the flats whose camera calls it FLAT-DK: read as a flat
    odd = night.path / "flatdark_001.fits"
    shutil.copy(night.files["dark"][0], odd)
    with fits.open(odd, mode="update") as hdul:
        hdul[0].header["IMAGETYP"] = "FLAT-DK"
    browser = gui.open_night(night.path)
    assert browser.path_of(str(odd))[0] == "frametype = flat"
    assert browser.w.aliases.get_text() == "[types]\n\n[filters]"

    gui.click(browser.w.aliases_expander.toggle)
    browser.w.aliases.get_widget().setPlainText(
        "[types]\nFLAT-DK = dark   # our flat darks\n\n[filters]\nRed = R\n")
    gui.click(browser.w.save_aliases)
    gui.wait_idle(browser, "the rescan with the spellings")
    path = browser.path_of(str(odd))
    assert path[:2] == ["frametype = dark", "exptime = 60"]
    assert tree_rows(browser.w.tree)["frametype = dark"][1]["exptime = 60"][1][
        odd.name][0][2] == "dark"
    saved = ginga_home / "ccdcal_aliases.json"
    assert json.loads(saved.read_text()) == {"type": {"FLAT-DK": "dark"},
                                             "filter": {"Red": "R"}}
    assert classify.default_aliases_path() == str(saved)
    assert gui.session.aliases == classify.load_aliases(str(saved))

    # a line that cannot be read: nothing saved, the line is named
    browser.w.aliases.get_widget().setPlainText("[types]\nFLAT-DK dark\n")
    gui.click(browser.w.save_aliases)
    assert browser.messages.lines == [
        "Spellings not saved: line 2: 'FLAT-DK dark' is not 'header value = ours'"]
    assert json.loads(saved.read_text())["type"] == {"FLAT-DK": "dark"}

    # reopened, the browser reads the file again
    gui.fv.stop_global_plugin("CCDBrowser")
    browser = gui.global_plugin("CCDBrowser")
    assert browser.w.aliases.get_text() == "[types]\nFLAT-DK = dark\n\n[filters]\nRed = R"
    assert not gui.new_errors()


def test_a_broken_spellings_file_is_reported_not_used(gui, ginga_home):
    ginga_home.mkdir()
    (ginga_home / "ccdcal_aliases.json").write_text('{"type": {"x": "galaxy"}}')
    browser = gui.global_plugin("CCDBrowser")
    assert browser.messages.lines[-1].startswith("Header spellings not used: ")
    assert "unknown frame type(s) galaxy" in browser.messages.lines[-1]
    assert gui.session.aliases is None


def test_exposure_tolerance_changes_the_groups(gui, night):
    browser = gui.open_night(night.path)
    assert browser.w.tolerance.get_value() == 0.5
    darks = tree_rows(browser.w.tree)["frametype = dark"][1]
    assert list(darks) == ["exptime = 60", "exptime = 120"]
    browser.w.tolerance.get_widget().setValue(100.0)
    gui.pump()
    darks = tree_rows(browser.w.tree)["frametype = dark"][1]
    assert len(darks) == 1 and list(darks.values())[0][0][1] == "10"
    assert browser.tolerances()["exptime"] == 100.0


def test_watch_needs_an_existing_folder(gui, tmp_path):
    watch = gui.global_plugin("CCDWatch")
    watch.raw_row.set_path("")
    gui.click(watch.w.watch)
    assert watch.watch_log.lines[-1].endswith("Choose the raw folder to watch first.")
    watch.raw_row.set_path(str(tmp_path / "nowhere"))
    gui.click(watch.w.watch)
    assert watch.watch_log.lines[-1].endswith(f"Cannot watch {tmp_path / 'nowhere'}: "
                                              "no such folder.")
    assert watch.watch_state == "off" and not watch.w.watch.get_state()


def test_watch_banner_says_when_lights_are_not_fully_calibrated(gui, night, tmp_path):
    raw, out, later = tmp_path / "raw", tmp_path / "out", tmp_path / "later"
    raw.mkdir()
    later.mkdir()
    browser = gui.open_night(raw, output=out)
    watch = gui.global_plugin("CCDWatch")
    first, second, third = night.files["light"][:3]

    # no masters and nothing to make them from: said at the start, over Image_cal
    start_watch(gui, watch, "Image")
    gui.wait_for(lambda: banner_text(gui.fv, "Image_cal") is not None, "the start banner")
    assert banner_text(gui.fv, "Image_cal") == (
        f"Watching with no masters in {out / 'masters'}: new lights will NOT be calibrated")
    assert "new lights will NOT be calibrated" in gui.error_panel_text()
    assert watch.checklist.text() == "bias ?  dark ?  flat ?"
    # a light arrives: not calibrated, and the banner names it
    shutil.copy(first, raw)
    name = os.path.basename(first)
    gui.wait_for(lambda: (banner_text(gui.fv, "Image_cal") or "").startswith(name),
                 "the banner of the uncalibrated light")
    assert "NOT calibrated" in banner_text(gui.fv, "Image_cal")
    assert f"CCD Watch: {name}: NOT calibrated" in gui.error_panel_text()
    gui.wait_for(lambda: browser.path_of(os.path.join(raw, name)) is not None
                 and not browser.busy, "the light to join the tree")
    state = gui.session.frame_state(os.path.join(raw, name))
    assert state[0] == "not calibrated"
    stop_watch(gui, watch)

    # bias and dark masters, no flat: a light is partly calibrated
    for path in night.files["bias"] + night.files["dark"]:
        shutil.copy(path, raw)
    gui.click(browser.w.refresh)
    gui.wait_idle(browser)
    masters = gui.global_plugin("CCDMasters")
    gui.click(masters.w.build)
    gui.wait_idle(masters, "the bias and dark masters")
    start_watch(gui, watch, "Image")
    shutil.copy(second, raw)
    name = os.path.basename(second)
    gui.wait_for(lambda: (banner_text(gui.fv, "Image_cal") or "").startswith(name),
                 "the banner of the partly calibrated light")
    banner = banner_text(gui.fv, "Image_cal")
    assert "partly calibrated: flat NOT applied" in banner
    # the light itself follows in a later turn of the event loop
    gui.wait_for(lambda: (gui.channel_image("Image_cal") or {}).get("path")
                 == os.path.join(out, name), "the partly calibrated light")
    assert gui.session.frame_state(os.path.join(raw, name)) == (
        "partly calibrated", "no master flat")
    gui.wait_for(lambda: watch.checklist.text() == "bias \u2713  dark \u2713  flat \u2717",
                 "the checklist: no flat")
    gui.wait_for(lambda: state_in_tree(browser, name) == "partly calibrated: no master flat",
                 "the state in the tree")
    stop_watch(gui, watch)

    # with the flats' master too, the next light is fully calibrated: no banner
    for path in night.files["flat"]:
        shutil.copy(path, raw)
    gui.click(browser.w.refresh)
    gui.wait_idle(browser)
    gui.click(masters.w.build)
    gui.wait_idle(masters, "the flat masters")
    start_watch(gui, watch, "Image")
    shutil.copy(third, raw)
    output = os.path.join(out, os.path.basename(third))
    gui.wait_for(lambda: gui.channel_image("Image_cal").get("path") == output,
                 "the fully calibrated light")
    assert banner_text(gui.fv, "Image_cal") is None
    stop_watch(gui, watch)
    assert not gui.new_errors()
