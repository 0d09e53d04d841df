"""Combining a stack of frames fast and in bounded memory.

:func:`combine` gives the results of :func:`ccdproc.combine` (average,
median or sum, optionally after one round of sigma clipping) without
holding the stack in memory and without re-reading whole files for every
chunk:

* the stack is processed in bands of rows; each band reads, from every
  frame, only the bytes of those rows (one ``pread`` per uncompressed FITS
  file, converted from big-endian integers with BZERO/BSCALE on the fly),
  so memory is bounded by ``mem_limit`` however many frames there are;
* tile-compressed (``.fz``) and gzipped files are decompressed once, kept
  in memory while they fit in the budget and otherwise spilled to a raw
  temporary file that is read like an uncompressed one;
* the median is a vectorised sorting network over frames (element-wise
  ``numpy.minimum``/``maximum`` over whole row bands), several times faster
  than ``numpy.median``/``nanmedian`` along the frame axis;
* bands are processed by a small thread pool: numpy releases the GIL in
  its loops.

Masked and non-finite pixels: pixels masked in a ``numpy.ma.MaskedArray``, FITS ``BLANK`` pixels and
non-finite pixels (NaN, +inf, -inf, in the frames or produced by
``subtract``) are all excluded from every statistic, the way ccdproc
excludes masked pixels.  (ccdproc itself only skips NaN; an inf that is
not clipped away propagates into its average and sum.)  A pixel excluded
or rejected in every frame is NaN in the result and True in
``CombineResult.mask``; for ``method="sum"`` ccdproc would give 0 there.
"""

import functools
import os
import tempfile
import threading
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.stats import mad_std

from . import fitsfile
from .errors import CalibrationError, CcdcalError, FrameError
from .progress import check, report

__all__ = ["CombineResult", "combine", "default_mem_limit"]

METHODS = ("average", "median", "sum")
CENTER_FUNCS = ("mean", "median")
DEV_FUNCS = ("std", "mad_std")

#: The factor turning a MAD into a Gaussian sigma, taken from
#: `astropy.stats.mad_std` itself (ccdproc's deviation) so the two agree:
#: the vectorised per-pixel MAD below cannot call it.
MAD_TO_STD = float(mad_std(np.array([-1.0, 1.0])))

_GiB = 1 << 30
# Bands aim at this many bytes of stack per worker: big enough that the
# Python overhead of a few hundred numpy calls per band is negligible,
# small enough that the band stays in the CPU's last-level cache while the
# median network sweeps it many times.
_TARGET_BAND_BYTES = 6 << 20
# Above this many frames a per-pixel sort beats the O(n log^2 n) network.
_NETWORK_MAX_FRAMES = 128
# Size of the sample that brackets a frame's median (see _frame_median).
_SAMPLE_SIZE = 32768
_SUB_CHUNK = 1 << 16
# Fraction of the budget that decompressed files may occupy in memory.
_CACHE_FRACTION = 0.5


@dataclass
class CombineResult:
    """What :func:`combine` returns.

    Attributes
    ----------
    data : numpy.ndarray
        The combined 2-D image, of the requested ``dtype``.
    n_frames : int
        Number of frames combined.
    n_rejected : int
        Number of frame pixels rejected by sigma clipping (pixels that were
        already masked or non-finite are not counted).
    mask : numpy.ndarray of bool
        True where every frame was masked, non-finite or rejected; ``data``
        is NaN there.
    method : str
        ``"average"``, ``"median"`` or ``"sum"``.
    settings : dict
        What was done, for provenance headers (method, clipping, scaling
        factors, subtraction, chunking).
    """

    data: np.ndarray
    n_frames: int
    n_rejected: int
    mask: np.ndarray
    method: str
    settings: dict = field(default_factory=dict)


def default_mem_limit():
    """The default memory budget: 2 GiB or a quarter of the RAM if less.

    Returns
    -------
    int
        Bytes.
    """
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return 2 * _GiB
    return int(min(2 * _GiB, total // 4))


def _default_threads():
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


# ---------------------------------------------------------------------------
# Frame sources: something that fills a float band with rows r0:r1 of a frame
# ---------------------------------------------------------------------------

class _ArraySource:
    """A frame already in memory (ndarray, masked array or CCDData-like)."""

    def __init__(self, name, data, mask=None):
        self.name = name
        self.data = data
        self.mask = mask
        self.may_have_bad = mask is not None or data.dtype.kind in "fc"

    @property
    def shape(self):
        return self.data.shape

    def read_rows(self, r0, r1, out, raw):
        np.copyto(out, self.data[r0:r1], casting="unsafe")
        if self.mask is not None:
            np.copyto(out, np.nan, where=self.mask[r0:r1])


_BITPIX_DTYPES = {8: np.dtype("u1"), 16: np.dtype(">i2"), 32: np.dtype(">i4"),
                  64: np.dtype(">i8"), -32: np.dtype(">f4"),
                  -64: np.dtype(">f8")}


class _RawSource:
    """Pixels stored uncompressed at a byte offset of a file.

    Used for plain FITS images (big-endian, with BZERO/BSCALE/BLANK) and for
    the native-endian temporary files that compressed frames spill to.
    A band is one positional read of contiguous bytes, so nothing outside
    the requested rows is read and nothing stays mapped in memory (pages of
    an ``np.memmap`` would count in the process's RSS until unmapped).
    """

    def __init__(self, name, path, offset, shape, dtype, bzero=0.0,
                 bscale=1.0, blank=None):
        self.name = name
        self.path = path
        self.offset = offset
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.bzero = bzero
        self.bscale = bscale
        self.blank = blank
        self.may_have_bad = blank is not None or self.dtype.kind == "f"

    def read_rows(self, r0, r1, out, raw):
        row_bytes = self.shape[1] * self.dtype.itemsize
        nbytes = (r1 - r0) * row_bytes
        buf = raw[:nbytes]
        fd = os.open(self.path, os.O_RDONLY)
        try:
            got = os.preadv(fd, [buf], self.offset + r0 * row_bytes)
        except OSError as exc:
            raise FrameError(self.name, f"cannot read ({exc.strerror})") from None
        finally:
            os.close(fd)
        if got != nbytes:
            raise FrameError(self.name, "truncated FITS (data ends early); "
                             "is the file still being written?")
        pix = buf.view(self.dtype).reshape(out.shape)
        # The ufuncs convert from big-endian integers on the fly.  Scale and
        # offset are scalars of the working type so that 16-bit data is
        # converted in a float32 loop (exact: BZERO=32768 plus a 16-bit
        # integer needs 17 of float32's 24 bits).
        bzero, bscale = out.dtype.type(self.bzero), out.dtype.type(self.bscale)
        if self.bscale != 1.0:
            np.multiply(pix, bscale, out=out, casting="unsafe")
            if self.bzero:
                np.add(out, bzero, out=out)
        elif self.bzero:
            np.add(pix, bzero, out=out, casting="unsafe")
        else:
            np.copyto(out, pix, casting="unsafe")
        if self.blank is not None:
            np.copyto(out, np.nan, where=(pix == self.blank))


def _frame_name(frame, index):
    if isinstance(frame, (str, os.PathLike)):
        return os.fspath(frame)
    return f"frame {index} (in-memory array)"


def _primary_data_offset(path):
    """Bytes before the primary HDU's data: its header blocks."""
    with open(path, "rb") as f:
        offset = 0
        while True:
            block = f.read(2880)
            if len(block) < 2880:
                raise FrameError(path, "truncated FITS (header ends early)")
            offset += 2880
            if any(block[i:i + 8] == b"END     " for i in range(0, 2880, 80)):
                return offset


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _locate_image(path):
    """Describe a FITS frame: ``("raw", _RawSource)`` or ``("compressed", shape)``."""
    info = fitsfile.read_header(path)
    shape = tuple(info.shape[-2:])
    header = info.header
    if _is_gzip(path):
        return "compressed", shape
    if info.hdu == 0:
        offset = _primary_data_offset(path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                hdu = hdul[info.hdu]
                if isinstance(hdu, fits.CompImageHDU):
                    return "compressed", shape
                offset = hdul.fileinfo(info.hdu)["datLoc"]
                header = hdu.header
    bitpix = header.get("BITPIX")
    if bitpix not in _BITPIX_DTYPES:
        raise FrameError(path, f"unsupported BITPIX {bitpix!r}")
    dtype = _BITPIX_DTYPES[bitpix]
    nbytes = shape[0] * shape[1] * dtype.itemsize
    if os.path.getsize(path) < offset + nbytes:
        raise FrameError(path, "truncated FITS (data ends early); "
                         "is the file still being written?")
    blank = header.get("BLANK") if bitpix > 0 else None
    source = _RawSource(path, path, offset, shape, dtype,
                        bzero=float(header.get("BZERO", 0.0)),
                        bscale=float(header.get("BSCALE", 1.0)), blank=blank)
    return "raw", source


def _array_source(frame, name):
    if isinstance(frame, np.ma.MaskedArray):
        data = np.ma.getdata(frame)
        mask = np.ma.getmaskarray(frame) if frame.mask is not np.ma.nomask else None
    elif isinstance(frame, np.ndarray):
        data, mask = frame, None
    elif hasattr(frame, "data") and hasattr(frame, "mask"):  # CCDData and kin
        data = np.asarray(frame.data)
        mask = None if frame.mask is None else np.asarray(frame.mask, dtype=bool)
    else:
        raise FrameError(name, f"not a file name or an image array "
                         f"({type(frame).__name__})")
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
        mask = None if mask is None else mask.reshape(data.shape)
    if data.ndim != 2:
        raise FrameError(name, f"not a 2-D image (data shape {data.shape})")
    if data.dtype.kind not in "biuf":
        raise FrameError(name, f"unsupported pixel type {data.dtype}")
    if mask is not None and not mask.any():
        mask = None
    return _ArraySource(name, data, mask)


# ---------------------------------------------------------------------------
# Order statistics over the frame axis
# ---------------------------------------------------------------------------

def _batcher_pairs(n):
    """Comparators of Batcher's odd-even merge sort for ``n`` inputs."""
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    # Padding up to a power of two with +inf inputs makes every comparator
    # that touches them a no-op, so they are simply dropped.
    return [(a, b) for a, b in pairs if b < n]


@functools.lru_cache(maxsize=64)
def _median_network(n, outputs, keep_values):
    """The comparators needed to put sorted positions ``outputs`` in place.

    Returns ``(a, b, need_min, need_max)`` tuples.  Comparators that cannot
    influence the wanted outputs are pruned.  With ``keep_values`` every
    comparator writes both min and max, so each pixel's values stay a
    permutation of the inputs; otherwise a comparator whose other output is
    never used again writes only the one that is.
    """
    needed = set(outputs)
    kept = []
    for a, b in reversed(_batcher_pairs(n)):
        use_a, use_b = a in needed, b in needed
        if use_a or use_b:
            if keep_values:
                use_a = use_b = True
            kept.append((a, b, use_a, use_b))
            needed.update((a, b))
    return tuple(reversed(kept))


def _sort_planes(planes, tmp, outputs, keep_values):
    """Partially sort ``planes`` (one 1-D array per frame) pixel by pixel.

    Returns ``(planes, spare)``: a list whose positions ``outputs`` hold the
    order statistics, and the one buffer among ``planes + [tmp]`` that is not
    in it.  The buffers are reused and overwritten.
    """
    n = len(planes)
    if n > _NETWORK_MAX_FRAMES:
        sorted_ = np.sort(np.stack(planes, axis=1), axis=1)
        return [sorted_[:, j] for j in range(n)], tmp
    planes = list(planes)
    for a, b, use_a, use_b in _median_network(n, tuple(outputs), keep_values):
        pa, pb = planes[a], planes[b]
        if use_a and use_b:
            # min into the spare buffer, max in place, then swap buffers:
            # no copies.
            np.minimum(pa, pb, out=tmp)
            np.maximum(pa, pb, out=pb)
            planes[a], tmp = tmp, pa
        elif use_a:
            np.minimum(pa, pb, out=pa)
        else:
            np.maximum(pa, pb, out=pb)
    return planes, tmp


def _pad_masked(planes, bad):
    """Replace excluded values by +inf/-inf, alternating within each pixel.

    With ``d`` excluded values at a pixel, ``d // 2`` become -inf and the
    rest +inf.  The valid values then occupy the middle of the sorted
    column, and their median always involves only sorted positions
    ``n//2 - 1`` and ``n//2`` of the full column (see `_pick_median`).
    """
    # The value the next excluded entry of each pixel gets: flipped before
    # each use, so the first is +inf, the second -inf, and so on.
    pad = np.full(planes[0].shape, -np.inf, dtype=planes[0].dtype)
    for p, b in zip(planes, bad):
        np.negative(pad, out=pad, where=b)
        np.copyto(p, pad, where=b)


def _pick_median(lo, hi, n, count):
    """Median of the valid values, from sorted positions n//2-1 and n//2.

    ``count`` valid values padded as in `_pad_masked` sit at sorted
    positions ``m .. m + count - 1`` with ``m = (n - count) // 2``; their
    middle elements ``m + (count-1)//2`` and ``m + count//2`` are always
    ``n//2 - 1`` or ``n//2``.
    """
    m = (n - count) // 2
    first = (m + (count - 1) // 2) == n // 2 - 1
    second = (m + count // 2) == n // 2 - 1
    lo = lo.astype(np.float64)
    hi = hi.astype(np.float64)
    med = np.where(first, lo, hi)
    with np.errstate(invalid="ignore"):  # -inf + inf where count == 0
        med += np.where(second, lo, hi)
    med *= 0.5
    med[count == 0] = np.nan
    return med


def _median(planes, tmp, bad, count, keep_values=False):
    """Per-pixel median over ``planes``, ignoring entries flagged in ``bad``.

    ``bad`` is None when nothing is excluded.  Returns ``(median as
    float64, planes in their new order, spare buffer)``.  With
    ``keep_values`` the returned planes are a per-pixel permutation of the
    inputs, excluded entries having become -inf/+inf.
    """
    n = len(planes)
    if n == 1:
        med = planes[0].astype(np.float64)
        if bad is not None:
            med[bad[0]] = np.nan
        return med, list(planes), tmp
    if bad is None:
        outputs = (n // 2,) if n % 2 else (n // 2 - 1, n // 2)
        out, tmp = _sort_planes(planes, tmp, outputs, keep_values)
        med = out[n // 2].astype(np.float64)
        if n % 2 == 0:
            med += out[n // 2 - 1]
            med *= 0.5
        return med, out, tmp
    _pad_masked(planes, bad)
    out, tmp = _sort_planes(planes, tmp, (n // 2 - 1, n // 2), keep_values)
    return _pick_median(out[n // 2 - 1], out[n // 2], n, count), out, tmp


# ---------------------------------------------------------------------------
# Combining one band
# ---------------------------------------------------------------------------

@dataclass
class _Plan:
    method: str
    n: int
    work_dtype: np.dtype
    sigma_clip: bool
    low: float      # np.inf: no rejection on that side
    high: float
    center: str
    dev: str
    may_have_bad: bool


class _Scratch(threading.local):
    """Per-thread buffers, reused from band to band."""

    def get(self, name, shape, dtype):
        buffers = self.__dict__.setdefault("buffers", {})
        size = int(np.prod(shape))
        buf = buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(size, dtype=dtype)
            buffers[name] = buf
        return buf[:size].reshape(shape)


def _valid_sum(planes, bad):
    """Per-pixel float64 sum of the planes, skipping ``bad`` entries."""
    acc = np.zeros(planes[0].shape, np.float64)
    if bad is None:
        for p in planes:
            np.add(acc, p, out=acc)
    else:
        for p, b in zip(planes, bad):
            np.add(acc, p, out=acc, where=~b)
    return acc


def _find_bad(planes, scratch):
    """Flag non-finite entries; returns ``(list of bool planes, count)``."""
    badbuf = scratch.get("bad", (len(planes), planes[0].size), np.bool_)
    for p, b in zip(planes, badbuf):
        np.isfinite(p, out=b)
        np.logical_not(b, out=b)
    count = len(planes) - badbuf.sum(axis=0, dtype=np.int32)
    return list(badbuf), count


def _clip_bounds(planes, plan, scratch, acc, bad, count, median):
    """Lower and upper rejection bounds per pixel (None: no bound)."""
    n, pix = plan.n, planes[0].size
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = acc / count if acc is not None else None
        if plan.dev == "std":
            # Two passes about the mean, like astropy, for the same bounds.
            var = np.zeros(pix, np.float64)
            d = scratch.get("dev", (pix,), np.float64)
            valid = scratch.get("valid", (pix,), np.bool_)
            for i, p in enumerate(planes):
                np.subtract(p, mean, out=d)
                np.multiply(d, d, out=d)
                if bad is None:
                    np.add(var, d, out=var)
                else:
                    np.logical_not(bad[i], out=valid)
                    np.add(var, d, out=var, where=valid)
            var /= count
            dev = np.sqrt(var, out=var)
        else:
            devs = list(scratch.get("devs", (n, pix), np.float64))
            for p, d in zip(planes, devs):
                np.subtract(p, median, out=d)
                np.abs(d, out=d)
            dtmp = scratch.get("dtmp", (pix,), np.float64)
            dev = _median(devs, dtmp, bad, count)[0]
            dev *= MAD_TO_STD
        center = median if plan.center == "median" else mean
        lower = center - plan.low * dev if np.isfinite(plan.low) else None
        upper = center + plan.high * dev if np.isfinite(plan.high) else None
    if plan.work_dtype == np.float32:
        lower = _as_float32_bound(lower, up=True)
        upper = _as_float32_bound(upper, up=False)
    return lower, upper


def _as_float32_bound(bound, up):
    """A float32 bound that float32 values compare against like ``bound``.

    For float32 ``x``: ``x < b`` exactly when ``x < c`` with ``c`` the
    smallest float32 >= ``b``, and ``x > b`` exactly when ``x > c`` with
    ``c`` the largest float32 <= ``b``.  Comparing float32 planes with a
    float32 bound is twice as fast as with a float64 one, and rejects the
    very same values.
    """
    if bound is None:
        return None
    c = bound.astype(np.float32)
    with np.errstate(invalid="ignore"):
        off = c < bound if up else c > bound
    # Step ``c`` by one float32 toward ``bound`` where rounding went the
    # wrong way: +-1 on the order-preserving integer image (numpy's
    # nextafter is ten times slower).
    keys = c.view(np.int32)
    keys ^= (keys >> 31) & np.int32(0x7FFFFFFF)
    if up:
        np.add(keys, off, out=keys, casting="unsafe")
    else:
        np.subtract(keys, off, out=keys, casting="unsafe")
    keys ^= (keys >> 31) & np.int32(0x7FFFFFFF)
    return c


def _reject(planes, plan, scratch, acc, bad, count, lower, upper):
    """Flag values outside the bounds; keep ``acc`` and ``count`` current.

    Returns ``(n_rejected, acc, bad, count)``.
    """
    n, pix = plan.n, planes[0].size
    rej = scratch.get("rej", (pix,), np.bool_)
    above = scratch.get("above", (pix,), np.bool_)
    n_rejected = 0
    with np.errstate(invalid="ignore"):
        for i, p in enumerate(planes):
            if lower is not None:
                np.less(p, lower, out=rej)
                if upper is not None:
                    np.greater(p, upper, out=above)
                    np.logical_or(rej, above, out=rej)
            elif upper is not None:
                np.greater(p, upper, out=rej)
            else:
                return 0, acc, bad, count
            if bad is not None:
                np.greater(rej, bad[i], out=rej)  # rej and not already bad
            k = int(np.count_nonzero(rej))
            if not k:
                continue
            n_rejected += k
            if bad is None:
                badbuf = scratch.get("bad", (n, pix), np.bool_)
                badbuf[:] = False
                bad = list(badbuf)
                count = np.full(pix, n, np.int32)
            if 8 * k < pix:
                # Rejections are usually sparse: update by index.
                idx = np.flatnonzero(rej)
                bad[i][idx] = True
                count[idx] -= 1
                if acc is not None:
                    acc[idx] -= p[idx]
            else:
                np.logical_or(bad[i], rej, out=bad[i])
                np.subtract(count, rej, out=count, casting="unsafe")
                if acc is not None:
                    np.subtract(acc, p, out=acc, where=rej)
    return n_rejected, acc, bad, count


def _combine_band(planes, plan, scratch):
    """Combine one band: ``planes`` holds one flat array per frame.

    Returns ``(values as float64, count of contributing frames, rejected)``;
    ``count`` is the scalar ``n`` when every value contributed.  The planes
    are overwritten.
    """
    n, pix = plan.n, planes[0].size
    tmp = scratch.get("tmp", (pix,), plan.work_dtype)
    clip_mean = plan.sigma_clip and (plan.center == "mean" or plan.dev == "std")
    clip_median = plan.sigma_clip and (plan.center == "median"
                                       or plan.dev == "mad_std")
    need_sum = plan.method != "median" or clip_mean

    acc, bad, count = None, None, n
    if need_sum or plan.may_have_bad:
        acc = _valid_sum(planes, None)
        # A sum is finite exactly when all its terms are, so this one
        # reduction tells whether the band needs the masked code path.
        if plan.may_have_bad and not np.isfinite(acc).all():
            bad, count = _find_bad(planes, scratch)
            acc = _valid_sum(planes, bad)
        if not need_sum:
            acc = None

    n_rejected = 0
    median = None
    if plan.sigma_clip:
        if clip_median:
            median, planes, tmp = _median(planes, tmp, bad, count,
                                          keep_values=True)
            if bad is not None:
                # The network moved values between frames within each
                # pixel; the +-inf markers of excluded values moved along.
                for p, b in zip(planes, bad):
                    np.isfinite(p, out=b)
                    np.logical_not(b, out=b)
        lower, upper = _clip_bounds(planes, plan, scratch, acc, bad, count,
                                    median)
        count_before = count if np.isscalar(count) else count.copy()
        n_rejected, acc, bad, count = _reject(planes, plan, scratch, acc, bad,
                                              count, lower, upper)

    changed = None
    if plan.method == "median" and median is not None:
        changed = np.flatnonzero(count != count_before) if n_rejected else []
    if changed is not None and 3 * len(changed) < pix:
        # The median of the survivors differs from the clipping center only
        # where something was rejected: recompute it for those pixels alone.
        values = median
        if len(changed):
            m = changed.size
            values[changed] = _median(
                [p[changed] for p in planes], np.empty(m, plan.work_dtype),
                [b[changed] for b in bad], count[changed])[0]
    elif plan.method == "median":
        values = _median(planes, tmp, bad, count)[0]
    else:
        values = acc
        if plan.method == "average":
            with np.errstate(invalid="ignore", divide="ignore"):
                values /= count
    if bad is not None:
        values[count == 0] = np.nan
    return values, count, n_rejected


# ---------------------------------------------------------------------------
# Per-frame median (the flat recipe's 1/median scaling), in bounded memory
# ---------------------------------------------------------------------------

def _order_keys(values):
    """Unsigned integers that sort like the floats ``values`` do."""
    if values.dtype == np.float32:
        signed, unsigned, top = np.int32, np.uint32, 0x80000000
        bits = 31
    else:
        signed, unsigned, top = np.int64, np.uint64, 0x8000000000000000
        bits = 63
    i = values.view(signed)
    flipped = i ^ ((i >> bits) & signed(~top & (2 ** (bits + 1) - 1)))
    return flipped.view(unsigned) ^ unsigned(top)


def _keys_to_value(key, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        signed, unsigned, top, bits = np.int32, np.uint32, 0x80000000, 31
    else:
        signed, unsigned, top, bits = np.int64, np.uint64, 0x8000000000000000, 63
    k = np.array([key], dtype=unsigned) ^ unsigned(top)
    i = k.view(signed)
    i = i ^ ((i >> bits) & signed(~top & (2 ** (bits + 1) - 1)))
    return float(i.view(dtype)[0])


def _frame_median(read_band, bands, shape, dtype, max_kept):
    """Exact median of the finite pixels of one frame, read band by band.

    1. A strided sample of the frame gives two values ``lo < hi`` that
       bracket the median with near certainty (8 sigma of the sample
       quantile's scatter).
    2. A second pass counts the pixels below ``lo`` and keeps those within
       ``[lo, hi]`` -- about 5 % of them.
    3. If the counts show that the median is among the kept pixels, a
       selection in them gives it exactly.  Otherwise (an unlucky sample,
       or more kept pixels than ``max_kept``) `_radix_median` does it.

    Two cheap passes instead of a partition of the whole frame: about
    three times faster than ``numpy.median``, and memory stays at a band.
    With a single band the frame is read once.

    Returns
    -------
    float
        The two middle values averaged in float64; NaN if the frame has no
        finite pixel.
    """
    cached = {}

    def finite_values(band):
        if band in cached:
            return cached[band]
        values = read_band(*band).ravel()
        # A sum is finite exactly when all terms are (overflow aside, which
        # only costs the slower check): cheaper than np.isfinite.
        if not np.isfinite(np.sum(values)):
            values = values[np.isfinite(values)]
        if len(bands) == 1:
            cached[band] = values
        return values

    step = max(1, shape[0] * shape[1] // _SAMPLE_SIZE)
    while np.gcd(step, shape[1]) != 1:
        step += 1  # visit every column, not a comb of them
    samples, total = [], 0
    for band in bands:
        values = finite_values(band)
        total += values.size
        samples.append(values[::step].copy())
    if total == 0:
        return float("nan")
    r1, r2 = (total - 1) // 2, total // 2
    sample = np.concatenate(samples)
    m = sample.size
    margin = int(4 * np.sqrt(m)) + 2
    q = (r1 * m) // total
    k_lo, k_hi = max(0, q - margin), min(m - 1, q + margin)
    sample.partition(sorted({k_lo, k_hi}))
    lo = sample[k_lo] if k_lo > 0 else -np.inf
    hi = sample[k_hi] if k_hi < m - 1 else np.inf
    below, kept, n_kept = 0, [], 0
    # Sub-chunks small enough to stay in the CPU cache between the
    # comparisons and the compress: twice as fast as whole-band arrays.
    low_buf = np.empty(_SUB_CHUNK, np.bool_)
    inside_buf = np.empty(_SUB_CHUNK, np.bool_)
    for band in bands:
        values = finite_values(band)
        for s0 in range(0, values.size, _SUB_CHUNK):
            v = values[s0:s0 + _SUB_CHUNK]
            low, inside = low_buf[:v.size], inside_buf[:v.size]
            np.less(v, lo, out=low)
            below += int(np.count_nonzero(low))
            np.less_equal(v, hi, out=inside)
            np.greater(inside, low, out=inside)  # lo <= value <= hi
            kept.append(v[inside])
            n_kept += kept[-1].size
        if n_kept > max_kept:
            break
    else:
        if below <= r1 and r2 < below + n_kept:
            kept = np.concatenate(kept)
            kept.partition(sorted({r1 - below, r2 - below}))
            return (float(kept[r1 - below]) + float(kept[r2 - below])) / 2.0
    del kept
    return _radix_median(read_band, bands, dtype)


def _radix_median(read_band, bands, dtype):
    """Exact median of the finite pixels of one frame, read band by band.

    A radix selection on the order-preserving integer image of the floats:
    each pass histograms the next 16 bits of the keys that share the
    prefix found so far (2 passes for float32, 4 for float64).  Memory
    stays at one band whatever the data.

    Returns
    -------
    float
        NaN if the frame has no finite pixel.
    """
    dtype = np.dtype(dtype)
    nbits = dtype.itemsize * 8
    ranks = None
    prefixes = None   # known high bits for each of the two ranks
    known = 0         # how many high bits are known
    while known < nbits:
        shift = nbits - known - 16
        wanted = sorted(set(prefixes)) if prefixes is not None else [None]
        hists = {p: np.zeros(1 << 16, np.int64) for p in wanted}
        for band in bands:
            values = read_band(*band).ravel()
            finite = np.isfinite(values)
            if not finite.all():
                values = values[finite]
            keys = _order_keys(values)
            if prefixes is None:
                hists[None] += np.bincount((keys >> shift).astype(np.intp),
                                           minlength=1 << 16)
                continue
            high = keys >> (shift + 16)
            for p in wanted:
                sel = keys[high == p]
                digits = ((sel >> shift) & 0xFFFF).astype(np.intp)
                hists[p] += np.bincount(digits, minlength=1 << 16)
        if prefixes is None:
            total = int(hists[None].sum())
            if total == 0:
                return float("nan")
            ranks = [(total - 1) // 2, total // 2]
            prefixes = [0, 0]
            hist_for = [hists[None], hists[None]]
        else:
            hist_for = [hists[p] for p in prefixes]
        for j in range(2):
            cum = np.cumsum(hist_for[j])
            digit = int(np.searchsorted(cum, ranks[j], side="right"))
            ranks[j] -= int(cum[digit - 1]) if digit else 0
            prefixes[j] = (prefixes[j] << 16) | digit
        known += 16
    lo, hi = (_keys_to_value(p, dtype) for p in prefixes)
    return (lo + hi) / 2.0


# ---------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------

def combine(frames, method="median", *, subtract=None, scale=None,
            sigma_clip=False, sigma_clip_low_thresh=3.0,
            sigma_clip_high_thresh=3.0, sigma_clip_func="median",
            sigma_clip_dev_func="mad_std", mem_limit=None, dtype=np.float32,
            progress=None, cancel=None, threads=None):
    """Combine a stack of frames like :func:`ccdproc.combine`, in bounded memory.

    Parameters
    ----------
    frames : sequence of path-like or 2-D array
        FITS file names (plain, multi-extension, ``.fz`` or ``.gz``) and/or
        2-D arrays (``numpy.ma.MaskedArray`` and CCDData masks are honoured),
        all of one shape.
    method : {"median", "average", "sum"}
        How to combine the pixels that survive masking and clipping.  As in
        ccdproc, ``"sum"`` is the plain sum of the surviving values (not
        rescaled for the excluded ones).
    subtract : None, float, 2-D array, or a list of these, optional
        Subtracted from every frame first (master bias, or bias + scaled
        dark).  A list or tuple with one item per frame subtracts each
        frame's own (flats of several exposures, each with its own dark);
        pass the same array object for frames that share it, so it is
        converted once.
    scale : None, sequence of float or "inverse_median", optional
        Per-frame multipliers applied after ``subtract`` (ccdproc meaning:
        ``frame * scale[i]``).  ``"inverse_median"`` multiplies each frame by
        1 / (median of its valid pixels after ``subtract``), the flat recipe.
    sigma_clip : bool, optional
        Reject, per pixel, values further than the thresholds from the
        center of the stack (one iteration, as ``ccdproc.combine`` does),
        then combine the survivors.  Clipping is done on the frames after
        ``subtract`` and ``scale`` -- the values that are combined --
        whereas ccdproc clips before scaling; without ``scale`` the same
        pixels are rejected as by ccdproc.
    sigma_clip_low_thresh, sigma_clip_high_thresh : float or None, optional
        Rejection thresholds in units of the deviation; None disables that
        side, as ccdproc documents (ccdproc itself passes None on to
        astropy, which then uses 3).  The sign is ignored.
    sigma_clip_func : {"median", "mean"}, optional
        Center of the stack for clipping.
    sigma_clip_dev_func : {"mad_std", "std"}, optional
        Deviation for clipping: the median absolute deviation from the
        median scaled to a Gaussian sigma (`astropy.stats.mad_std`), or
        the standard deviation about the mean.  The defaults are the robust
        pair ccdproc's documentation recommends (``ccdproc.combine``
        itself defaults to mean and std): with N frames a mean/std clip
        can never reject a value further out than (N - 1)/sqrt(N) sigma,
        2.85 sigma for ten frames, so a 3-sigma mean/std clip rejects
        nothing.
    mem_limit : int, optional
        Budget in bytes for everything this call allocates, the result
        included (default: :func:`default_mem_limit`); arrays passed in
        ``frames`` are the caller's and not counted.  The work is split
        into bands of rows that fit in it, whatever the number of frames;
        the budget cannot go below the result plus one row of the stack.
        Decompressed ``.fz``/``.gz`` frames are kept in memory while they
        fit in half of it, and written raw to a temporary folder otherwise.
    dtype : numpy float dtype, optional
        Type of the result.  Work is done in float32 for float32 results
        (exact for integer pixels up to 2**24) with float64 accumulators,
        and in float64 for float64 results.
    progress : callable, optional
        ``progress(done, total, message)``, called from this thread.
    cancel : CancelToken, optional
        Checked between bands; raises :class:`~ginga_ccdcal.errors.Cancelled`.
    threads : int, optional
        Worker threads (default: available cores, at most 4).

    Returns
    -------
    CombineResult

    Raises
    ------
    CcdcalError
        No frames, or a bad argument.
    FrameError
        A frame that cannot be read, or whose shape differs from the first.
    CalibrationError
        ``scale="inverse_median"`` on a frame whose median is 0 or undefined.
    Cancelled

    Notes
    -----
    Masked pixels, FITS ``BLANK`` pixels and non-finite pixels (NaN, inf)
    are excluded from every statistic.  A pixel excluded or rejected in
    every frame is NaN in ``data`` and True in ``mask`` (ccdproc gives 0
    there for ``method="sum"``).

    Examples
    --------
    >>> import numpy as np
    >>> frames = [np.full((4, 5), v, dtype=np.uint16) for v in (10, 12, 50)]
    >>> result = combine(frames, method="median")
    >>> float(result.data[0, 0])
    12.0
    """
    frames = list(frames)
    if not frames:
        raise CcdcalError("no frames to combine")
    args = _Arguments.check(method, sigma_clip, sigma_clip_low_thresh,
                            sigma_clip_high_thresh, sigma_clip_func,
                            sigma_clip_dev_func, dtype, mem_limit, threads)
    n = len(frames)
    sources = _FrameSources(frames, cancel)
    subtrahends = _Subtrahends(subtract, n, sources.shape, args.work)
    raw_size = sources.raw_itemsize(args.work)
    memory = _plan_memory(args, sources.shape, n, len(sources.compressed),
                          raw_size, subtrahends.copy_bytes)
    factors, inverse_median = _scale_factors(scale, n)

    steps = _Steps(progress, len(sources.compressed)
                   + (n if inverse_median else 0) + len(memory.bands))
    workers = _Workers(memory.workers, cancel)
    try:
        sources.decompress(args.work, memory.n_cached, steps, cancel)
        reader = _BandReader(sources.sources, subtrahends, sources.shape,
                             args.work, raw_size, _Scratch())
        if inverse_median:
            factors = _inverse_median_factors(reader, sources.names, memory,
                                              workers, steps)
        plan = args.band_plan(n, may_have_bad=(
            subtrahends.may_have_bad or sources.may_have_bad()
            or (factors is not None and not np.all(np.isfinite(factors)))))
        data, mask, n_rejected = _combine_bands(reader, factors, plan,
                                                memory.bands, args.out_dtype,
                                                workers, steps)
    finally:
        workers.shutdown()
        sources.cleanup()
    return CombineResult(data=data, n_frames=n, n_rejected=int(n_rejected),
                         mask=mask, method=method,
                         settings=_settings(args, n, subtrahends, scale,
                                            factors, memory, sources))


# ---------------------------------------------------------------------------
# The pieces of combine: checked arguments, where each frame's pixels come
# from, what is subtracted, the memory plan, the scale factors, the band
# loop and the result's settings
# ---------------------------------------------------------------------------

def _check_threshold(value, name):
    """A clipping threshold as a float >= 0; None (that side off) as inf."""
    if value is None:
        return np.inf
    try:
        value = abs(float(value))
    except (TypeError, ValueError):
        raise CcdcalError(f"{name} must be a number or None, not {value!r}") from None
    return value


@dataclass
class _Arguments:
    """The scalar arguments of :func:`combine`, checked and normalised.

    Checked before any file is opened, so that a typo in a keyword costs
    nothing; ``work`` is the type the stack is held and combined in.
    """

    method: str
    sigma_clip: bool
    low: float      # np.inf: no rejection on that side
    high: float
    center: str
    dev: str
    out_dtype: np.dtype
    work: np.dtype
    mem_limit: int
    threads: int

    @classmethod
    def check(cls, method, sigma_clip, low, high, center, dev, dtype,
              mem_limit, threads):
        """Raise `CcdcalError` for a bad argument; fill in the defaults."""
        if method not in METHODS:
            raise CcdcalError(f"unknown combine method {method!r}; "
                              f"use one of {', '.join(METHODS)}")
        if sigma_clip:
            if center not in CENTER_FUNCS:
                raise CcdcalError(f"sigma_clip_func must be one of {CENTER_FUNCS}, "
                                  f"not {center!r}")
            if dev not in DEV_FUNCS:
                raise CcdcalError(f"sigma_clip_dev_func must be one of {DEV_FUNCS}, "
                                  f"not {dev!r}")
        low = _check_threshold(low, "sigma_clip_low_thresh")
        high = _check_threshold(high, "sigma_clip_high_thresh")
        out_dtype = np.dtype(dtype)
        if out_dtype.kind != "f":
            raise CcdcalError(f"dtype must be a float type, not {out_dtype}")
        work = np.dtype(np.float64 if out_dtype.itemsize > 4 else np.float32)
        mem_limit = int(default_mem_limit() if mem_limit is None else mem_limit)
        threads = _default_threads() if threads is None else max(1, int(threads))
        return cls(method=method, sigma_clip=bool(sigma_clip), low=low,
                   high=high, center=center, dev=dev, out_dtype=out_dtype,
                   work=work, mem_limit=mem_limit, threads=threads)

    def band_plan(self, n, may_have_bad):
        """The `_Plan` every band is combined with."""
        return _Plan(method=self.method, n=n, work_dtype=self.work,
                     sigma_clip=self.sigma_clip, low=self.low, high=self.high,
                     center=self.center, dev=self.dev, may_have_bad=may_have_bad)


class _FrameSources:
    """Where the pixels of each frame come from, one source per frame.

    Every frame is looked at (its header, or the array) before any heavy
    work, so that a file of the wrong shape or an unreadable one is
    reported at once rather than after minutes of combining.  Compressed
    files cannot be read by rows: their source is None until `decompress`
    has been called, once the memory plan says how many of them may stay
    in memory.  `cleanup` removes the temporary files of the others.

    Attributes
    ----------
    names : list of str
        The frames' names for messages (file name or "frame i").
    sources : list
        An ``_ArraySource`` or ``_RawSource`` per frame (None for a
        compressed file not yet decompressed).
    compressed : list of int
        Indices of the compressed frames.
    shape : tuple of int
        The common image shape.
    """

    def __init__(self, frames, cancel):
        self.names = []
        self.sources = [None] * len(frames)
        self.compressed = []
        self.shape = None
        self._tmpdir = None
        for i, frame in enumerate(frames):
            check(cancel)
            name = _frame_name(frame, i)
            self.names.append(name)
            self.sources[i], shape = _open_frame(frame, name)
            if self.sources[i] is None:
                self.compressed.append(i)
            if self.shape is None:
                self.shape = shape
            else:
                self._check_shape(name, shape)

    def _check_shape(self, name, shape):
        if shape != self.shape:
            raise FrameError(name, f"image shape {shape} differs from "
                             f"{self.shape} of the first frame ({self.names[0]})")

    def raw_itemsize(self, work):
        """Bytes per pixel of the buffer that file bytes are read into."""
        return max([s.dtype.itemsize for s in self.sources
                    if isinstance(s, _RawSource)]
                   + [work.itemsize if self.compressed else 1])

    def decompress(self, work, n_cached, steps, cancel):
        """Decompress the compressed frames once, keeping ``n_cached`` in memory.

        The others are written raw to a temporary folder, so that bands
        can be read back by offset like an uncompressed file.
        """
        for i in self.compressed:
            check(cancel)
            name = self.names[i]
            data = fitsfile.read_image(name, dtype=work)[0]
            self._check_shape(name, tuple(data.shape))
            if n_cached > 0:
                n_cached -= 1
                self.sources[i] = _ArraySource(name, data)
            else:
                if self._tmpdir is None:
                    self._tmpdir = tempfile.TemporaryDirectory(
                        prefix="ccdcal-combine-")
                path = os.path.join(self._tmpdir.name, f"frame{i}.raw")
                data.tofile(path)
                self.sources[i] = _RawSource(name, path, 0, self.shape, work)
            del data
            steps.advance(f"decompressed {os.path.basename(name)}")

    def may_have_bad(self):
        """Whether any frame may hold masked, BLANK or non-finite pixels."""
        return any(s.may_have_bad for s in self.sources)

    def n_spilled(self):
        """How many decompressed frames went to the temporary folder."""
        return sum(1 for s in self.sources
                   if isinstance(s, _RawSource) and s.path != s.name)

    def cleanup(self):
        """Remove the temporary folder of spilled frames, if any."""
        if self._tmpdir is not None:
            self._tmpdir.cleanup()


def _open_frame(frame, name):
    """``(source, shape)`` of a frame; the source is None for a compressed file."""
    if isinstance(frame, (str, os.PathLike)):
        kind, what = _locate_image(name)
        return (what, what.shape) if kind == "raw" else (None, what)
    source = _array_source(frame, name)
    return source, source.shape


class _Subtrahends:
    """What is subtracted from each frame: a ``(scalar, array)`` pair each.

    An array given for several frames (the same object) is converted once
    and shared.  ``copy_bytes`` (what the conversions allocated) counts in
    the memory budget, and ``may_have_bad`` tells whether the subtraction
    can make pixels non-finite.
    """

    def __init__(self, subtract, n, shape, work):
        self.per_frame = _is_per_frame(subtract, n)
        parsed = {}

        def parse(item):
            if id(item) not in parsed:
                parsed[id(item)] = _parse_subtract(item, shape, work)
            return parsed[id(item)]

        self.pairs = ([parse(item)[:2] for item in subtract] if self.per_frame
                      else [parse(subtract)[:2]] * n)
        self.may_have_bad = any(p[2] for p in parsed.values())
        self.copy_bytes = sum(p[3] for p in parsed.values())
        scalar = self.pairs[0][0]
        self.description = ("per frame" if self.per_frame else
                            "none" if subtract is None else
                            f"scalar {scalar!r}" if scalar is not None else "array")


def _is_per_frame(subtract, n):
    """Whether ``subtract`` is one item (None, number, 2-D array) per frame."""
    if not isinstance(subtract, (list, tuple)) or len(subtract) != n:
        return False
    return all(item is None or np.ndim(item) in (0, 2) for item in subtract)


def _parse_subtract(subtract, shape, work):
    """``(scalar, array, may hold non-finite values, bytes copied)``."""
    if subtract is None:
        return None, None, False, 0
    if np.ndim(subtract) == 0:
        scalar = float(subtract)
        return scalar, None, not np.isfinite(scalar), 0
    copied = 0
    sub = subtract
    if isinstance(sub, np.ma.MaskedArray):
        sub = sub.astype(work).filled(np.nan)
        copied = sub.nbytes
    else:
        sub = np.asarray(getattr(sub, "data", sub))
    if sub.shape != shape:
        raise CcdcalError(f"the array to subtract has shape {sub.shape}, "
                          f"the frames {shape}")
    if sub.dtype.kind not in "f":
        sub = sub.astype(work)
        copied = sub.nbytes
    bad = sub.dtype.kind == "f" and not np.isfinite(sub).all()
    return None, sub, bad, copied


def _subtract(out, scalar, array, r0, r1):
    # The subtrahend stays float64 if it is: subtract in double, round once.
    if scalar is not None:
        np.subtract(out, np.float64(scalar), out=out, casting="same_kind")
    elif array is not None:
        np.subtract(out, array[r0:r1], out=out, casting="same_kind")


@dataclass
class _MemoryPlan:
    """How ``mem_limit`` is spent: threads, bands, decompressed frames kept.

    Attributes
    ----------
    workers : int
        Threads (fewer than asked if their bands would not fit).
    rows : int
        Rows per band of the combine.
    bands : list of (int, int)
        The combine's bands, ``(first row, end row)``.
    n_cached : int
        How many compressed frames stay decompressed in memory.
    med_bands : list of (int, int)
        The bands a frame is read in for its median (one band: the whole
        frame, read once).
    max_kept : int
        How many candidate values `_frame_median` may keep.
    """

    workers: int
    rows: int
    bands: list
    n_cached: int
    med_bands: list
    max_kept: int


def _plan_memory(args, shape, n, n_compressed, raw_size, sub_copy_bytes):
    """Split ``args.mem_limit`` between the result, caches and band buffers.

    What is spent first: the result (with its mask), the converted copy
    of ``subtract`` and the decompressed frames kept in memory (up to
    `_CACHE_FRACTION` of what is left); the rest goes to per-worker band
    buffers.

    Returns
    -------
    _MemoryPlan
    """
    height, width = shape
    work = args.work
    result_bytes = height * width * (args.out_dtype.itemsize + 1)
    spare = args.mem_limit - result_bytes - sub_copy_bytes
    frame_bytes = height * width * work.itemsize
    cache_room = max(0, int(spare * _CACHE_FRACTION))
    n_cached = min(n_compressed, cache_room // frame_bytes) if frame_bytes else 0
    spare -= n_cached * frame_bytes

    uses_mad = args.sigma_clip and args.dev == "mad_std"
    # stack + exclusion flags (+ float64 deviations for mad_std), the read
    # buffer and about a dozen float64 planes of per-pixel statistics.
    per_pixel = n * (work.itemsize + 1 + (8 if uses_mad else 0)) + raw_size + 12 * 8
    workers, rows = _band_rows(spare, per_pixel, width, args.threads)
    target = max(1, _TARGET_BAND_BYTES // (n * work.itemsize * width))
    rows = min(rows, target, height)
    if workers > 1:
        rows = min(rows, -(-height // workers))  # every worker gets a band
    med_rows, max_kept = _median_rows(spare, shape, work, raw_size, workers)
    return _MemoryPlan(workers=workers, rows=rows,
                       bands=_split_rows(height, rows), n_cached=n_cached,
                       med_bands=_split_rows(height, med_rows),
                       max_kept=max_kept)


def _median_rows(spare, shape, work, raw_size, workers):
    """Rows per band for per-frame medians, and how many values they may keep.

    A whole frame per worker, partitioned in place, when that fits in
    ``spare`` (numpy's partition releases the GIL, so workers run in
    parallel); otherwise bands of the frame, and a radix selection when the
    values kept around the median would not fit.
    """
    height, width = shape
    med_bytes = 2 * work.itemsize + raw_size + 2  # frame, raw, flags, kept
    if spare >= workers * height * width * med_bytes:
        med_rows = height  # read once, keep it for both passes
    else:
        med_rows = min(_band_rows(spare, med_bytes + 32, width, workers)[1],
                       height, max(1, (1 << 20) // width))
    max_kept = max(1 << 16, spare // (2 * workers * work.itemsize))
    return med_rows, max_kept


def _split_rows(height, rows):
    """Bands ``(r0, r1)`` of ``rows`` rows over ``height`` (the last may be shorter)."""
    return [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]


def _band_rows(spare, per_pixel, width, workers):
    """Workers and rows per band so that ``workers`` bands fit in ``spare``.

    Fewer workers are used if one row each does not fit; one row is the
    floor (the budget cannot be kept below that).
    """
    while True:
        rows = spare // (workers * per_pixel * width) if spare > 0 else 0
        if rows >= 1 or workers == 1:
            return workers, max(1, int(rows))
        workers -= 1


def _scale_factors(scale, n):
    """``(factors, inverse_median)`` from the ``scale`` argument.

    ``factors`` is the list of per-frame multipliers, or None: none given,
    or ``inverse_median``, whose factors `_inverse_median_factors` measures
    later.
    """
    inverse_median = isinstance(scale, str)
    if inverse_median and scale != "inverse_median":
        raise CcdcalError(f"unknown scale {scale!r}; use a list of factors "
                          "or 'inverse_median'")
    if scale is None or inverse_median:
        return None, inverse_median
    try:
        factors = [float(s) for s in scale]
    except (TypeError, ValueError):
        raise CcdcalError("scale must be None, 'inverse_median' or one "
                          "number per frame") from None
    if len(factors) != n:
        raise CcdcalError(f"scale has {len(factors)} factors for {n} frames")
    return factors, False


class _Steps:
    """Progress over the whole call: decompressions, medians, bands."""

    def __init__(self, progress, total):
        self.progress = progress
        self.total = total
        self.done = 0

    def advance(self, message):
        """One more step done: tell ``progress``."""
        self.done += 1
        report(self.progress, self.done, self.total, message)


class _BandReader:
    """Reads rows of frames as they are combined: read, subtract, scale.

    One reader serves both the per-frame medians and the band loop, so a
    frame's ``1/median`` is measured on exactly the values that are then
    scaled and combined.  The buffers come from the calling thread's
    `_Scratch`: workers reuse theirs from band to band and never share one.
    """

    def __init__(self, sources, subtrahends, shape, work, raw_size, scratch):
        self.sources = sources          # one source per frame
        self.pairs = subtrahends.pairs  # (scalar, array) per frame
        self.shape = shape
        self.width = shape[1]
        self.work = work
        self.raw_size = raw_size
        self.scratch = scratch

    def _raw(self, r0, r1):
        return self.scratch.get("raw", ((r1 - r0) * self.width * self.raw_size,),
                                np.uint8)

    def frame(self, i, r0, r1):
        """Rows ``r0:r1`` of frame ``i`` after subtraction (not scaled)."""
        out = self.scratch.get("frame", (r1 - r0, self.width), self.work)
        self.sources[i].read_rows(r0, r1, out, self._raw(r0, r1))
        _subtract(out, *self.pairs[i], r0, r1)
        return out

    def stack(self, r0, r1, factors):
        """Rows ``r0:r1`` of every frame, subtracted and scaled (n, rows, width)."""
        stack = self.scratch.get("stack", (len(self.sources), r1 - r0, self.width),
                                 self.work)
        raw = self._raw(r0, r1)
        for i, src in enumerate(self.sources):
            plane = stack[i]
            src.read_rows(r0, r1, plane, raw)
            _subtract(plane, *self.pairs[i], r0, r1)
            if factors is not None:
                # a float64 factor: multiply in double, round once
                np.multiply(plane, np.float64(factors[i]), out=plane,
                            casting="same_kind")
        return stack


def _inverse_median_factors(reader, names, memory, workers, steps):
    """1 / median of each frame after subtraction: the flat recipe's scaling.

    Raises
    ------
    CalibrationError
        A frame whose median is 0 or undefined (no valid pixel).
    """
    def frame_median(i):
        return _frame_median(lambda r0, r1: reader.frame(i, r0, r1),
                             memory.med_bands, reader.shape, reader.work,
                             memory.max_kept)

    factors = []
    for i, med in enumerate(workers.ordered(frame_median, range(len(names)))):
        name = names[i]
        if not np.isfinite(med) or med == 0:
            raise CalibrationError(
                f"{name}: median is {med} after subtraction; "
                "cannot scale the frame by 1/median")
        factors.append(1.0 / med)
        steps.advance(f"median of {os.path.basename(name)}")
    return factors


def _combine_bands(reader, factors, plan, bands, out_dtype, workers, steps):
    """Combine the stack band by band into a new image.

    Bands run on the workers' pool and are reported in order.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray of bool, int)
        The combined image, its mask (no valid value), pixels rejected.
    """
    n, (height, width) = plan.n, reader.shape
    result = np.empty(reader.shape, dtype=out_dtype)
    mask = np.zeros(reader.shape, dtype=bool)

    def do_band(band):
        r0, r1 = band
        stack = reader.stack(r0, r1, factors)
        values, count, n_rej = _combine_band(
            list(stack.reshape(n, (r1 - r0) * width)), plan, reader.scratch)
        result[r0:r1] = values.reshape(r1 - r0, width)
        if not np.isscalar(count):
            mask[r0:r1] = (count == 0).reshape(r1 - r0, width)
        return n_rej

    n_rejected = 0
    for k, n_rej in enumerate(workers.ordered(do_band, bands)):
        n_rejected += n_rej
        r0, r1 = bands[k]
        steps.advance(f"combined rows {r0}-{r1 - 1} of {height}")
    return result, mask, n_rejected


class _Workers:
    """The thread pool (none for one worker) and the cancel token it checks."""

    def __init__(self, n, cancel):
        self.n = n
        self.cancel = cancel
        self.pool = ThreadPoolExecutor(max_workers=n) if n > 1 else None

    def ordered(self, func, items):
        """Yield ``func(item)`` for each item, in order (see `_ordered`)."""
        return _ordered(self.pool, self.n, func, items, self.cancel)

    def shutdown(self):
        """Wait for the running items; drop those not started."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _ordered(pool, workers, func, items, cancel):
    """Yield ``func(item)`` in order, at most ``2 * workers`` in flight.

    ``cancel`` is checked before each new item is started; on cancellation
    the items already running finish (they are short) and
    :class:`~ginga_ccdcal.errors.Cancelled` is raised.
    """
    items = list(items)
    if pool is None:
        for item in items:
            check(cancel)
            yield func(item)
        return
    window = 2 * workers
    pending = deque()
    it = iter(items)
    try:
        while True:
            while len(pending) < window:
                check(cancel)
                try:
                    item = next(it)
                except StopIteration:
                    break
                pending.append(pool.submit(func, item))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
        for fut in pending:
            if not fut.cancelled():
                try:
                    fut.result()
                except Exception:  # already failing or cancelled; keep first error
                    pass


def _settings(args, n, subtrahends, scale, factors, memory, sources):
    """What was done, for provenance headers: `CombineResult.settings`."""
    settings = {
        "method": args.method,
        "n_frames": n,
        "subtract": subtrahends.description,
        "scale": (None if scale is None else
                  "inverse_median" if isinstance(scale, str) else "factors"),
        "scale_factors": factors,
        "sigma_clip": args.sigma_clip,
        "nonfinite": "masked",
        "dtype": args.out_dtype.name,
        "bands": len(memory.bands),
        "band_rows": memory.rows,
        "threads": memory.workers,
        "mem_limit": args.mem_limit,
        "decompressed": len(sources.compressed),
        "spilled_to_disk": sources.n_spilled(),
    }
    if args.sigma_clip:
        settings.update({
            "sigma_clip_low_thresh": None if np.isinf(args.low) else args.low,
            "sigma_clip_high_thresh": None if np.isinf(args.high) else args.high,
            "sigma_clip_func": args.center,
            "sigma_clip_dev_func": args.dev,
        })
    return settings
