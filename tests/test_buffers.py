"""Reused memory: an array is handed out again only when nobody holds it."""

import numpy as np
from astropy.io import fits

from ginga_ccdcal.buffers import BufferPool
from ginga_ccdcal.calibrate import calibrate_frame
from ginga_ccdcal.masters import build_masters
from ginga_ccdcal.match import match_light
from ginga_ccdcal.scan import scan_folder


def test_a_free_array_is_reused_and_a_held_one_never():
    pool = BufferPool(keep=3)
    first = pool.take((4, 5), np.float32)
    address = first.ctypes.data
    second = pool.take((4, 5), np.float32)
    assert not np.shares_memory(first, second)
    del first
    assert pool.take((4, 5), np.float32).ctypes.data == address


def test_any_view_keeps_an_array_in_use():
    pool = BufferPool(keep=3)
    array = pool.take((6, 6), np.float32)
    held = [array[1:3], array.T, array.reshape(-1)[::2], memoryview(array)]
    del array
    for view in held:
        other = pool.take((6, 6), np.float32)
        assert not np.shares_memory(other, np.asarray(view))
        keep_alive = [view]  # noqa: F841 (the view is what holds the array)
    del view, held, other, keep_alive


def test_other_shapes_and_types_are_not_handed_out():
    pool = BufferPool(keep=3)
    array = pool.take((4, 4), np.float32)
    address = array.ctypes.data
    del array
    assert pool.take((4, 4), np.uint16).ctypes.data != address
    assert pool.take((2, 8), np.float32).ctypes.data != address


def test_the_pool_keeps_at_most_keep_arrays():
    pool = BufferPool(keep=2)
    held = [pool.take((3, 3), np.float32) for _ in range(5)]
    assert len(pool._arrays) == 2
    assert len({a.ctypes.data for a in held}) == 5


def test_prepare_leaves_a_free_array_for_the_next_take():
    pool = BufferPool(keep=3)
    shown = pool.take((8, 8), np.float32)          # the caller still shows it
    pool.prepare((8, 8), np.float32)
    ready = [a.ctypes.data for a in pool._arrays if a is not shown]
    nxt = pool.take((8, 8), np.float32)
    assert nxt.ctypes.data in ready and not np.shares_memory(nxt, shown)
    pool.prepare((8, 8), np.float32)               # a free one is there: nothing new
    count = len(pool._arrays)
    del nxt
    pool.prepare((8, 8), np.float32)
    assert len(pool._arrays) == count


def _night(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        bias = (1000 + rng.normal(0, 5, (40, 50))).astype(np.uint16)
        fits.PrimaryHDU(bias, fits.Header({"IMAGETYP": "Bias Frame",
                                           "EXPTIME": 0.0})).writeto(raw / f"bias_{i}.fits")
    for i, level in enumerate((3000, 9000)):
        light = (level + rng.normal(0, 20, (40, 50))).astype(np.uint16)
        fits.PrimaryHDU(light, fits.Header({"IMAGETYP": "Light Frame", "EXPTIME": 30.0,
                                            "FILTER": "R"})).writeto(raw / f"light_{i}.fits")
    scan = scan_folder(str(raw))
    masters = build_masters(scan.frames, str(tmp_path / "masters")).masters
    return [f for f in scan.frames if f.frametype == "light"], masters


def test_calibrating_the_next_light_never_changes_the_last_one(tmp_path):
    lights, masters = _night(tmp_path)
    first = calibrate_frame(lights[0], match_light(lights[0], masters))
    kept = first.data.copy()
    second = calibrate_frame(lights[1], match_light(lights[1], masters))
    assert not np.shares_memory(first.data, second.data)
    np.testing.assert_array_equal(first.data, kept)
    assert abs(float(np.median(second.data)) - float(np.median(kept)) - 6000) < 50
