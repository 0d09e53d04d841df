"""ginga_ccdcal.combine against ccdproc.combine, and its awkward inputs."""

import os
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData

import ccdproc
from ginga_ccdcal import combine as cmb
from ginga_ccdcal.combine import CombineResult, combine
from ginga_ccdcal.errors import (CalibrationError, Cancelled, CcdcalError,
                                 FrameError)
from ginga_ccdcal.progress import CancelToken

SHAPE = (37, 53)  # odd sizes on purpose
CLIP_FUNCS = [("mean", "std"), ("median", "mad_std"), ("median", "std"),
              ("mean", "mad_std")]


# -- helpers -----------------------------------------------------------------

def bias_stack(n, shape=SHAPE, seed=0, outliers=True):
    """Integer-valued float32 frames (exact in float32 and float64)."""
    rng = np.random.default_rng(seed)
    frames = [np.rint(rng.normal(1000, 10, shape)).astype(np.float32)
              for _ in range(n)]
    if outliers:
        for k in range(3 * n):
            i = rng.integers(n)
            y, x = rng.integers(shape[0]), rng.integers(shape[1])
            frames[i][y, x] += rng.choice([-1, 1]) * rng.integers(60, 5000)
    return frames


def ccdproc_combine(frames, masks=None, **kwargs):
    """ccdproc.combine on float64 copies of ``frames`` (unit adu)."""
    masks = masks or [None] * len(frames)
    ccds = [CCDData(np.asarray(f, np.float64), unit="adu", mask=m)
            for f, m in zip(frames, masks)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ccdproc.combine(ccds, **kwargs)


def ccdproc_rejected(frames, low=3.0, high=3.0, func="mean", dev="std"):
    """How many pixels ccdproc's sigma clipping rejects in ``frames``."""
    ccds = [CCDData(np.asarray(f, np.float64), unit="adu") for f in frames]
    comb = ccdproc.Combiner(ccds)
    before = comb.data_arr.mask.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comb.sigma_clipping(low_thresh=low, high_thresh=high, func=func,
                            dev_func=dev)
    # astropy also masks the NaNs; those were excluded, not rejected.
    new = comb.data_arr.mask & ~before & np.isfinite(comb.data_arr.data)
    return int(new.sum())


def assert_close(ours, theirs, scale=None):
    """Equal to float32 rounding of values of magnitude ``scale``."""
    ours = np.asarray(ours, np.float64)
    theirs = np.asarray(theirs, np.float64)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    ok = ~np.isnan(theirs)
    scale = max(scale or 0.0, np.abs(theirs[ok]).max())
    tol = 4 * float(np.spacing(np.float32(scale)))
    np.testing.assert_allclose(ours[ok], theirs[ok], rtol=0, atol=tol)


def write_fits(path, data, header=None, compressed=False):
    if compressed:
        hdul = fits.HDUList([fits.PrimaryHDU(),
                             fits.CompImageHDU(data=data, header=header)])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=header)])
    hdul.writeto(path, overwrite=True)
    return str(path)


# -- plain methods -----------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7, 8])
@pytest.mark.parametrize("method", ["average", "median", "sum"])
def test_methods_match_ccdproc(method, n):
    frames = bias_stack(n)
    result = combine(frames, method)
    assert isinstance(result, CombineResult)
    assert result.data.dtype == np.float32
    assert result.data.shape == SHAPE
    assert result.n_frames == n and result.method == method
    assert result.n_rejected == 0 and not result.mask.any()
    assert_close(result.data, ccdproc_combine(frames, method=method).data)


@pytest.mark.parametrize("method", ["average", "median"])
@pytest.mark.parametrize("func,dev", CLIP_FUNCS)
@pytest.mark.parametrize("low,high", [(2.5, 3.0), (0.5, 0.7)])  # few, many
def test_sigma_clip_matches_ccdproc(method, func, dev, low, high):
    frames = bias_stack(15)
    ours = combine(frames, method, sigma_clip=True, sigma_clip_func=func,
                   sigma_clip_dev_func=dev, sigma_clip_low_thresh=low,
                   sigma_clip_high_thresh=high)
    theirs = ccdproc_combine(frames, method=method, sigma_clip=True,
                             sigma_clip_func=func, sigma_clip_dev_func=dev,
                             sigma_clip_low_thresh=low, sigma_clip_high_thresh=high)
    assert ours.n_rejected == ccdproc_rejected(frames, low, high, func, dev)
    assert ours.n_rejected > (0 if low > 1 else 15 * SHAPE[0] * SHAPE[1] // 4)
    assert_close(ours.data, theirs.data)
    np.testing.assert_array_equal(ours.mask, theirs.mask)
    assert ours.settings["sigma_clip_func"] == func
    assert ours.settings["sigma_clip_dev_func"] == dev


def test_sigma_clip_can_reject_every_value_of_a_pixel():
    # Mean/mad_std with one huge outlier puts every value of that pixel out
    # of bounds; ccdproc then gives NaN and a masked pixel, and so do we.
    frames = bias_stack(9, outliers=False)
    frames[2][3, 4] = 50000
    for method in ("average", "median"):
        ours = combine(frames, method, sigma_clip=True, sigma_clip_func="mean",
                       sigma_clip_dev_func="mad_std")
        theirs = ccdproc_combine(frames, method=method, sigma_clip=True,
                                 sigma_clip_func="mean",
                                 sigma_clip_dev_func="mad_std")
        assert ours.mask[3, 4] and np.isnan(ours.data[3, 4])
        np.testing.assert_array_equal(ours.mask, theirs.mask)
        assert_close(ours.data, theirs.data)


def test_threshold_none_disables_that_side():
    frames = bias_stack(12, outliers=False)
    frames[0][5, 5] = 0.0       # far below
    frames[1][6, 6] = 60000.0   # far above
    # Mean/std: the only values far enough out to clip are the two planted.
    mean_std = dict(sigma_clip_func="mean", sigma_clip_dev_func="std")
    both = combine(frames, "average", sigma_clip=True, **mean_std)
    no_low = combine(frames, "average", sigma_clip=True,
                     sigma_clip_low_thresh=None, **mean_std)
    no_high = combine(frames, "average", sigma_clip=True,
                      sigma_clip_high_thresh=None, **mean_std)
    plain = combine(frames, "average")
    assert both.data[5, 5] > 990 and both.data[6, 6] < 1010
    assert no_low.data[5, 5] == plain.data[5, 5]
    assert no_low.data[6, 6] == both.data[6, 6]
    assert no_high.data[6, 6] == plain.data[6, 6]
    assert no_high.data[5, 5] == both.data[5, 5]
    assert no_low.settings["sigma_clip_low_thresh"] is None


# -- subtract and scale ----------------------------------------------------

def _subtracted32(frames, sub):
    """What we combine after ``subtract``: float64 difference, rounded once."""
    return [(np.asarray(f, np.float64) - sub).astype(np.float32) for f in frames]


@pytest.mark.parametrize("method", ["average", "median", "sum"])
def test_subtract_scalar_and_array(method):
    frames = bias_stack(6)
    rng = np.random.default_rng(5)
    bias = rng.normal(990, 3, SHAPE)  # float64 master bias
    for sub in (990.25, bias, bias.astype(np.float32)):
        ours = combine(frames, method, subtract=sub)
        theirs = ccdproc_combine([np.asarray(f, np.float64) - sub for f in frames],
                                 method=method)
        assert_close(ours.data, theirs.data, scale=1000.0)


@pytest.mark.parametrize("method", ["average", "median", "sum"])
def test_scale_list(method):
    frames = bias_stack(5)
    factors = [1.0, 0.5, 2.0, 1.25, 0.8]
    ours = combine(frames, method, scale=factors)
    theirs = ccdproc_combine(frames, method=method, scale=factors)
    assert_close(ours.data, theirs.data, scale=2500.0)
    assert ours.settings["scale_factors"] == factors


@pytest.mark.parametrize("method", ["average", "median"])
def test_inverse_median_is_the_flat_recipe(method):
    rng = np.random.default_rng(3)
    levels = [20000, 15000, 25000, 18000, 22000, 21000]
    frames = [np.rint(rng.normal(lv, np.sqrt(lv), SHAPE)).astype(np.uint16)
              for lv in levels]
    bias = rng.normal(1000, 2, SHAPE)
    ours = combine(frames, method, subtract=bias, scale="inverse_median")
    sub32 = _subtracted32(frames, bias)
    factors = [1.0 / np.median(s.astype(np.float64)) for s in sub32]
    np.testing.assert_allclose(ours.settings["scale_factors"], factors, rtol=1e-15)
    theirs = ccdproc_combine([np.asarray(f, np.float64) - bias for f in frames],
                             method=method, scale=factors)
    assert_close(ours.data, theirs.data, scale=1.5)
    assert ours.settings["scale"] == "inverse_median"


@pytest.mark.parametrize("func,dev", [("mean", "std"), ("median", "mad_std")])
def test_clipping_is_done_on_scaled_frames(func, dev):
    # Documented difference: we clip the values we combine (after scaling);
    # ccdproc clips before scaling.  Given the scaled frames, ccdproc agrees.
    rng = np.random.default_rng(4)
    frames = [np.rint(rng.normal(lv, 30, SHAPE)).astype(np.float32)
              for lv in (10000, 12000, 9000, 11000, 10500, 9500, 10200,
                         9800, 10100, 11500, 8800, 9900)]
    frames[3][7, 7] += 3000
    ours = combine(frames, "average", scale="inverse_median", sigma_clip=True,
                   sigma_clip_func=func, sigma_clip_dev_func=dev)
    factors = ours.settings["scale_factors"]
    scaled = [(f.astype(np.float64) * s).astype(np.float32)
              for f, s in zip(frames, factors)]
    theirs = ccdproc_combine(scaled, method="average", sigma_clip=True,
                             sigma_clip_func=func, sigma_clip_dev_func=dev)
    assert ours.n_rejected == ccdproc_rejected(scaled, 3.0, 3.0, func, dev)
    assert_close(ours.data, theirs.data, scale=1.2)
    # The hot pixel is rejected even though the frames' levels differ.
    assert abs(ours.data[7, 7] - 1.0) < 0.02


def test_inverse_median_of_zero_frame_is_an_error():
    frames = bias_stack(3)
    frames[1] = np.zeros(SHAPE, np.float32)
    with pytest.raises(CalibrationError, match="median"):
        combine(frames, scale="inverse_median")


# -- masked and non-finite pixels -----------------------------------------

@pytest.mark.parametrize("method", ["average", "median", "sum"])
def test_nan_pixels_are_skipped_like_ccdproc(method):
    frames = bias_stack(6)
    rng = np.random.default_rng(7)
    for f in frames:
        f[rng.random(SHAPE) < 0.1] = np.nan
    for f in frames:
        f[0, 0] = np.nan          # masked in every frame
    ours = combine(frames, method)
    theirs = ccdproc_combine(frames, method=method)
    assert ours.mask[0, 0] and np.isnan(ours.data[0, 0])
    np.testing.assert_array_equal(ours.mask, theirs.mask)
    if method == "sum":
        # ccdproc's nansum gives 0 where everything is masked; we give NaN.
        assert theirs.data[0, 0] == 0
        theirs.data[0, 0] = np.nan
    assert_close(ours.data, theirs.data)


@pytest.mark.parametrize("method", ["average", "median", "sum"])
def test_infinite_pixels_are_masked(method):
    frames = bias_stack(5)
    frames[0][1, 2] = np.inf
    frames[3][4, 5] = -np.inf
    masks = [~np.isfinite(f) for f in frames]
    ours = combine(frames, method)
    theirs = ccdproc_combine([np.where(m, 0, f) for f, m in zip(frames, masks)],
                             masks=masks, method=method)
    assert np.isfinite(ours.data).all()
    assert_close(ours.data, theirs.data)


@pytest.mark.parametrize("method", ["average", "median", "sum"])
def test_masked_arrays_match_ccdproc_masks(method):
    frames = bias_stack(7)
    rng = np.random.default_rng(8)
    masks = [rng.random(SHAPE) < 0.2 for _ in frames]
    for m in masks:
        m[2, 3] = True
    masked = [np.ma.MaskedArray(f, mask=m) for f, m in zip(frames, masks)]
    ours = combine(masked, method)
    theirs = ccdproc_combine(frames, masks=masks, method=method)
    np.testing.assert_array_equal(ours.mask, theirs.mask)
    assert ours.mask[2, 3]
    if method == "sum":
        theirs.data[theirs.mask] = np.nan
    assert_close(ours.data, theirs.data)


@pytest.mark.parametrize("method", ["average", "median"])
def test_masked_pixels_are_left_out_of_clipping(method):
    # ccdproc computes the clipping statistics over masked values too (it
    # passes the unmasked data to astropy); we leave them out, which is
    # what ccdproc does when the masked values are NaN.
    frames = bias_stack(15)
    rng = np.random.default_rng(9)
    masks = [rng.random(SHAPE) < 0.15 for _ in frames]
    masked = [np.ma.MaskedArray(f, mask=m) for f, m in zip(frames, masks)]
    ours = combine(masked, method, sigma_clip=True, sigma_clip_func="median",
                   sigma_clip_dev_func="mad_std")
    as_nan = [np.where(m, np.nan, f) for f, m in zip(frames, masks)]
    theirs = ccdproc_combine(as_nan, method=method, sigma_clip=True,
                             sigma_clip_func="median",
                             sigma_clip_dev_func="mad_std")
    assert ours.n_rejected == ccdproc_rejected(as_nan, 3, 3, "median", "mad_std")
    assert_close(ours.data, theirs.data)


def test_ccddata_frames_and_their_masks():
    frames = bias_stack(4)
    mask = np.zeros(SHAPE, bool)
    mask[1, 1] = True
    ccds = [CCDData(f, unit="adu", mask=mask if i == 0 else None)
            for i, f in enumerate(frames)]
    ours = combine(ccds, "average")
    assert ours.data[1, 1] == pytest.approx(np.mean([f[1, 1] for f in frames[1:]]))


# -- file inputs -----------------------------------------------------------

def _uint16_frames(n, seed=11):
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(30000, 3000, SHAPE), 0, 65535).astype(np.uint16)
            for _ in range(n)]


@pytest.mark.parametrize("method", ["average", "median", "sum"])
def test_uint16_bzero_files_match_arrays(tmp_path, method):
    frames = _uint16_frames(5)
    paths = [write_fits(tmp_path / f"b{i}.fits", f) for i, f in enumerate(frames)]
    assert fits.getheader(paths[0])["BZERO"] == 32768
    from_files = combine(paths, method)
    from_arrays = combine(frames, method)
    np.testing.assert_array_equal(from_files.data, from_arrays.data)
    assert_close(from_files.data, ccdproc_combine(frames, method=method).data)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8, np.float32,
                                   np.float64])
def test_file_pixel_types(tmp_path, dtype):
    rng = np.random.default_rng(12)
    hi = 200 if dtype == np.uint8 else 3000
    frames = [(rng.normal(0 if dtype != np.uint8 else 100, 30, SHAPE)
               .clip(-hi, hi)).astype(dtype) for _ in range(4)]
    paths = [write_fits(tmp_path / f"t{i}.fits", f) for i, f in enumerate(frames)]
    for method in ("average", "median"):
        ours = combine(paths, method)
        assert_close(ours.data, ccdproc_combine(frames, method=method).data,
                     scale=hi)


def test_bscale_and_blank(tmp_path):
    rng = np.random.default_rng(13)
    paths, expected = [], []
    for i in range(4):
        raw = rng.integers(-1000, 1000, SHAPE).astype(np.int16)
        raw[3, 3] = -32768 if i < 2 else raw[3, 3]
        header = fits.Header()
        hdu = fits.PrimaryHDU(data=raw, header=header)
        hdu.header["BSCALE"] = 0.5
        hdu.header["BZERO"] = 100.0
        hdu.header["BLANK"] = -32768
        path = str(tmp_path / f"s{i}.fits")
        hdu.writeto(path)
        paths.append(path)
        with fits.open(path) as hdul:
            expected.append(np.asarray(hdul[0].data, np.float64))
    assert np.isnan(expected[0][3, 3])  # astropy maps BLANK to NaN
    ours = combine(paths, "average")
    theirs = ccdproc_combine(expected, method="average")
    assert_close(ours.data, theirs.data)
    assert ours.data[3, 3] == pytest.approx(np.mean([e[3, 3] for e in expected[2:]]))


def test_image_in_an_extension(tmp_path):
    frames = _uint16_frames(3)
    paths = []
    for i, f in enumerate(frames):
        path = str(tmp_path / f"mef{i}.fits")
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data=f)]).writeto(path)
        paths.append(path)
    np.testing.assert_array_equal(combine(paths, "median").data,
                                  combine(frames, "median").data)


def test_compressed_files_kept_in_memory_or_spilled(tmp_path):
    frames = _uint16_frames(5)
    plain = [write_fits(tmp_path / f"p{i}.fits", f) for i, f in enumerate(frames)]
    fz = [write_fits(tmp_path / f"c{i}.fits.fz", f, compressed=True)
          for i, f in enumerate(frames[:3])]
    gz = []
    for i, f in enumerate(frames[3:]):
        path = str(tmp_path / f"g{i}.fits.gz")
        fits.PrimaryHDU(data=f).writeto(path)
        gz.append(path)
    mixed = fz + gz
    ref = combine(plain, "median", sigma_clip=True)
    cached = combine(mixed, "median", sigma_clip=True)
    np.testing.assert_array_equal(cached.data, ref.data)
    assert cached.settings["decompressed"] == 5
    assert cached.settings["spilled_to_disk"] == 0
    # A budget too small to keep them: written raw to a temporary folder.
    spilled = combine(mixed, "median", sigma_clip=True, mem_limit=1)
    np.testing.assert_array_equal(spilled.data, ref.data)
    assert spilled.settings["spilled_to_disk"] == 5


def test_truncated_file_is_a_frame_error(tmp_path):
    frames = _uint16_frames(2)
    paths = [write_fits(tmp_path / f"b{i}.fits", f) for i, f in enumerate(frames)]
    with open(paths[1], "r+b") as f:
        f.truncate(os.path.getsize(paths[1]) - 2880)
    with pytest.raises(FrameError, match="truncated") as err:
        combine(paths)
    assert err.value.path == paths[1]


# -- chunking, threads, errors, progress --------------------------------------

@pytest.mark.parametrize("method,kwargs", [
    ("average", {}), ("median", {}), ("sum", {}),
    ("average", dict(sigma_clip=True)),
    ("median", dict(sigma_clip=True, sigma_clip_func="median",
                    sigma_clip_dev_func="mad_std")),
    ("average", dict(scale="inverse_median", subtract=5.0)),
])
def test_many_uneven_chunks_give_identical_results(tmp_path, method, kwargs):
    frames = _uint16_frames(6)
    frames[2] = frames[2].astype(np.float32)
    frames[2][4, :7] = np.nan
    paths = [write_fits(tmp_path / f"b{i}.fits", f) for i, f in enumerate(frames)]
    one = combine(paths, method, threads=1, **kwargs)
    assert one.settings["bands"] == 1
    # A tiny budget forces one row per band (37 bands of 1 row)...
    rows1 = combine(paths, method, mem_limit=1, **kwargs)
    assert rows1.settings["bands"] == SHAPE[0]
    # ...and one allowing a few rows per band leaves a shorter last band.
    per_row = SHAPE[1] * (6 * (4 + 1 + 8) + 8 + 96)
    budget = SHAPE[0] * SHAPE[1] * 5 + 5 * per_row
    rows5 = combine(paths, method, mem_limit=budget, threads=1, **kwargs)
    rows = rows5.settings["band_rows"]
    assert 1 < rows < SHAPE[0] and SHAPE[0] % rows != 0
    two = combine(paths, method, threads=2, **kwargs)
    for other in (rows1, rows5, two):
        np.testing.assert_array_equal(other.data, one.data)
        np.testing.assert_array_equal(other.mask, one.mask)
        assert other.n_rejected == one.n_rejected


def test_float64_result():
    frames = [f.astype(np.float64) + 0.123456789 for f in bias_stack(5)]
    ours = combine(frames, "average", dtype=np.float64)
    theirs = ccdproc_combine(frames, method="average")
    assert ours.data.dtype == np.float64
    np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-14)


def test_many_frames_use_the_sort_path():
    rng = np.random.default_rng(14)
    n = cmb._NETWORK_MAX_FRAMES + 3
    frames = [rng.normal(0, 1, (5, 6)).astype(np.float32) for _ in range(n)]
    frames[0][0, 0] = np.nan
    ours = combine(frames, "median")
    assert_close(ours.data, np.nanmedian(np.array(frames, np.float64), axis=0))


def test_mismatched_shapes_name_the_file(tmp_path):
    a = write_fits(tmp_path / "a.fits", np.zeros(SHAPE, np.uint16))
    b = write_fits(tmp_path / "b.fits", np.zeros(SHAPE, np.uint16))
    c = write_fits(tmp_path / "c.fits", np.zeros((SHAPE[0], SHAPE[1] + 1), np.uint16))
    with pytest.raises(FrameError) as err:
        combine([a, b, c])
    assert err.value.path == c
    assert "(37, 54)" in str(err.value) and "(37, 53)" in str(err.value)
    assert "a.fits" in str(err.value)
    with pytest.raises(FrameError, match="frame 1"):
        combine([np.zeros(SHAPE), np.zeros((3, 3))])


@pytest.mark.parametrize("call,match", [
    (lambda: combine([]), "no frames to combine"),
    (lambda: combine(bias_stack(2), "mode"), "unknown combine method"),
    (lambda: combine(bias_stack(2), scale=[1.0]), "1 factors for 2 frames"),
    (lambda: combine(bias_stack(2), scale="median"), "unknown scale"),
    (lambda: combine(bias_stack(2), sigma_clip=True, sigma_clip_func="mode"),
     "sigma_clip_func"),
    (lambda: combine(bias_stack(2), sigma_clip=True, sigma_clip_dev_func="iqr"),
     "sigma_clip_dev_func"),
    (lambda: combine(bias_stack(2), subtract=np.zeros((2, 2))), "subtract"),
    (lambda: combine(bias_stack(2), dtype=np.int32), "float"),
    (lambda: combine([np.zeros((2, 3, 4))]), "2-D"),
])
def test_bad_arguments(call, match):
    with pytest.raises(CcdcalError, match=match):
        call()


def test_progress_and_cancel():
    frames = bias_stack(4)
    calls = []
    combine(frames, mem_limit=1, scale="inverse_median",
            progress=lambda d, t, m: calls.append((d, t, m)))
    total = calls[-1][1]
    assert total == 4 + SHAPE[0]  # one per frame median, one per band
    assert [c[0] for c in calls] == list(range(1, total + 1))
    assert all(c[1] == total for c in calls)
    assert "median of" in calls[0][2] and "combined rows" in calls[-1][2]

    token = CancelToken()
    seen = []

    def progress(done, total, message):
        seen.append(done)
        if done == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        combine(frames, mem_limit=1, threads=2, progress=progress, cancel=token)
    assert max(seen) < SHAPE[0]


# -- the building blocks -----------------------------------------------------

@pytest.mark.parametrize("n", list(range(1, 34)) + [50, 64])
def test_median_network_with_masks(n):
    rng = np.random.default_rng(n)
    pix = 400
    values = rng.integers(0, 6, (n, pix)).astype(np.float32)  # many ties
    bad = rng.random((n, pix)) < 0.3
    bad[:, 0] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column
        expected = np.nanmedian(np.where(bad, np.nan, values).astype(np.float64),
                                axis=0)
    planes = list(values.copy())
    count = n - bad.sum(axis=0)
    med = cmb._median(planes, np.empty(pix, np.float32), list(bad.copy()),
                      count)[0]
    np.testing.assert_array_equal(med, expected)
    plain = cmb._median(list(values.copy()), np.empty(pix, np.float32), None,
                        n)[0]
    np.testing.assert_array_equal(plain, np.median(values.astype(np.float64), axis=0))


def test_median_network_keep_values_permutes():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(9, 50)).astype(np.float32)
    _, planes, spare = cmb._median(list(values.copy()), np.empty(50, np.float32),
                                   None, 9, keep_values=True)
    np.testing.assert_array_equal(np.sort(np.array(planes), axis=0),
                                  np.sort(values, axis=0))
    assert not any(np.shares_memory(spare, p) for p in planes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_kept", [10 ** 9, 0])   # 0: radix fallback
@pytest.mark.parametrize("size", [1, 2, 7, 1000, 1001, 150_000])
def test_frame_median_is_exact(dtype, max_kept, size):
    rng = np.random.default_rng(size)
    data = rng.normal(-3, 50, size).astype(dtype)
    data[: size // 3] = np.round(data[: size // 3])  # ties
    if size > 10:
        data[5] = np.nan
        data[6] = np.inf
    row = data.reshape(1, size)
    expected = np.median(data[np.isfinite(data)].astype(np.float64))
    one_band = cmb._frame_median(lambda a, b: row[a:b], [(0, 1)], row.shape,
                                 dtype, max_kept)
    assert one_band == expected
    # as 2-D bands of rows
    if size % 2 == 0:
        image = data.reshape(2, size // 2)
        bands = [(0, 1), (1, 2)]
        med = cmb._frame_median(lambda a, b: image[a:b], bands, image.shape,
                                dtype, max_kept)
        assert med == expected
    assert cmb._radix_median(lambda a, b: row[a:b], [(0, 1)], dtype) == expected


def test_frame_median_survives_an_unrepresentative_sample(monkeypatch):
    calls = []
    radix = cmb._radix_median
    monkeypatch.setattr(cmb, "_radix_median",
                        lambda *a: calls.append(1) or radix(*a))
    size = 100_000
    data = np.ones(size, np.float32)
    step = size // cmb._SAMPLE_SIZE
    data[::step] = -5.0   # every sampled pixel is -5; the median is 1
    row = data.reshape(1, size)
    med = cmb._frame_median(lambda a, b: row[a:b], [(0, 1)], row.shape,
                            np.float32, 10 ** 9)
    assert med == 1.0
    assert calls == [1]  # the bracket missed, the exact fallback ran


def test_frame_median_of_nothing_is_nan():
    for dtype in (np.float32, np.float64):
        nothing = np.full((1, 4), np.nan, dtype)
        assert np.isnan(cmb._frame_median(lambda a, b: nothing[a:b], [(0, 1)],
                                          (1, 4), dtype, 100))
        assert np.isnan(cmb._radix_median(lambda a, b: nothing[a:b], [(0, 1)],
                                          dtype))


def test_default_mem_limit():
    limit = cmb.default_mem_limit()
    assert 0 < limit <= 2 * 1024 ** 3


def test_subtract_per_frame_matches_numpy():
    # Flats of two exposures, each with the dark of its own exposure.
    frames = bias_stack(6)
    rng = np.random.default_rng(5)
    short, long_ = (rng.normal(20, 3, SHAPE), rng.normal(80, 3, SHAPE))
    subs = [short, long_, short, 7.0, None, long_]
    for method in ("average", "median"):
        ours = combine(frames, method, subtract=subs, scale="inverse_median")
        diffs = [np.asarray(f, np.float64) - (0.0 if s is None else s)
                 for f, s in zip(frames, subs)]
        diffs = [(d.astype(np.float32) / np.median(d.astype(np.float32))) for d in diffs]
        reference = (np.mean if method == "average" else np.median)(diffs, axis=0)
        np.testing.assert_allclose(ours.data, reference, rtol=1e-5)
        assert ours.settings["subtract"] == "per frame"


# -- everything at once, in many bands, against numpy/astropy -----------------

def _reference_combine(frames, subs, method, scale, clip):
    """numpy/astropy reference for ``combine`` with every option at once.

    The values combined are, as documented: the frame minus its own
    subtrahend in float64, rounded once to float32; masked or non-finite
    pixels NaN; times the frame's factor in float64, rounded once; one
    astropy ``sigma_clip`` iteration over the frame axis.  Returns
    ``(data, mask, n_rejected, factors)``.
    """
    from astropy.stats import sigma_clip

    values = []
    for frame, sub in zip(frames, subs):
        data = np.ma.getdata(frame).astype(np.float64)
        data[np.ma.getmaskarray(frame)] = np.nan
        values.append((data - (0.0 if sub is None else sub)).astype(np.float32))
    if scale == "inverse_median":
        factors = [1.0 / np.median(v[np.isfinite(v)].astype(np.float64))
                   for v in values]
    else:
        factors = scale
    if factors is not None:
        values = [(v.astype(np.float64) * f).astype(np.float32)
                  for v, f in zip(values, factors)]
    stack = np.ma.masked_invalid(np.array(values, np.float64))
    n_rejected = 0
    if clip:
        func, dev = clip
        clipped = sigma_clip(stack, sigma=2.5, maxiters=1, cenfunc=func,
                             stdfunc=dev, axis=0)
        n_rejected = int((clipped.mask & ~stack.mask).sum())
        stack = clipped
    reduce = {"average": np.ma.mean, "median": np.ma.median, "sum": np.ma.sum}
    data = reduce[method](stack, axis=0)
    mask = np.ma.getmaskarray(stack).all(axis=0)
    return np.ma.filled(data, np.nan), mask, n_rejected, factors


@pytest.mark.parametrize("method,clip", [
    ("average", None), ("median", None), ("sum", None),
    ("average", ("mean", "std")), ("median", ("median", "mad_std")),
    ("average", ("median", "mad_std")), ("median", ("mean", "std")),
])
@pytest.mark.parametrize("scale", [None, "factors", "inverse_median"])
def test_every_option_at_once_in_many_bands(method, clip, scale):
    # Per-frame subtraction (one array shared by several frames), scaling,
    # NaN and masked pixels and clipping together, in bands of one row and
    # in bands of a few rows on two threads: each is the numpy/astropy
    # reference, and all of them the same bit for bit.
    rng = np.random.default_rng(21)
    shape, n = (40, 31), 9
    frames = [rng.normal(10000 + 300 * i, 40, shape).astype(np.float32)
              for i in range(n)]
    frames[1][rng.random(shape) < 0.05] = np.nan
    frames[4][3, :] = np.nan
    frames[6] = np.ma.MaskedArray(frames[6], mask=rng.random(shape) < 0.1)
    for i, j in [(0, 17), (2, 250), (5, 999), (7, 1000)]:
        frames[i].flat[j] += 4000.0           # outliers to clip
    for f in frames:
        np.asarray(f)[0, 0] = np.nan          # no valid value at all
    dark = rng.normal(500, 5, shape)          # float64, shared
    subs = [dark, 480.5, None, dark, dark.astype(np.float32), dark, 480.5,
            None, dark]
    factors = list(rng.uniform(0.8, 1.25, n)) if scale == "factors" else scale
    kwargs = dict(subtract=subs, scale=factors)
    if clip:
        # 2.5: with 9 frames mean/std cannot reject beyond 8/3 sigma
        kwargs.update(sigma_clip=True, sigma_clip_func=clip[0],
                      sigma_clip_dev_func=clip[1], sigma_clip_low_thresh=2.5,
                      sigma_clip_high_thresh=2.5)
    one_row = combine(frames, method, mem_limit=1, **kwargs)
    few_rows = combine(frames, method, mem_limit=250_000, threads=2, **kwargs)
    assert one_row.settings["bands"] == shape[0]
    assert 1 < few_rows.settings["bands"] < shape[0]
    assert few_rows.settings["threads"] == 2

    data, mask, n_rejected, ref_factors = _reference_combine(
        frames, subs, method, factors, clip)
    assert one_row.mask[0, 0] and np.isnan(one_row.data[0, 0])
    np.testing.assert_array_equal(one_row.mask, mask)
    if method == "median":   # exact: the same values, the same middle ones
        np.testing.assert_array_equal(one_row.data, data.astype(np.float32))
    else:                    # sums in another order
        assert_close(one_row.data, data)
    assert one_row.n_rejected == n_rejected
    assert (n_rejected > 0) == bool(clip)
    if scale is not None:
        np.testing.assert_allclose(one_row.settings["scale_factors"],
                                   ref_factors, rtol=1e-15)
    assert few_rows.data.tobytes() == one_row.data.tobytes()
    np.testing.assert_array_equal(few_rows.mask, one_row.mask)
    assert few_rows.n_rejected == one_row.n_rejected


# -- the pieces of combine ---------------------------------------------------

def test_a_shared_subtrahend_is_converted_once():
    # Frames of one exposure share their dark: an integer array passed for
    # several frames is converted to the work type once, and that one
    # copy is what the memory budget counts.
    dark = np.arange(12, dtype=np.int32).reshape(3, 4)
    subs = cmb._Subtrahends([dark, None, dark, 2.5], 4, (3, 4), np.dtype(np.float32))
    assert subs.per_frame and subs.description == "per frame"
    assert subs.pairs[0][1] is subs.pairs[2][1]
    assert subs.pairs[0][1].dtype == np.float32
    assert subs.copy_bytes == dark.size * 4
    assert subs.pairs[1] == (None, None) and subs.pairs[3] == (2.5, None)
    assert not subs.may_have_bad
    # One item for all frames, and a subtrahend that makes pixels NaN.
    nan_dark = np.where(dark > 5, np.nan, 1.0)
    one = cmb._Subtrahends(nan_dark, 3, (3, 4), np.dtype(np.float32))
    assert len(one.pairs) == 3 and one.copy_bytes == 0
    for scalar, array in one.pairs:   # used in place, not copied
        assert scalar is None and np.shares_memory(array, nan_dark)
    assert one.may_have_bad and one.description == "array"


@pytest.mark.parametrize("mem_limit", [1, 30_000, 200_000, 10 ** 9])
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_memory_plan_covers_every_row_once(mem_limit, threads):
    shape, n = (37, 53), 11
    args = cmb._Arguments.check("median", True, 3.0, 3.0, "median", "mad_std",
                                np.float32, mem_limit, threads)
    plan = cmb._plan_memory(args, shape, n, n_compressed=0, raw_size=2,
                            sub_copy_bytes=0)
    for bands, rows in ((plan.bands, plan.rows), (plan.med_bands, None)):
        assert bands[0][0] == 0 and bands[-1][1] == shape[0]
        assert all(a[1] == b[0] for a, b in zip(bands, bands[1:]))
        assert all(0 < r1 - r0 <= (rows or shape[0]) for r0, r1 in bands)
    assert 1 <= plan.workers <= threads
    if plan.workers > 1:
        assert len(plan.bands) >= plan.workers  # every worker gets a band
    if mem_limit == 1:   # below the floor: one row per band, one worker
        assert plan.rows == 1 and plan.workers == 1
    if mem_limit == 10 ** 9:   # the whole frame is read once for its median
        assert plan.med_bands == [(0, shape[0])]
