"""Scanning folders: header styles of several camera programs, rescans, products."""

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.errors import Cancelled, FrameError
from ginga_ccdcal.group import group_frames
from ginga_ccdcal.progress import CancelToken
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder

PLAN = [("bias", 0.0, None, 3), ("dark", 30.0, None, 2), ("flat", 5.0, "R", 2),
        ("flat", 5.0, "V", 2), ("light", 30.0, "R", 2)]
EXPECTED = {"bias": 3, "dark": 2, "flat": 4, "light": 2}


@pytest.mark.parametrize("style", ["maxim", "iraf", "nina", "sbig", "feder"])
def test_header_styles_classify(tmp_path, style):
    camera = SyntheticCamera((16, 20), seed=3)
    write_night(tmp_path, camera, PLAN, style=style)
    result = scan_folder(tmp_path)
    assert result.counts() == EXPECTED
    assert not result.problems
    assert all(not f.guessed for f in result.frames)
    flats = group_frames(result.of_type("flat"), ("filter",))
    assert [g.value for g in flats] == ["R", "V"]
    assert {f.exptime for f in result.of_type("dark")} == {30.0}


def test_mixed_style_night_groups_as_one(tmp_path):
    camera = SyntheticCamera((16, 20), seed=3)
    write_night(tmp_path / "maxim", camera, PLAN, style="maxim")
    write_night(tmp_path / "iraf", camera, PLAN, style="iraf")
    write_night(tmp_path / "sbig", camera, PLAN, style="sbig")
    result = scan_folder(tmp_path)
    assert result.counts() == {k: 3 * n for k, n in EXPECTED.items()}
    groups = group_frames(result.frames)
    assert [(g.value, len(g.frames)) for g in groups] == [
        ("bias", 9), ("dark", 6), ("flat", 12), ("light", 6)]


def test_missing_type_is_guessed_and_marked(tmp_path):
    camera = SyntheticCamera((40, 50), seed=3)
    paths = write_night(tmp_path, camera, [("bias", 0.0, None, 1), ("flat", 5.0, "R", 1)])
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            del hdul[0].header["IMAGETYP"]
    result = scan_folder(tmp_path)
    kinds = {os.path.basename(f.path): (f.frametype, f.type_source) for f in result.frames}
    assert sorted(kinds.values()) == [("bias", "guess"), ("flat", "guess")]
    # The user's word wins and is marked as such.
    flat = next(f for f in result.frames if f.frametype == "flat")
    again = scan_folder(tmp_path, previous=result, overrides={flat.path: "light"})
    changed = next(f for f in again.frames if f.path == flat.path)
    assert (changed.frametype, changed.type_source) == ("light", "user")


def test_rescan_reuses_unchanged_and_sees_new(tmp_path):
    camera = SyntheticCamera((16, 20), seed=3)
    write_night(tmp_path, camera, PLAN)
    first = scan_folder(tmp_path)
    shutil.copy(first.frames[0].path, tmp_path / "new-bias.fit")
    second = scan_folder(tmp_path, previous=first)
    assert len(second.frames) == len(first.frames) + 1
    reused = {id(f) for f in first.frames}
    assert sum(id(f) in reused for f in second.frames) == len(first.frames)


def test_compressed_and_multi_extension_frames(tmp_path):
    data = (np.arange(30 * 40).reshape(30, 40) % 500 + 1000).astype(np.int32)
    header = fits.Header({"IMAGETYP": "Light Frame", "EXPTIME": 30.0, "FILTER": "R"})
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)]).writeto(
        tmp_path / "a.fits.fz")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header)]).writeto(
        tmp_path / "b.fits")
    fits.PrimaryHDU(np.zeros((3, 4, 5)), header).writeto(tmp_path / "cube.fits")
    result = scan_folder(tmp_path)
    assert sorted((os.path.basename(f.path), f.hdu, f.shape) for f in result.frames) == [
        ("a.fits.fz", 1, (30, 40)), ("b.fits", 1, (30, 40))]
    assert [p.message for p in result.problems] == ["not a 2-D image (data shape (3, 4, 5))"]


def test_cancel_and_progress(tmp_path):
    camera = SyntheticCamera((16, 20), seed=3)
    write_night(tmp_path, camera, PLAN)
    seen = []
    scan_folder(tmp_path, progress=lambda d, t, m: seen.append((d, t)))
    assert seen[-1] == (11, 11)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        scan_folder(tmp_path, cancel=token)
    with pytest.raises(FrameError, match="no such folder"):
        scan_folder(tmp_path / "missing")
