"""CCD Masters in the real reference viewer: build from the browser's scan, options,
the Masters channel, provenance, stale masters."""

import os
import time

import pytest
from astropy.io import fits

from ginga_ccdcal.masters import load_masters

from gui_support import gui, gui_session, tree_rows  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gui

# the `night` fixture: one bias setup, darks of 60 and 120 s, flats in R and V
EXPECTED = {"master_bias.fits", "master_dark_60s.fits", "master_dark_120s.fits",
            "master_flat_R.fits", "master_flat_V.fits"}


def build(gui, night, tmp_path):
    gui.open_night(night.path, output=tmp_path / "out")
    masters = gui.global_plugin("CCDMasters")
    gui.click(masters.w.build)
    gui.wait_idle(masters, "the masters to be built and opened")
    return masters


def test_without_a_scan_the_builder_points_to_the_browser(gui):
    masters = gui.global_plugin("CCDMasters")
    assert masters.w.source.get_text().startswith("No scan yet")
    assert not masters.w.build.get_enabled()
    gui.click(masters.w.open_browser)
    assert gui.fv.gpmon.is_active("CCDBrowser")


def test_build_button_makes_masters_and_opens_them(gui, night, tmp_path):
    masters = build(gui, night, tmp_path)
    folder = tmp_path / "out" / "masters"
    assert masters.folder_row.get_path() == str(folder)
    assert masters.w.source.get_text().endswith("5 bias, 10 dark, 10 flat")
    # (Ginga's Thumbs plugin adds a hidden .thumbs folder next to what it shows)
    assert {n for n in os.listdir(folder) if not n.startswith(".")} == EXPECTED
    # every master is open in the Masters channel, loaded by Ginga's loader
    channel = gui.fv.get_channel("Masters")
    shown = {channel.get_image_info(n).path for n in channel.get_image_names()}
    assert shown == {str(folder / name) for name in EXPECTED}
    # the one displayed got its cut levels in the loading thread, and no thumbnail
    method, low, high = gui.channel_image("Masters").get("ccdcal_cuts")
    assert method == "zscale"
    assert channel.viewer.get_cut_levels() == pytest.approx((low, high))
    assert channel.settings.get("genthumb") is False
    # the list shows them, all up to date
    rows = tree_rows(masters.w.list)
    assert set(rows) == EXPECTED
    assert {texts[5] for texts, _ in rows.values()} == {"up to date"}
    assert rows["master_dark_120s.fits"][0][1:5] == ["dark", "120", "", "5"]
    assert rows["master_flat_V.fits"][0][3] == "V"
    assert masters.messages.lines[0] == f"5 master(s) built, 0 existing kept, in {folder}"
    # the default recipe, as the headers record it
    assert fits.getheader(folder / "master_bias.fits")["COMBMETH"] == "average"
    assert fits.getheader(folder / "master_flat_R.fits")["COMBMETH"] == "median"
    assert not gui.new_errors()


def test_combination_options_reach_the_masters(gui, night, tmp_path):
    gui.open_night(night.path, output=tmp_path / "out")
    masters = gui.global_plugin("CCDMasters")
    masters.w.method["bias"].set_text("median")
    masters.w.clip["bias"].get_widget().setChecked(True)
    masters.w.clip_low.set_value(2.5)
    masters.w.clip_high.set_value(4.0)
    masters.w.method["dark"].set_text("average")
    gui.click(masters.w.build)
    gui.wait_idle(masters)
    folder = tmp_path / "out" / "masters"
    bias = fits.getheader(folder / "master_bias.fits")
    assert (bias["COMBMETH"], bias["CLIPPED"]) == ("median", True)
    assert (bias["CLIPLO"], bias["CLIPHI"]) == (2.5, 4.0)
    dark = fits.getheader(folder / "master_dark_60s.fits")
    assert (dark["COMBMETH"], dark["CLIPPED"]) == ("average", False)

    # a second build keeps what is there, unless asked to rebuild
    gui.click(masters.w.build)
    gui.wait_idle(masters)
    assert masters.messages.lines[0].startswith("0 master(s) built, 5 existing kept")
    masters.w.method["bias"].set_text("average")
    masters.w.overwrite.set_state(True)
    gui.click(masters.w.build)
    gui.wait_idle(masters)
    assert masters.messages.lines[0].startswith("5 master(s) built, 0 existing kept")
    assert fits.getheader(folder / "master_bias.fits")["COMBMETH"] == "average"


def test_clicking_a_master_shows_its_provenance(gui, night, tmp_path):
    masters = build(gui, night, tmp_path)
    gui.select_row(masters.w.list, ["master_dark_60s.fits"])
    text = masters.w.provenance.get_text()
    assert "NCOMBINE=                    5" in text
    assert "BIASFILE= 'master_bias.fits'" in text
    for raw in night.files["dark"]:
        if "60" in os.path.basename(raw):
            # named relative to the raw folder (no machine paths in headers)
            assert os.path.basename(raw) in text.replace("\nHISTORY ", "")
    # and it is the one shown in the Masters channel
    gui.wait_for(lambda: gui.channel_image("Masters").get("path", "").endswith(
        "master_dark_60s.fits"), "the clicked master to be shown")
    gui.fv.ds.raise_tab("CCD Masters")
    assert gui.screenshot("ccd_masters").stat().st_size > 10000


def test_masters_older_than_raw_frames_are_marked_stale(gui, night, tmp_path):
    masters = build(gui, night, tmp_path)
    later = time.time() + 100
    newer = [p for p in night.files["dark"] if "D120" in os.path.basename(p)][0]
    os.utime(newer, (later, later))
    browser = gui.global_plugin("CCDBrowser")
    gui.click(browser.w.refresh)
    gui.wait_idle(browser)
    gui.wait_idle(masters, "the list of masters")   # read off the GUI thread
    rows = tree_rows(masters.w.list)
    assert rows["master_dark_120s.fits"][0][5] == "stale: 1 newer raw frame(s)"
    assert rows["master_dark_60s.fits"][0][5] == "up to date"
    stale = {m.name for m in load_masters(str(tmp_path / "out" / "masters"))}
    assert stale == EXPECTED


def test_no_bias_frames_is_reported_not_fatal(gui, night, tmp_path):
    for path in night.files["bias"]:
        os.remove(path)
    masters = build(gui, night, tmp_path)
    text = masters.messages.get_text()
    assert "no bias frames" in text
    assert "Traceback" not in text
    assert "master_bias.fits" not in os.listdir(tmp_path / "out" / "masters")
    assert not gui.new_errors()


def test_masters_reported_stale_by_the_watch_until_rebuilt(gui, night, tmp_path):
    masters = build(gui, night, tmp_path)
    folder = str(tmp_path / "out" / "masters")
    dark = [m for m in load_masters(folder) if m.name == "master_dark_60s.fits"]
    # what CCD Watch does when a new 60 s dark arrives
    gui.session.report_stale(dark)
    gui.wait_idle(masters, "the list of masters")
    rows = tree_rows(masters.w.list)
    assert rows["master_dark_60s.fits"][0][5] == "stale: newer raw frame arrived"
    assert rows["master_dark_120s.fits"][0][5] == "up to date"
    # rebuilt: up to date again
    masters.w.overwrite.set_state(True)
    gui.click(masters.w.build)
    gui.wait_idle(masters)
    assert tree_rows(masters.w.list)["master_dark_60s.fits"][0][5] == "up to date"
