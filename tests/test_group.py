"""Grouping frames into the tree the browser and CLI show."""

from astropy.io import fits

from ginga_ccdcal.group import format_tree, group_frames
from ginga_ccdcal.scan import Frame


def frame(name, kind, exptime, filt=None, **header):
    return Frame(path=f"/raw/{name}", header=fits.Header(header), hdu=0,
                 shape=(10, 10), frametype=kind, type_source="IMAGETYP",
                 exptime=exptime, filter=filt)


FRAMES = [frame("l1", "light", 300.0, "R", OBJECT="M13"),
          frame("l2", "light", 300.1, "R", OBJECT="M13"),
          frame("l3", "light", 300.2, "V", OBJECT="M92"),
          frame("d1", "dark", 60.0), frame("d2", "dark", 120.0),
          frame("b1", "bias", 0.0), frame("b2", "bias", 0.0),
          frame("f1", "flat", 10.0, "R"), frame("u1", "unknown", None)]


def test_default_grouping_type_then_exposure():
    groups = group_frames(FRAMES)
    assert [g.value for g in groups] == ["bias", "dark", "flat", "light", "unknown"]
    lights = groups[3]
    # 300, 300.1 and 300.2 s are one exposure.
    assert len(lights.children) == 1 and len(lights.children[0].frames) == 3
    assert lights.children[0].value == 300.0
    assert [c.value for c in groups[1].children] == [60.0, 120.0]


def test_group_by_header_keyword_case_insensitive():
    groups = group_frames([f for f in FRAMES if f.frametype == "light"],
                          ("object", "filter"))
    assert [(g.value, len(g.frames)) for g in groups] == [("M13", 2), ("M92", 1)]
    assert [c.value for c in groups[0].children] == ["R"]


def test_missing_values_form_their_own_group():
    groups = group_frames(FRAMES, ("filter",))
    assert groups[-1].value is None and len(groups[-1].frames) == 5
    assert "(none)" in groups[-1].label


def test_format_tree_counts():
    text = format_tree(group_frames(FRAMES))
    assert "frametype = light  (3 frames)" in text
    assert "  exptime = 300  (3 frames)" in text


def test_missing_values_are_shown_one_way_only():
    frames = [frame("a", "flat", 5.0, None, OBJECT=""), frame("b", "flat", 5.0, None),
              frame("c", "flat", 5.0, None, OBJECT="   "), frame("d", "flat", 5.0, "R", OBJECT="x")]
    for key in ("object", "filter"):
        groups = group_frames(frames, (key,))
        labels = [g.label for g in groups]
        assert sum("(none)" in label for label in labels) == 1, labels
        assert all(not label.endswith("= ") for label in labels), labels


def test_filters_differing_in_case_are_different_groups():
    frames = [frame("r1", "light", 30.0, "R"), frame("r2", "light", 30.0, "r"),
              frame("r3", "light", 30.0, "R")]
    groups = group_frames(frames, ("filter",))
    assert [(g.value, len(g.frames)) for g in groups] == [("R", 2), ("r", 1)]


def test_tree_lists_type_notes_with_the_files():
    odd = frame("f9", "flat", 5.0, "R")
    odd.type_source, odd.type_note = "evidence", "header says light; file name and pixels say flat"
    text = format_tree(group_frames([odd]), show_files=True)
    assert "f9  [header says light; file name and pixels say flat]" in text
