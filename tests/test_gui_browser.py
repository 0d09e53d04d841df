"""CCD Browser in the real reference viewer: tree, grouping, clicks, overrides, problems."""

import os
import shutil

import pytest
from astropy.io import fits

from conftest import NIGHT_PLAN
from gui_support import gui, gui_session, tree_rows  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gui


def plan_count(frametype, exptime=None):
    return sum(n for t, e, _, n in NIGHT_PLAN
               if t == frametype and (exptime is None or e == exptime))


def test_tree_groups_by_type_then_exposure(gui, night):
    browser = gui.open_night(night.path)
    rows = tree_rows(browser.w.tree)
    assert list(rows) == ["frametype = bias", "frametype = dark",
                          "frametype = flat", "frametype = light"]
    for label, (texts, children) in rows.items():
        frametype = label.split(" = ")[1]
        assert texts[1] == str(plan_count(frametype))
    dark_groups = rows["frametype = dark"][1]
    assert list(dark_groups) == ["exptime = 60", "exptime = 120"]
    for label, (texts, files) in dark_groups.items():
        assert texts[1] == str(plan_count("dark", float(label.split(" = ")[1])))
        assert len(files) == int(texts[1])
    # each file row: name, -, type, state, filter, exposure, temperature
    lights = rows["frametype = light"][1]["exptime = 300"][1]
    expected = {os.path.basename(p) for p in night.files["light"]}
    assert set(lights) == expected
    filters = sorted(texts[4] for texts, _ in lights.values())
    assert filters == ["R", "R", "R", "V", "V"]
    assert all(texts[2] == "light" and texts[5] == "300" for texts, _ in lights.values())
    # no light calibrated yet: the State column is empty
    assert all(texts[3] == "" for texts, _ in lights.values())
    total = sum(n for *_, n in NIGHT_PLAN)
    assert browser.messages.lines[0].endswith(
        f"{total} frames (5 bias, 10 dark, 10 flat, 5 light)")
    assert not gui.new_errors()


def test_group_by_any_header_keywords(gui, night):
    browser = gui.open_night(night.path)
    browser.w.group_by.set_text("IMAGETYP, filter")
    browser.w.group_by.entry.returnPressed.emit()
    gui.pump()
    # the labels come from the headers, read here independently
    values = {}
    for path in sum(night.files.values(), []):
        header = fits.getheader(path)
        key = str(header["IMAGETYP"]).strip()
        values.setdefault(key, set()).add(header.get("FILTER"))
    rows = tree_rows(browser.w.tree)
    assert set(rows) == {f"IMAGETYP = {v}" for v in values}
    for value, filters in values.items():
        children = rows[f"IMAGETYP = {value}"][1]
        assert set(children) == {f"filter = {'(none)' if f is None else f}"
                                 for f in filters}
    assert browser.group_keys == ("IMAGETYP", "filter")


def test_guessed_types_are_marked(gui, night):
    victim = night.files["bias"][0]
    with fits.open(victim, mode="update") as hdul:
        del hdul[0].header["IMAGETYP"]
    browser = gui.open_night(night.path)
    rows = tree_rows(browser.w.tree)
    files = rows["frametype = bias"][1]["exptime = 0"][1]
    assert files[os.path.basename(victim)][0][2] == "bias (guessed)"
    others = [texts[2] for name, (texts, _) in files.items()
              if name != os.path.basename(victim)]
    assert others == ["bias"] * (plan_count("bias") - 1)
    assert any("guessed" in line for line in browser.messages.lines)


def test_clicking_a_file_loads_it_in_the_current_channel(gui, night):
    browser = gui.open_night(night.path)
    light = night.files["light"][1]
    gui.fv.change_channel("Image")
    gui.select_row(browser.w.tree, browser.path_of(light))

    def shown():
        image = gui.channel_image("Image")
        return image is not None and image.get("path") == light

    gui.wait_for(shown, "the clicked light to appear in channel Image")
    assert browser.messages.lines[0].startswith(os.path.basename(light) + ": light")


def _thumbnails_of(gui, path):
    thumbs = gui.fv.gpmon.get_plugin("Thumbs")
    return [key for key in thumbs.thumb_dict if path in map(str, key)]


@pytest.mark.parametrize("wanted", [False, True])
def test_frames_clicked_make_a_thumbnail_only_if_wanted(gui, night, wanted):
    """Ginga's Thumbs would make each clicked frame's thumbnail on the GUI
    thread (100-250 ms for a full-size frame): the browser's frames go
    without, unless the preference asks for them."""
    browser = gui.open_night(night.path)
    settings = browser.settings
    settings.set(thumbnails=wanted)
    try:
        light = night.files["light"][2]
        gui.fv.change_channel("Image")
        gui.select_row(browser.w.tree, browser.path_of(light))
        gui.wait_for(lambda: (gui.channel_image("Image") or {}).get("path") == light,
                     "the clicked light")
        image = gui.channel_image("Image")
        assert image.get("nothumb") is (not wanted)
        if wanted:
            gui.wait_for(lambda: _thumbnails_of(gui, light), "its thumbnail")
        else:
            gui.pump(1.0)    # Thumbs' own delay (0.5 s) has passed
            assert _thumbnails_of(gui, light) == []
        # the channel itself is left as it was: files opened otherwise keep theirs
        assert gui.fv.get_channel("Image").settings.get("genthumb", True) is True
    finally:
        settings.set(thumbnails=False)


def test_clicking_a_group_shows_count_and_summary(gui, night):
    browser = gui.open_night(night.path)
    gui.select_row(browser.w.tree, ["frametype = dark"])
    lines = browser.messages.lines
    assert lines[0] == f"frametype = dark: {plan_count('dark')} frame(s)"
    assert "exposure: 60 to 120 s" in lines
    gui.select_row(browser.w.tree, ["frametype = flat", "exptime = 10"])
    assert browser.messages.lines[0] == \
        f"frametype = flat / exptime = 10: {plan_count('flat')} frame(s)"
    assert "filters: R, V" in browser.messages.lines
    # a group click loads nothing
    assert gui.channel_image("Image") is None


def test_user_can_correct_a_frame_type(gui, night):
    browser = gui.open_night(night.path)
    wrong = night.files["light"][:2]
    gui.select_rows(browser.w.tree, [browser.path_of(p) for p in wrong])
    assert [f.path for f in browser.selected_frames()] == wrong
    browser.w.type.set_text("flat")
    gui.click(browser.w.set_type)
    gui.wait_idle(browser)
    rows = tree_rows(browser.w.tree)
    assert rows["frametype = flat"][0][1] == str(plan_count("flat") + 2)
    assert rows["frametype = light"][0][1] == str(plan_count("light") - 2)
    moved = rows["frametype = flat"][1]["exptime = 300"][1]
    assert {name: texts[2] for name, (texts, _) in moved.items()} == \
        {os.path.basename(p): "flat (set by you)" for p in wrong}
    assert gui.session.overrides == {p: "flat" for p in wrong}
    # the correction survives a rescan from scratch
    gui.click(browser.w.scan)
    gui.wait_idle(browser)
    assert {f.path for f in gui.session.frames("flat")} >= set(wrong)


def test_refresh_notices_new_files_and_reuses_the_rest(gui, night):
    browser = gui.open_night(night.path)
    before = browser.scan_result
    new = os.path.join(night.path, "late_light.fits")
    shutil.copy(night.files["light"][0], new)
    gui.click(browser.w.refresh)
    gui.wait_idle(browser)
    after = browser.scan_result
    assert len(after.frames) == len(before.frames) + 1
    assert new in {f.path for f in after.frames}
    old = {f.path: f for f in before.frames}
    # unchanged files were not read again: the very same Frame objects
    assert all(f is old[f.path] for f in after.frames if f.path != new)
    rows = tree_rows(browser.w.tree)
    assert rows["frametype = light"][0][1] == str(plan_count("light") + 1)


def test_bad_files_are_listed_and_the_viewer_stays_usable(gui, night, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for path in night.files["light"]:
        shutil.copy(path, folder)
    with open(night.files["light"][0], "rb") as src:
        (folder / "truncated.fits").write_bytes(src.read()[:3000])
    (folder / "notes.fits").write_text("not a FITS file\n")
    browser = gui.open_night(folder)
    text = "\n".join(browser.messages.lines)
    assert "2 file(s) could not be used" in text
    assert "truncated.fits: truncated FITS" in text
    assert "notes.fits:" in text
    assert "Traceback" not in text
    assert list(tree_rows(browser.w.tree)) == ["frametype = light"]

    # no bias, dark or flat: the builder says so
    masters = gui.global_plugin("CCDMasters")
    assert not masters.w.build.get_enabled()
    assert masters.w.source.get_text().endswith("0 bias, 0 dark, 0 flat")
    assert masters.build() is False
    assert "no bias, dark or flat frames" in masters.messages.get_text()

    # the viewer still loads and shows frames
    gui.fv.load_file(night.files["light"][0], chname="Image")
    assert gui.channel_image("Image").get("path") == night.files["light"][0]
    assert not gui.new_errors()
    assert "Traceback" not in gui.error_panel_text()


def test_a_folder_that_does_not_exist_gives_a_message(gui, tmp_path):
    browser = gui.global_plugin("CCDBrowser")
    browser.set_folder(str(tmp_path / "nowhere"))
    gui.wait_idle(browser)
    assert browser.messages.lines == [f"Scan failed: {tmp_path / 'nowhere'}: no such folder"]
    assert browser.scan_result is None
    assert not gui.new_errors()


def test_sample_night_screenshot(gui, sample_night_dir, tmp_path):
    # a copy: showing a frame makes Ginga's Thumbs plugin write a .thumbs
    # folder beside it, and the session's sample night must stay as made
    raw = tmp_path / "raw"
    shutil.copytree(sample_night_dir, raw)
    browser = gui.open_night(raw, output=tmp_path / "out")
    light = gui.session.frames("light")[0].path
    gui.select_row(browser.w.tree, browser.path_of(light))
    gui.wait_for(lambda: gui.channel_image("Image") is not None, "the light to load")
    gui.select_row(browser.w.tree, ["frametype = dark"])
    counts = {label: texts[1] for label, (texts, _) in tree_rows(browser.w.tree).items()}
    assert counts == {"frametype = bias": "10", "frametype = dark": "20",
                      "frametype = flat": "10", "frametype = light": "38"}
    # show the whole structure: calibration groups folded, darks open
    tree = browser.w.tree
    for label in ("frametype = bias", "frametype = flat", "frametype = light"):
        tree.get_widget().collapseItem(tree._path_to_item([label]))
    tree.get_widget().scrollToTop()
    gui.fv.ds.raise_tab("CCD Browser")
    path = gui.screenshot("ccd_browser")
    assert path.stat().st_size > 10000


def test_a_mistyped_folder_clears_the_tree_and_set_type_changes_nothing(gui, night, tmp_path):
    browser = gui.open_night(night.path)
    light = night.files["light"][0]
    gui.select_row(browser.w.tree, browser.path_of(light))
    assert [f.path for f in browser.selected_frames()] == [light]
    # a typo in the folder, and Enter
    browser.folder_row.set_path(str(tmp_path / "nigth"))
    browser.folder_row.entry.get_widget().returnPressed.emit()
    gui.wait_idle(browser, "the failed scan")
    assert browser.messages.lines[0].startswith("Scan failed:")
    # nothing of the previous folder is shown or selected any more
    assert tree_rows(browser.w.tree) == {}
    assert browser.selected_frames() == []
    assert gui.session.scan is None
    # so "Set type" cannot turn that light into a bias
    browser.w.type.set_text("bias")
    gui.click(browser.w.set_type)
    gui.wait_idle(browser)
    assert gui.session.overrides == {}
    assert browser.messages.lines == ["Select one or more files (not groups) first."]
    browser.set_folder(str(night.path))
    gui.wait_idle(browser, "the rescan")
    assert browser.path_of(light)[0] == "frametype = light"
    # Set type on frames of another folder is refused
    from ginga_ccdcal.scan import frame_from_file
    other = tmp_path / "other.fits"
    shutil.copy(light, other)
    assert not browser.set_frame_type([frame_from_file(str(other))], "bias")
    assert gui.session.overrides == {}
    assert not gui.new_errors()
