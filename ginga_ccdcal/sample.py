"""Synthetic CCD frames with known truth, camera-software header styles, and
a sample night built from the real headers of a night at Feder Observatory.

Three layers, each usable alone:

`SyntheticCamera`
    A CCD with a known bias pattern, dark-current map (with hot pixels),
    per-filter flat fields, read noise and gain.  Its frames follow
    ``raw = bias + dark_rate * exptime * dark_scale + flat * signal`` (plus
    Poisson noise in electrons and Gaussian read noise), so a test can check
    a reduction against the truth pixel by pixel.
`make_header`, `write_frame`, `write_night`
    Headers as MaxIm DL, N.I.N.A., IRAF/NOAO and odd SBIG-like software
    write them, FITS files stored like real cameras store them (uint16 with
    ``BZERO = 32768``), and whole nights of such files.
`make_sample_night`
    One file per frame of the real night of 2013-07-04 at Feder Observatory
    (MaxIm DL 5.21, Apogee camera): every keyword of the real header, pixels
    from a `SyntheticCamera` that `sample_camera` rebuilds for comparison.
`make_ccdsoft_night`
    A small night as CCDSoft saves it for an SBIG camera, with the traps
    of a lab night: flats saved as 'Light Frame', auto-dark-subtracted
    lights, a ``BIAS = 100`` pedestal card, binning 1 x 2, mixed flat
    exposures, two cooler set-points, an arc frame without IMAGETYP and a
    light named ``flat-field-target.fits``; each file's truth is returned.

Nothing here touches the GUI; everything is deterministic for a given seed.
"""

import csv
import datetime
import importlib.resources
import io
import math
import os
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from astropy.io import fits

from .errors import Cancelled, CcdcalError
from .progress import check, report

__all__ = ["FRAME_KINDS", "HEADER_STYLES", "FrameInfo", "SyntheticCamera",
           "make_header", "write_frame", "write_night", "feder_rows",
           "feder_header", "sample_camera", "sample_frame_infos",
           "make_sample_night", "dark_current_at", "FEDER_SHAPE",
           "FEDER_OVERSCAN_START", "SAMPLE_SCALE", "make_ccdsoft_night",
           "CcdsoftNight", "TrapFrame", "CCDSOFT_PEDESTAL", "CCDSOFT_BINNING",
           "CCDSOFT_SET_POINTS"]

#: The four frame types the camera makes.
FRAME_KINDS = ("bias", "dark", "flat", "light")

#: Camera-software header styles `make_header` writes ('odd' = 'sbig').
HEADER_STYLES = ("maxim", "feder", "iraf", "nina", "sbig")

#: (rows, columns) of the real Feder frames, overscan included.
FEDER_SHAPE = (2048, 3085)
#: First overscan column of the real frames (1-based, FITS OSCANST).
FEDER_OVERSCAN_START = 3073
#: Default size of the sample night relative to the real camera.
SAMPLE_SCALE = 0.25

_FEDER_CSV = "feder_2013_07_04_headers.csv"
# Keywords FITS derives from the data array; write_frame sets them itself.
_STRUCTURAL = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND")
_DEFAULT_START = datetime.datetime(2024, 3, 10, 2, 0, 0)
_MJD_ZERO = datetime.datetime(1858, 11, 17)
# Keywords spelled with a hyphen that a Python keyword argument cannot be.
_HYPHENATED = ("DATE-OBS", "DATE-LOC", "CCD-TEMP", "SET-TEMP", "JD-OBS",
               "MJD-OBS", "ALT-OBJ", "AZ-OBJ")

_KIND_WORDS = {
    "bias": "bias", "zero": "bias", "bias frame": "bias",
    "dark": "dark", "dark frame": "dark",
    "flat": "flat", "flat field": "flat", "flatfield": "flat",
    "skyflat": "flat", "domeflat": "flat", "flat frame": "flat",
    "light": "light", "light frame": "light", "object": "light",
    "science": "light",
}


def _kind(frametype):
    """Normalise a frame type spelling ('Bias Frame', 'zero'...) to FRAME_KINDS."""
    kind = _KIND_WORDS.get(str(frametype).strip().lower())
    if kind is None:
        raise ValueError(f"unknown frame type {frametype!r}; use one of "
                         f"{', '.join(FRAME_KINDS)}")
    return kind


def _seed_sequence(seed):
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (tuple, list)):
        seed = [int(s) for s in seed]
    return np.random.SeedSequence(seed)


def _child(seq, key):
    """An independent stream derived from ``seq``: same key, same numbers."""
    return np.random.default_rng(np.random.SeedSequence(
        seq.entropy, spawn_key=tuple(seq.spawn_key) + (key,)))


def _name_key(text):
    # crc32 rather than hash(): stable across interpreter runs.
    return zlib.crc32(str(text).encode("utf-8"))


_erf = np.vectorize(math.erf, otypes=[float])


@dataclass
class FrameInfo:
    """Everything that determines one synthetic frame (its recipe).

    `SyntheticCamera.plan_frame` makes one, `SyntheticCamera.render` turns
    it into pixels, `SyntheticCamera.ideal_light_of` into the true signal.

    Attributes
    ----------
    frametype : str
        One of `FRAME_KINDS`.
    exptime : float
        Seconds.
    filter : str or None
    seed : int or tuple
        Seed of the frame's noise, stars and cosmic rays.
    sky : float
        Sky in e-/s/pixel (lights only, else 0).
    level : float or None
        Flat level in ADU (flats only).
    dark_scale : float
        Multiplier of the dark current (e.g. a warmer sensor).
    noise : bool
    stars : numpy.ndarray
        ``(n, 3)``: row, column (0-based, imaging area) and flux in e-/s.
    psf_sigma : float
        Gaussian PSF sigma in pixels.
    cosmic_rays : numpy.ndarray
        ``(m, 3)``: row, column and deposited electrons of each hit pixel.
    """

    frametype: str
    exptime: float
    filter: object
    seed: object
    sky: float = 0.0
    level: object = None
    dark_scale: float = 1.0
    noise: bool = True
    stars: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    psf_sigma: float = 1.5
    cosmic_rays: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def cosmic_ray_mask(self, shape):
        """Boolean mask of the pixels hit by cosmic rays, in ``shape``."""
        mask = np.zeros(shape, bool)
        if len(self.cosmic_rays):
            mask[self.cosmic_rays[:, 0].astype(int),
                 self.cosmic_rays[:, 1].astype(int)] = True
        return mask


class SyntheticCamera:
    """A CCD whose bias, dark current and flat fields are known exactly.

    Parameters
    ----------
    shape : (int, int)
        Rows and columns of the light-sensitive area.
    bias_level : float
        Mean bias in ADU.
    bias_structure : bool
        Add a smooth row pattern, a read-out ramp in the first columns and
        a faint fixed column pattern to the bias, as real amplifiers do.
    read_noise : float
        Electrons RMS.
    gain : float
        Electrons per ADU.
    dark_current : float
        Mean dark current, e-/s/pixel.
    hot_pixel_fraction, hot_pixel_rate : float
        Fraction of pixels that are hot and their typical dark current in
        e-/s (each hot pixel gets its own rate, log-normal around it).
    filters : sequence of str
        One flat field is made per filter.
    vignetting : float
        Fractional loss of light in the corners of the flats.
    overscan_columns : int
        Columns of pure bias plus read noise appended on the right, like the
        Feder camera's overscan (OSCANST).
    seed : int, sequence of int or None
        Seeds the truth arrays and the generator of later frames.
    saturation : int
        Frames are clipped to ``[0, saturation]`` ADU.
    ccd_temp : float
        Sensor temperature written to headers, deg C.

    Attributes
    ----------
    shape, raw_shape : tuple
        Imaging area and full frame (with overscan).
    bias : numpy.ndarray
        ADU, ``raw_shape``.
    dark_rate : numpy.ndarray
        ADU/s per pixel, ``raw_shape`` (0 in the overscan).
    flats : dict
        Filter -> flat pattern, ``raw_shape``, median 1 over the imaging
        area, 0 in the overscan (no light reaches it).
    hot_pixels : numpy.ndarray
        Boolean mask, ``raw_shape``.
    data_section, overscan_section : tuple of slice
        Numpy slices of the imaging area and overscan (None without one).
    datasec, biassec : str
        The same as FITS sections (``'[1:128,1:96]'``); biassec is None
        without overscan.
    last_frame : FrameInfo or None
        Recipe of the last frame made.
    written : dict
        Path -> `FrameInfo` of every file `write_night` wrote with this
        camera, so tests can get the truth of any file.
    """

    def __init__(self, shape=(96, 128), *, bias_level=1000.0,
                 bias_structure=True, read_noise=10.0, gain=1.5,
                 dark_current=0.2, hot_pixel_fraction=0.001,
                 hot_pixel_rate=50.0, filters=("R", "V"), vignetting=0.25,
                 overscan_columns=0, seed=0, saturation=65535,
                 ccd_temp=-20.0):
        ny, nx = (int(n) for n in shape)
        if ny < 8 or nx < 8:
            raise ValueError(f"shape {shape} too small (at least 8 x 8)")
        if gain <= 0 or read_noise < 0 or dark_current < 0 or hot_pixel_rate < 0:
            raise ValueError("gain must be > 0; read noise, dark current and "
                             "hot pixel rate >= 0")
        if not 0 <= hot_pixel_fraction < 1:
            raise ValueError("hot_pixel_fraction must be in [0, 1)")
        if not 0 <= vignetting < 0.95:
            raise ValueError("vignetting must be in [0, 0.95)")
        if not 0 < saturation <= 65535:
            raise ValueError("saturation must be in (0, 65535]")
        filters = tuple(str(f) for f in filters)
        if not filters or len(set(filters)) != len(filters):
            raise ValueError("filters must be a non-empty list of distinct names")
        nos = int(overscan_columns)
        if nos < 0:
            raise ValueError("overscan_columns must be >= 0")

        self.shape = (ny, nx)
        self.raw_shape = (ny, nx + nos)
        self.overscan_columns = nos
        self.bias_level = float(bias_level)
        self.read_noise = float(read_noise)
        self.gain = float(gain)
        self.dark_current = float(dark_current)
        self.hot_pixel_fraction = float(hot_pixel_fraction)
        self.hot_pixel_rate = float(hot_pixel_rate)
        self.filters = filters
        self.vignetting = float(vignetting)
        self.saturation = int(saturation)
        self.ccd_temp = float(ccd_temp)
        self.data_section = (slice(0, ny), slice(0, nx))
        self.overscan_section = (slice(0, ny), slice(nx, nx + nos)) if nos else None
        self.datasec = f"[1:{nx},1:{ny}]"
        self.biassec = f"[{nx + 1}:{nx + nos},1:{ny}]" if nos else None

        self._seq = _seed_sequence(seed)
        self.bias = self._make_bias(_child(self._seq, 1), bias_structure)
        self.hot_pixels, self.dark_rate = self._make_dark(_child(self._seq, 2))
        # Pixel response non-uniformity is mostly the silicon's, shared by
        # all filters; dust on the window is shared too.
        common = _child(self._seq, 3)
        self._prnu = 1.0 + 0.006 * common.standard_normal(self.shape)
        self._window_dust = self._dust(common, 2, sharp=True)
        self.flats = {name: self._make_flat(name) for name in filters}
        self._rng = _child(self._seq, 4)
        self.last_frame = None
        self.written = {}

    # -- truth --------------------------------------------------------------

    def _full(self, image, fill=0.0):
        """Place an imaging-area array into a raw-shape array."""
        out = np.full(self.raw_shape, fill, dtype=float)
        out[self.data_section] = image
        return out

    def _make_bias(self, rng, structure):
        ny, nxr = self.raw_shape
        bias = np.full(self.raw_shape, self.bias_level)
        if not structure:
            return bias
        y = np.linspace(0.0, 1.0, ny)[:, None]
        x = np.arange(nxr)[None, :]
        phase = rng.uniform(0, 2 * np.pi)
        rows = 2.5 * np.sin(2 * np.pi * 1.7 * y + phase) + 1.5 * (y - 0.5)
        # The amplifier settles during the first columns read out.
        ramp = 6.0 * np.exp(-x / max(2.0, 0.03 * nxr))
        columns = 0.6 * rng.standard_normal((1, nxr))
        return bias + rows + ramp + columns

    def _make_dark(self, rng):
        ny, nx = self.shape
        y, x = np.mgrid[0:ny, 0:nx]
        # Mild amplifier glow from the read-out corner, +-5 % pixel scatter.
        glow = 0.5 * np.exp(-np.hypot(y / ny, x / nx) / 0.15)
        rate_e = self.dark_current * (1.0 + glow) * np.clip(
            1.0 + 0.05 * rng.standard_normal(self.shape), 0.0, None)
        hot = np.zeros(self.shape, bool)
        n_hot = int(round(self.hot_pixel_fraction * ny * nx))
        if n_hot:
            idx = rng.choice(ny * nx, size=n_hot, replace=False)
            hot.flat[idx] = True
            rate_e.flat[idx] += self.hot_pixel_rate * rng.lognormal(0.0, 0.5, n_hot)
        return self._full(hot, False).astype(bool), self._full(rate_e / self.gain)

    def _dust(self, rng, count, sharp):
        """Attenuation of ``count`` dust donuts (out-of-focus dust shadows)."""
        ny, nx = self.shape
        att = np.ones(self.shape)
        size = min(ny, nx)
        for _ in range(count):
            cy, cx = rng.uniform(0.1, 0.9) * ny, rng.uniform(0.1, 0.9) * nx
            radius = max(2.0, rng.uniform(0.03, 0.08) * size)
            width = radius * (0.2 if sharp else 0.4)
            depth = rng.uniform(0.03, 0.08)
            half = int(radius + 3 * width) + 1
            y0, y1 = max(0, int(cy) - half), min(ny, int(cy) + half + 1)
            x0, x1 = max(0, int(cx) - half), min(nx, int(cx) + half + 1)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            r = np.hypot(yy - cy, xx - cx)
            ring = np.exp(-((r - radius) / width) ** 2)
            centre = 0.4 * np.exp(-(r / radius) ** 2)
            att[y0:y1, x0:x1] *= 1.0 - depth * np.maximum(ring, centre)
        return att

    def _make_flat(self, name):
        ny, nx = self.shape
        rng = _child(self._seq, (5, _name_key(name)))
        y = (np.arange(ny)[:, None] + 0.5) / ny
        x = (np.arange(nx)[None, :] + 0.5) / nx
        # The optical axis is a little off-centre, a little different per
        # filter (filters are not perfectly perpendicular to the beam).
        cy, cx = 0.52 + rng.normal(0, 0.01), 0.47 + rng.normal(0, 0.01)
        aspect = nx / ny
        r2 = ((y - cy) ** 2 + ((x - cx) * aspect) ** 2)
        corners = max((yc - cy) ** 2 + ((xc - cx) * aspect) ** 2
                      for yc in (0, 1) for xc in (0, 1))
        vignette = 1.0 - self.vignetting * r2 / corners
        gradient = 1.0 + rng.uniform(-0.02, 0.02) * (x - 0.5) \
            + rng.uniform(-0.01, 0.01) * (y - 0.5)
        prnu = self._prnu * (1.0 + 0.002 * rng.standard_normal(self.shape))
        flat = vignette * gradient * prnu * self._window_dust \
            * self._dust(rng, 3, sharp=False)
        return self._full(flat / np.median(flat))

    def trim(self, array):
        """The imaging area of a raw-shape array (drops the overscan)."""
        return np.asarray(array)[self.data_section]

    # -- frames ---------------------------------------------------------------

    def plan_frame(self, frametype, exptime=0.0, filter=None, *, sky=100.0,
                   stars=0, cosmic_rays=0, noise=True, dark_scale=1.0,
                   level=None, seed=None, star_seed=None, shift=(0.0, 0.0),
                   psf_sigma=1.5):
        """The recipe of a frame, without its pixels (see `frame`)."""
        kind = _kind(frametype)
        exptime = float(exptime)
        if exptime < 0 or dark_scale < 0 or sky < 0:
            raise ValueError("exptime, dark_scale and sky must be >= 0")
        if kind in ("flat", "light"):
            if filter is None:
                if len(self.filters) != 1:
                    raise ValueError(f"a {kind} needs a filter "
                                     f"(one of {', '.join(self.filters)})")
                filter = self.filters[0]
            if str(filter) not in self.flats:
                raise ValueError(f"filter {filter!r} not in this camera "
                                 f"({', '.join(self.filters)})")
            filter = str(filter)
        if seed is None:
            seed = int(self._rng.integers(2 ** 63))
        seq = _seed_sequence(seed)
        info = FrameInfo(kind, exptime, filter, seed, noise=bool(noise),
                         dark_scale=float(dark_scale), psf_sigma=float(psf_sigma))
        if kind == "flat":
            info.level = 20000.0 if level is None else float(level)
        if kind == "light":
            info.sky = float(sky)
            star_rng = (_child(seq, 0) if star_seed is None
                        else np.random.default_rng(_seed_sequence(star_seed)))
            info.stars = self._star_table(star_rng, int(stars), shift)
        if cosmic_rays:
            info.cosmic_rays = self._cosmic_rays(_child(seq, 1), int(cosmic_rays))
        return info

    def _star_table(self, rng, n, shift):
        ny, nx = self.shape
        y = rng.uniform(-0.5, ny - 0.5, n) + float(shift[0])
        x = rng.uniform(-0.5, nx - 0.5, n) + float(shift[1])
        # Number counts rise steeply to faint stars: a power law in flux.
        flux = np.minimum(60.0 * (1.0 - rng.random(n)) ** (-1 / 1.3), 3e5)
        return np.column_stack([y, x, flux])

    def _cosmic_rays(self, rng, n):
        ny, nx = self.shape
        hits = []
        for _ in range(n):
            y, x = int(rng.integers(ny)), int(rng.integers(nx))
            pixels = [(y, x)]
            kind = rng.random()
            dy, dx = ((0, 1), (1, 0), (1, 1))[int(rng.integers(3))]
            if kind > 0.55:  # the charge splits over a neighbour
                pixels.append((y + dy, x + dx))
            if kind > 0.9:  # a grazing track
                pixels.append((y + 2 * dy, x + 2 * dx))
            for py, px in pixels:
                if 0 <= py < ny and 0 <= px < nx:
                    hits.append((py, px, rng.uniform(1500.0, 12000.0)))
        return np.array(hits, dtype=float).reshape(-1, 3)

    def _signal_e(self, info):
        """Light signal in electrons over the imaging area (before the flat)."""
        signal = np.full(self.shape, info.sky * info.exptime)
        ny, nx = self.shape
        sigma = info.psf_sigma
        half = int(math.ceil(5 * sigma)) + 1
        root2s = math.sqrt(2.0) * sigma
        for y0, x0, flux in info.stars:
            iy, ix = int(round(y0)), int(round(x0))
            ya, yb = max(iy - half, 0), min(iy + half + 1, ny)
            xa, xb = max(ix - half, 0), min(ix + half + 1, nx)
            if ya >= yb or xa >= xb:
                continue
            # Integrate the Gaussian over each pixel (edges at i +- 0.5)
            # so the total flux is right even for sharp PSFs.
            py = np.diff(_erf((np.arange(ya, yb + 1) - 0.5 - y0) / root2s)) / 2
            px = np.diff(_erf((np.arange(xa, xb + 1) - 0.5 - x0) / root2s)) / 2
            signal[ya:yb, xa:xb] += flux * info.exptime * np.outer(py, px)
        return signal

    def ideal_light_of(self, info):
        """True calibrated signal in ADU of a planned light (``raw_shape``).

        This is ``signal`` in ``raw = bias + dark + flat * signal``: sky and
        stars, without noise or cosmic rays, 0 in the overscan.
        """
        if info.frametype == "flat":
            return self._full(np.full(self.shape, info.level))
        if info.frametype != "light":
            return np.zeros(self.raw_shape)
        return self._full(self._signal_e(info) / self.gain)

    def ideal_light(self, exptime, filter, sky=100.0, stars=0, seed=None, *,
                    star_seed=None, shift=(0.0, 0.0), psf_sigma=1.5):
        """True calibrated signal (ADU) of the light `frame` makes with the same seed.

        Parameters
        ----------
        exptime : float
        filter : str
        sky : float
            e-/s/pixel.
        stars : int
        seed, star_seed, shift, psf_sigma
            As in `frame`; with ``seed=None`` the camera's generator
            advances exactly as `frame` would.

        Returns
        -------
        numpy.ndarray
            float64, ``raw_shape`` (0 in the overscan): what a perfect
            reduction recovers.
        """
        info = self.plan_frame("light", exptime, filter, sky=sky, stars=stars,
                               seed=seed, star_seed=star_seed, shift=shift,
                               psf_sigma=psf_sigma)
        return self.ideal_light_of(info)

    def render(self, info, dtype=np.uint16):
        """Pixels of a planned frame (see `frame`)."""
        dark = self.dark_rate * info.exptime * info.dark_scale
        light = 0.0
        if info.frametype in ("flat", "light"):
            light = self.flats[info.filter] * self.ideal_light_of(info)
        if info.noise:
            rng = _child(_seed_sequence(info.seed), 2)
            electrons = rng.poisson((dark + light) * self.gain)
            image = self.bias + electrons / self.gain
            image += rng.normal(0.0, self.read_noise / self.gain, self.raw_shape)
        else:
            image = self.bias + dark + light
        if len(info.cosmic_rays):
            # Cosmic rays deposit charge directly: no flat, no Poisson.
            iy = info.cosmic_rays[:, 0].astype(int)
            ix = info.cosmic_rays[:, 1].astype(int)
            np.add.at(image, (iy, ix), info.cosmic_rays[:, 2] / self.gain)
        image = np.clip(image, 0, self.saturation)
        dtype = np.dtype(dtype)
        if dtype.kind in "iu":
            info_range = np.iinfo(dtype)
            image = np.clip(np.rint(image), info_range.min, info_range.max)
        return image.astype(dtype)

    def frame(self, frametype, exptime=0.0, filter=None, *, sky=100.0,
              stars=0, cosmic_rays=0, noise=True, dark_scale=1.0, level=None,
              dtype=np.uint16, seed=None, star_seed=None, shift=(0.0, 0.0),
              psf_sigma=1.5):
        """A raw frame.

        ``raw = bias + dark_rate * exptime * dark_scale + flat * signal``
        where ``signal`` is `ideal_light` for lights and ``level`` for
        flats; with ``noise`` the electrons are Poisson-distributed and read
        noise is added.  Cosmic rays are added after the flat.  The result
        is clipped to ``[0, saturation]`` and rounded for integer dtypes.

        Parameters
        ----------
        frametype : str
            'bias', 'dark', 'flat' or 'light' (also 'zero', 'object'...).
        exptime : float
            Seconds.
        filter : str, optional
            Required for flats and lights when the camera has several filters.
        sky : float
            Sky brightness in e-/s/pixel (lights).
        stars : int
            Number of Gaussian stars at random positions (lights).
        cosmic_rays : int
            Number of cosmic-ray events (1-3 pixels each).
        noise : bool
            False gives the exact noiseless frame.
        dark_scale : float
            Multiplies the dark current, for darks whose true scale differs
            from the exposure ratio (temperature, a drifting camera).
        level : float, optional
            Flat level in ADU (default 20000).
        dtype : numpy dtype
            uint16 like a camera, or float64 for exact arithmetic.
        seed : int or tuple, optional
            Seed of this frame; None advances the camera's generator.
        star_seed : int or tuple, optional
            Seed of the star field alone, so several lights share a field.
        shift : (float, float)
            Star-field offset in pixels (rows, columns), e.g. mount drift.
        psf_sigma : float
            PSF sigma in pixels.

        Returns
        -------
        numpy.ndarray
            ``raw_shape``.  Its recipe is in `last_frame`.
        """
        info = self.plan_frame(frametype, exptime, filter, sky=sky, stars=stars,
                               cosmic_rays=cosmic_rays, noise=noise,
                               dark_scale=dark_scale, level=level, seed=seed,
                               star_seed=star_seed, shift=shift,
                               psf_sigma=psf_sigma)
        self.last_frame = info
        return self.render(info, dtype)


# -- headers -------------------------------------------------------------------

def _as_datetime(value):
    if value is None:
        return _DEFAULT_START
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(str(value))


def _iso(when, decimals=0):
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if decimals:
        frac = f"{when.microsecond / 1e6:.{decimals}f}"[1:]
        text += frac
    return text


def _mjd(when):
    return (when - _MJD_ZERO).total_seconds() / 86400.0


def _apply_extra(header, extra):
    for key, value in extra.items():
        name = key.upper()
        hyphen = name.replace("_", "-")
        if hyphen != name and (hyphen in _HYPHENATED or hyphen in header):
            name = hyphen
        if value is None:
            header.remove(name, ignore_missing=True, remove_all=True)
        else:
            header[name] = value
    return header


_IMAGETYP = {
    "maxim": {"bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field",
              "light": "Light Frame"},
    "feder": {"bias": "BIAS", "dark": "DARK", "flat": "FLAT", "light": "LIGHT"},
    "nina": {"bias": "BIAS", "dark": "DARK", "flat": "FLAT", "light": "LIGHT"},
    "iraf": {"bias": "zero", "dark": "dark", "flat": "flat", "light": "object"},
    "sbig": {"bias": "BIAS", "dark": "DARK", "flat": "SKYFLAT", "light": "SCIENCE"},
}


def _style(style):
    name = str(style).strip().lower()
    name = {"odd": "sbig", "noao": "iraf", "maximdl": "maxim"}.get(name, name)
    if name not in HEADER_STYLES:
        raise ValueError(f"unknown header style {style!r}; use one of "
                         f"{', '.join(HEADER_STYLES)}")
    return name


def make_header(style, frametype, exptime, filter=None, *, date_obs=None,
                camera=None, **extra):
    """A header as a given camera software writes it.

    Parameters
    ----------
    style : str
        ``'maxim'`` (MaxIm DL: IMAGETYP 'Bias Frame'..., EXPTIME and
        EXPOSURE), ``'feder'`` (exactly the keywords of a real Feder frame of
        that type), ``'iraf'`` (IMAGETYP 'zero'/'object', OBSTYPE, DARKTIME,
        CCDSUM, BIASSEC/TRIMSEC/DATASEC with an overscan), ``'nina'``
        (N.I.N.A.: GAIN and OFFSET are camera settings, EGAIN is e-/ADU) or
        ``'sbig'`` / ``'odd'`` (FRAMETYP 'SKYFLAT'/'SCIENCE', FILTNAM,
        TEMPERAT, no IMAGETYP).
    frametype : str
        'bias', 'dark', 'flat' or 'light'.
    exptime : float
        Seconds.
    filter : str, optional
        Written when given (the Feder style keeps its real 'R' otherwise).
    date_obs : datetime or str, optional
        Start of the exposure (UTC); default 2024-03-10T02:00:00.
    camera : SyntheticCamera, optional
        Supplies temperature, gain, read noise and overscan geometry.
    **extra
        Further keywords, upper-cased (``ccd_temp`` -> CCD-TEMP,
        ``object='M13'``); a value of None removes the keyword.

    Returns
    -------
    astropy.io.fits.Header
        Without the structural keywords (BITPIX, NAXISn), which
        `write_frame` takes from the data.
    """
    style = _style(style)
    kind = _kind(frametype)
    exptime = float(exptime)
    when = _as_datetime(date_obs)
    if style == "feder":
        return _feder_style_header(kind, exptime, filter, date_obs, camera, extra)
    temp = camera.ccd_temp if camera is not None else -20.0
    gain = camera.gain if camera is not None else 1.5
    imagetyp = _IMAGETYP[style][kind]
    h = fits.Header()
    if style == "maxim":
        h["BSCALE"] = (1.0, "physical = BZERO + BSCALE*array_value")
        h["BZERO"] = (32768.0, "physical = BZERO + BSCALE*array_value")
        h["EXPTIME"] = (exptime, "Exposure time in seconds")
        h["EXPOSURE"] = (exptime, "Exposure time in seconds")
        h["SET-TEMP"] = (round(temp), "CCD temperature setpoint in C")
        h["CCD-TEMP"] = (temp, "CCD temperature at start of exposure in C")
        h["XPIXSZ"] = (9.0, "Pixel Width in microns (after binning)")
        h["YPIXSZ"] = (9.0, "Pixel Height in microns (after binning)")
        h["XBINNING"] = (1, "Binning factor in width")
        h["YBINNING"] = (1, "Binning factor in height")
        h["XORGSUBF"] = (0, "Subframe X position in binned pixels")
        h["YORGSUBF"] = (0, "Subframe Y position in binned pixels")
        h["READOUTM"] = ("Monochrome", "Readout mode of image")
        if filter is not None:
            h["FILTER"] = (str(filter), "Filter used when taking image")
        h["IMAGETYP"] = (imagetyp, "Type of image")
        h["DATE-OBS"] = (_iso(when), "YYYY-MM-DDThh:mm:ss observation start, UT")
        h["EGAIN"] = (gain, "Electronic gain in e-/ADU")
        if camera is not None and camera.overscan_columns:
            h["OSCAN"] = (True, "Overscan columns included")
            h["OSCANAX"] = (1, "Overscan axis")
            h["OSCANST"] = (camera.shape[1] + 1, "First overscan column")
        h["SWCREATE"] = ("MaxIm DL Version 6.40 230124 23HAU", "Name of software")
        h["INSTRUME"] = ("Apogee USB/Net", "instrument or camera used")
        if kind == "light":
            h["OBJECT"] = "M13"
    elif style == "nina":
        h["BZERO"] = 32768
        h["IMAGETYP"] = (imagetyp, "Type of exposure")
        h["EXPOSURE"] = (exptime, "[s] Exposure duration")
        h["EXPTIME"] = (exptime, "[s] Exposure duration")
        h["DATE-LOC"] = (_iso(when - datetime.timedelta(hours=5), 3),
                         "Time of observation (local)")
        h["DATE-OBS"] = (_iso(when, 3), "Time of observation (UTC)")
        h["XBINNING"] = (1, "X axis binning factor")
        h["YBINNING"] = (1, "Y axis binning factor")
        h["GAIN"] = (139, "Sensor gain")
        h["OFFSET"] = (21, "Sensor gain offset")
        h["EGAIN"] = (gain, "[e-/ADU] Electrons per A/D unit")
        h["XPIXSZ"] = (3.76, "[um] Pixel X axis size")
        h["YPIXSZ"] = (3.76, "[um] Pixel Y axis size")
        h["INSTRUME"] = ("ZWO ASI2600MM Pro", "Imaging instrument name")
        h["SET-TEMP"] = (round(temp), "[degC] CCD temperature setpoint")
        h["CCD-TEMP"] = (temp, "[degC] CCD temperature")
        if filter is not None:
            h["FILTER"] = (str(filter), "Active filter name")
        if kind == "light":
            h["OBJECT"] = ("M13", "Name of the object of interest")
        h["SWCREATE"] = ("N.I.N.A. 3.1.2.9001 (x64)", "Software that created this file")
    elif style == "iraf":
        h["OBJECT"] = "M13" if kind == "light" else imagetyp
        h["IMAGETYP"] = (imagetyp, "Type of picture (object, dark, etc.)")
        h["OBSTYPE"] = (imagetyp.upper(), "Observation type")
        h["EXPTIME"] = (exptime, "Exposure time (sec)")
        h["DARKTIME"] = (exptime, "Dark time (sec)")
        if filter is not None:
            h["FILTER"] = (str(filter), "Filter name")
        h["DATE-OBS"] = (_iso(when, 1), "Date of observation start (UTC)")
        h["CCDSUM"] = ("1 1", "On chip summation")
        h["GAIN"] = (gain, "Gain (electrons/ADU)")
        h["RDNOISE"] = (camera.read_noise if camera is not None else 10.0,
                        "Read noise (electrons)")
        h["CCDTEMP"] = (temp, "CCD temperature (C)")
        h["DETECTOR"] = "T2KB"
        if camera is not None and camera.overscan_columns:
            h["BIASSEC"] = (camera.biassec, "Bias section")
            h["TRIMSEC"] = (camera.datasec, "Trim section")
            h["DATASEC"] = (camera.datasec, "Data section")
    else:  # sbig-like oddities
        h["FRAMETYP"] = imagetyp
        h["EXPTIME"] = exptime
        if filter is not None:
            h["FILTNAM"] = str(filter)
        h["DATE-OBS"] = _iso(when)
        h["TEMPERAT"] = (temp, "CCD temperature")
        h["XBINNING"] = 1
        h["YBINNING"] = 1
        h["EGAIN"] = gain
        h["INSTRUME"] = "SBIG ST-8XME"
        if kind == "light":
            h["OBJECT"] = "M13"
        h["SWCREATE"] = "SBIGCCD"
    return _apply_extra(h, extra)


# -- the Feder night ----------------------------------------------------------

@lru_cache(maxsize=1)
def _feder_table():
    text = (importlib.resources.files("ginga_ccdcal") / "data" / _FEDER_CSV
            ).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    return tuple(rows)


def feder_rows():
    """The real header table, one dict per frame (CSV order).

    Returns
    -------
    list of dict
        Lower-case keyword -> text as in the CSV; '' means the keyword is
        absent from that frame; ``'file'`` is the file name.
    """
    return [dict(row) for row in _feder_table()]


_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


def _typed(text):
    """The FITS value a CSV cell stands for (bool, int, float or string)."""
    if text in ("True", "False"):
        return text == "True"
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def _scaled_geometry(scale):
    """(rows, columns, imaging columns) of the real frame scaled by ``scale``."""
    scale = float(scale)
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], not {scale}")
    ny = int(round(FEDER_SHAPE[0] * scale))
    width = int(round((FEDER_OVERSCAN_START - 1) * scale))
    nx = max(int(round(FEDER_SHAPE[1] * scale)), width + 1)
    if ny < 8 or width < 8:
        raise ValueError(f"scale {scale} makes frames too small ({ny} x {nx})")
    return ny, nx, width


def _scale_keyword(key, value, sx, sy):
    """Value of a pixel-geometry keyword in a frame resampled by (sx, sy)."""
    if key in ("CRPIX1", "CRPIX2"):
        s = sx if key == "CRPIX1" else sy
        return (value - 0.5) * s + 0.5
    if key in ("CD1_1", "CD2_1"):
        return value / sx
    if key in ("CD1_2", "CD2_2"):
        return value / sy
    match = re.match(r"^(A|B|AP|BP)_(\d)_(\d)$", key)
    if match:
        # SIP maps pixel offsets to pixel offsets: with u' = sx*u,
        # v' = sy*v the coefficient of u'^p v'^q picks up s_out / (sx^p sy^q).
        s_out = sx if match.group(1) in ("A", "AP") else sy
        p, q = int(match.group(2)), int(match.group(3))
        return value * s_out / (sx ** p * sy ** q)
    return value


def feder_header(row, scale=1.0):
    """The header of a real Feder frame, typed, for a frame scaled by ``scale``.

    Parameters
    ----------
    row : dict or int
        A `feder_rows` entry or its index.
    scale : float
        1 keeps every value as recorded; otherwise the pixel-geometry
        keywords (OSCANST, IMAGEW/IMAGEH, CRPIX, CD, SIP) follow the smaller
        frame so the overscan and the WCS stay right.

    Returns
    -------
    astropy.io.fits.Header
        Every non-empty keyword of the row except the structural ones
        (SIMPLE, BITPIX, NAXIS, NAXISn), in CSV order; the row's history
        becomes a HISTORY card.  BZERO/BSCALE are kept as the camera wrote
        them (the lights have no BSCALE).
    """
    if not isinstance(row, dict):
        row = _feder_table()[int(row)]
    ny, nx, width = _scaled_geometry(scale)
    sx, sy = nx / FEDER_SHAPE[1], ny / FEDER_SHAPE[0]
    header = fits.Header()
    for column, text in row.items():
        key = column.upper()
        if text == "" or column == "file" or key in _STRUCTURAL:
            continue
        if key == "HISTORY":
            header.add_history(text)
            continue
        if key == "COMMENT":
            header.add_comment(text)
            continue
        value = _typed(text)
        if scale != 1:
            if key == "OSCANST":
                value = width + 1
            elif key == "IMAGEW":
                value = nx
            elif key == "IMAGEH":
                value = ny
            else:
                value = _scale_keyword(key, value, sx, sy)
        header[key] = value
    return header


def _feder_style_header(kind, exptime, filter, date_obs, camera, extra):
    """make_header('feder'): the first real frame of that type, adjusted."""
    row = next(r for r in _feder_table() if r["imagetyp"].lower() == kind)
    h = feder_header(row)
    h["EXPTIME"] = exptime
    h["EXPOSURE"] = exptime
    if filter is not None:
        h["FILTER"] = str(filter)
    if date_obs is not None:
        when = _as_datetime(date_obs)
        h["DATE-OBS"] = _iso(when)
        mjd = _mjd(when)
        h["MJD-OBS"] = round(mjd, 7)
        h["JD-OBS"] = round(mjd + 2400000.5, 5)
    if camera is not None:
        if camera.overscan_columns:
            h["OSCAN"] = True
            h["OSCANAX"] = 1
            h["OSCANST"] = camera.shape[1] + 1
        else:
            h["OSCAN"] = False
            for key in ("OSCANAX", "OSCANST"):
                h.remove(key, ignore_missing=True)
    return _apply_extra(h, extra)


# -- files ---------------------------------------------------------------------

def write_frame(path, data, header=None, *, overwrite=False):
    """Write a 2-D image to a FITS file as camera software does.

    uint16 data is stored as 16-bit integers with ``BZERO = 32768`` (and
    ``BSCALE = 1`` only if ``header`` has BSCALE, as MaxIm writes it and the
    Feder lights lack it); other types (int16, int32, float32, float64...)
    are stored as they are, without BZERO/BSCALE.

    Parameters
    ----------
    path : str or path-like
    data : numpy.ndarray
        2-D.
    header : astropy.io.fits.Header, optional
        Keywords to write; structural ones (BITPIX, NAXISn...) come from
        ``data``.
    overwrite : bool

    Returns
    -------
    str
        The path written.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"a frame is a 2-D image, not shape {data.shape}")
    if data.dtype.kind not in "uif" or data.dtype.itemsize > 8 or \
            data.dtype in (np.uint32, np.uint64, np.float16):
        raise ValueError(f"cannot store {data.dtype} pixels in a frame")
    cards = fits.Header() if header is None else header.copy()
    old_bzero = cards.get("BZERO")
    keep_bscale = "BSCALE" in cards
    for key in _STRUCTURAL + ("BZERO", "BSCALE"):
        cards.remove(key, ignore_missing=True, remove_all=True)
    if data.dtype == np.uint16:
        # Write the stored integers ourselves so the header says exactly
        # BZERO (and BSCALE only where the camera wrote it).
        stored = (data.astype(np.int32) - 32768).astype(">i2")
        hdu = fits.PrimaryHDU(stored, do_not_scale_image_data=True)
        hdu.header.remove("EXTEND", ignore_missing=True)
        bzero = 32768.0 if isinstance(old_bzero, float) else 32768
        after = "NAXIS2"
        if keep_bscale:
            hdu.header.insert(after, ("BSCALE", 1.0 if isinstance(bzero, float) else 1),
                              after=True)
            after = "BSCALE"
        hdu.header.insert(after, ("BZERO", bzero), after=True)
    else:
        hdu = fits.PrimaryHDU(data)
        hdu.header.remove("EXTEND", ignore_missing=True)
    hdu.header.extend(cards, strip=False)
    path = os.fspath(path)
    hdu.writeto(path, overwrite=overwrite, output_verify="exception")
    return path


def _night_name(style, kind, exptime, filter, obj, when, counters, total):
    """A file name as the camera software would choose it (unique per night)."""
    t = f"{exptime:g}"
    f = filter or ""
    if style in ("maxim", "feder"):
        template = {"bias": "Bias-{n:03d}.fit", "dark": "Dark-{n:03d}D" + t + ".fit",
                    "flat": "Flat-{n:03d}" + f + ".fit",
                    "light": obj + "-{n:03d}" + f + ".fit"}[kind]
    elif style == "nina":
        stamp = when.strftime("%Y-%m-%d_%H-%M-%S")
        label = "_".join(p for p in (kind.upper(), f) if p)
        template = stamp + "_" + label + f"_{exptime:.2f}s" + "_{n:04d}.fits"
    elif style == "iraf":
        # Observatories number frames through the night, whatever they are.
        return f"ccd{total + 1:04d}.fits"
    else:
        what = {"bias": "bias", "dark": "dark_" + t + "s", "flat": "flat_" + f,
                "light": obj + "_" + f}[kind]
        template = what.strip("_") + "_{n:03d}.FIT"
    counters[template] = counters.get(template, 0) + 1
    return template.format(n=counters[template])


_PLAN_KEYS = ("frametype", "exptime", "filter", "count", "object", "sky", "stars",
              "cosmic_rays", "level", "dark_scale", "noise", "psf_sigma")


def _plan_entries(plan):
    for entry in plan:
        if isinstance(entry, dict):
            unknown = set(entry) - set(_PLAN_KEYS) - {"type"}
            if unknown:
                raise ValueError(f"unknown plan keys {sorted(unknown)}; "
                                 f"use {', '.join(_PLAN_KEYS)}")
            item = dict(entry)
            if "type" in item:
                item["frametype"] = item.pop("type")
        else:
            entry = tuple(entry)
            if len(entry) not in (3, 4):
                raise ValueError(f"plan entry {entry!r} is not "
                                 "(frametype, exptime, filter[, count])")
            item = dict(zip(("frametype", "exptime", "filter", "count"), entry))
        item["frametype"] = _kind(item["frametype"])
        item.setdefault("exptime", 0.0)
        item.setdefault("filter", None)
        item.setdefault("count", 1)
        yield item


def write_night(directory, camera, plan, style="maxim", seed=0, *, noise=True,
                start=None, readout=5.0, overwrite=False, progress=None,
                cancel=None):
    """Write a night of synthetic frames with headers in one software's style.

    Parameters
    ----------
    directory : str or path-like
        Created if needed.
    camera : SyntheticCamera
    plan : list
        ``(frametype, exptime, filter, count)`` tuples, or dicts with those
        keys and optionally ``object`` (default 'M13'), ``sky`` (e-/s/pixel,
        default 20), ``stars`` (default 10), ``cosmic_rays`` (default 2 for
        lights, 1 for darks, none without noise), ``level`` (flats, ADU),
        ``dark_scale``, ``noise``, ``psf_sigma``.
    style : str
        See `make_header`.
    seed : int
        Frame k gets seed ``(seed, k)``; lights of one object share a star
        field and drift slightly from frame to frame.
    noise : bool
        Default of the entries' ``noise``: False makes the exact noiseless
        night (and, unless an entry asks for them, no cosmic rays).
    start : datetime or str, optional
        DATE-OBS of the first frame; each frame starts ``readout`` seconds
        after the previous one ended.
    readout : float
    overwrite : bool
        Replace existing files of the same names (else `CcdcalError`).
    progress, cancel
        See :mod:`ginga_ccdcal.progress`.

    Returns
    -------
    list of str
        The paths, in observing order.  ``camera.written[path]`` holds
        each frame's `FrameInfo`.
    """
    style = _style(style)
    seed = 0 if seed is None else int(seed)
    entries = list(_plan_entries(plan))
    when = _as_datetime(start)
    counters, jobs = {}, []
    light_counts = {}
    for item in entries:
        kind = item["frametype"]
        obj = str(item.get("object", "M13"))
        for _ in range(int(item["count"])):
            name = _night_name(style, kind, float(item["exptime"]), item["filter"],
                               obj, when, counters, len(jobs))
            jobs.append((name, item, when))
            when = when + datetime.timedelta(seconds=float(item["exptime"]) + readout)
    names = [name for name, _, _ in jobs]
    if len(set(names)) != len(names):
        raise ValueError("the plan gives two frames the same file name")
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(os.fspath(directory), name) for name in names]
    if not overwrite:
        existing = [p for p in paths if os.path.exists(p)]
        if existing:
            raise CcdcalError(f"{existing[0]} already exists; pass overwrite=True "
                              "to replace it")
    written = []
    for k, ((name, item, date), path) in enumerate(zip(jobs, paths)):
        check(cancel)
        kind = item["frametype"]
        obj = str(item.get("object", "M13"))
        noisy = bool(item.get("noise", noise))
        default_crs = {"dark": 1, "light": 2}.get(kind, 0) if noisy else 0
        kwargs = {"seed": (seed, k), "noise": noisy,
                  "dark_scale": item.get("dark_scale", 1.0),
                  "cosmic_rays": item.get("cosmic_rays", default_crs)}
        if kind == "flat":
            kwargs["level"] = item.get("level")
        if kind == "light":
            n = light_counts.get(obj, 0)
            light_counts[obj] = n + 1
            kwargs.update(sky=item.get("sky", 20.0), stars=item.get("stars", 10),
                          star_seed=(seed, 1_000_003, _name_key(obj)),
                          shift=(0.2 * n, -0.15 * n),
                          psf_sigma=item.get("psf_sigma", 1.5))
        info = camera.plan_frame(kind, item["exptime"], item["filter"], **kwargs)
        data = camera.render(info)
        header = make_header(style, kind, item["exptime"], item["filter"],
                             date_obs=date, camera=camera)
        if kind == "light" and "OBJECT" in header:
            header["OBJECT"] = obj
        write_frame(path, data, header, overwrite=overwrite)
        camera.written[path] = info
        written.append(path)
        report(progress, k + 1, len(jobs), name)
    return written


# -- the sample night ----------------------------------------------------------

def dark_current_at(temperature):
    """Dark current (e-/s/pixel) of the sample camera's KAF-6303-like sensor.

    0.5 e-/s at 0 C, halving every 6.3 C colder: about 0.064 e-/s at the
    -18.7 C the Feder camera reached that night.
    """
    return 0.5 * 2.0 ** (float(temperature) / 6.3)


def _median_temperature():
    temps = sorted(float(r["ccd-temp"]) for r in _feder_table())
    return temps[len(temps) // 2]


def sample_camera(scale=SAMPLE_SCALE, seed=0):
    """The camera behind `make_sample_night` with the same ``scale`` and ``seed``.

    Its truth arrays are those of the sample night's frames.
    """
    ny, nx, width = _scaled_geometry(scale)
    temp = _median_temperature()
    return SyntheticCamera(
        (ny, width), bias_level=1310.0, read_noise=9.0, gain=1.5,
        dark_current=dark_current_at(temp), hot_pixel_fraction=3e-4,
        hot_pixel_rate=25.0, filters=("R",), vignetting=0.3,
        overscan_columns=nx - width, seed=(int(seed), 20130704),
        ccd_temp=temp)


# Cosmic-ray events per second on the whole 27.6 x 18.4 mm sensor
# (about 1.5 per cm^2 per minute at ground level).
_CR_RATE = 1.5 * 2.76 * 1.84 / 60.0
# R sky per unit airmass, e-/s/pixel.
_SKY_PER_AIRMASS = 8.0


def _sample_recipes(camera, scale, seed):
    """(file name, row, FrameInfo) of each sample frame, without pixels."""
    recipes = []
    n_light = 0
    for i, row in enumerate(_feder_table()):
        kind = row["imagetyp"].lower()
        exptime = float(row["exptime"])
        choice = np.random.default_rng((int(seed), i, 7))
        # Dark current doubles every 6.3 C: each frame at its own CCD-TEMP.
        kwargs = {"seed": (int(seed), i),
                  "dark_scale": 2.0 ** ((float(row["ccd-temp"]) - camera.ccd_temp) / 6.3)}
        if kind != "bias":
            kwargs["cosmic_rays"] = int(choice.poisson(_CR_RATE * exptime))
        if kind == "flat":
            # The flood lamp drifts by about a percent between flats.
            kwargs["level"] = 20000.0 * (1.0 + 0.01 * choice.standard_normal())
        if kind == "light":
            airmass = float(row["airmass"]) if row.get("airmass") else 1.3
            kwargs.update(sky=_SKY_PER_AIRMASS * airmass,
                          stars=max(8, int(round(300 * scale ** 2))),
                          star_seed=(int(seed), 112),
                          # Slow drift of an unguided mount, ~30 px a night.
                          shift=(0.8 * n_light * scale, -0.5 * n_light * scale),
                          psf_sigma=max(0.8, 2.3 * scale))
            n_light += 1
        info = camera.plan_frame(kind, exptime, "R" if kind in ("flat", "light") else None,
                                 **kwargs)
        recipes.append((row["file"], row, info))
    return recipes


def sample_frame_infos(scale=SAMPLE_SCALE, seed=0, camera=None):
    """File name -> `FrameInfo` of every frame `make_sample_night` writes.

    With ``camera = sample_camera(scale, seed)``,
    ``camera.render(info)`` is exactly the file's data and
    ``camera.ideal_light_of(info)`` the true signal of a light.
    """
    camera = camera if camera is not None else sample_camera(scale, seed)
    return {name: info for name, _, info in _sample_recipes(camera, scale, seed)}


def make_sample_night(directory, *, scale=SAMPLE_SCALE, seed=0, overwrite=False,
                      progress=None, cancel=None):
    """Write the sample night: real Feder headers, synthetic pixels.

    One FITS file per frame of the night of 2013-07-04 at Feder Observatory
    (10 bias, 10 dark 15 s, 10 dark 30 s, 10 R flats 15 s, 38 R lights 30 s),
    named as the real files, with every keyword the real header had (see
    `feder_header`) plus a HISTORY card saying the pixels are synthetic.
    Pixels come from ``sample_camera(scale, seed)``: bias ~1310 ADU, read
    noise 9 e-, gain 1.5 e-/ADU, dark current and hot pixels at each frame's
    CCD-TEMP, a vignetted R flat at ~20000 ADU, lights with sky (following
    the real airmass), a drifting star field and cosmic rays.

    Parameters
    ----------
    directory : str or path-like
        Created if missing.
    scale : float
        Size relative to the real 3085 x 2048 frames, in (0, 1]; 0.25 makes
        ~60 MB, 1 makes ~1 GB.
    seed : int
    overwrite : bool
        Allow writing into a folder that already has files (same-named ones
        are replaced).
    progress, cancel
        Reported and checked once per frame.  On cancellation the files
        this call created are removed.

    Returns
    -------
    list of str
        The paths, in the table's order.

    Raises
    ------
    CcdcalError
        The folder is not empty and ``overwrite`` is False.
    Cancelled
    """
    directory = os.fspath(directory)
    camera = sample_camera(scale, seed)
    if os.path.isdir(directory) and os.listdir(directory) and not overwrite:
        raise CcdcalError(f"{directory} is not empty; choose an empty folder or "
                          "pass overwrite=True to write the sample night into it")
    os.makedirs(directory, exist_ok=True)
    recipes = _sample_recipes(camera, scale, seed)
    total = len(recipes)
    created, paths = [], []
    note = (f"ginga_ccdcal sample: header of Feder Observatory 2013-07-04, "
            f"synthetic pixels (scale {float(scale):g}, seed {int(seed)})")
    try:
        report(progress, 0, total, "sample night")
        for k, (name, row, info) in enumerate(recipes):
            check(cancel)
            path = os.path.join(directory, name)
            header = feder_header(row, scale)
            header.add_history(note)
            existed = os.path.exists(path)
            write_frame(path, camera.render(info), header, overwrite=True)
            if not existed:
                created.append(path)
            paths.append(path)
            report(progress, k + 1, total, name)
    except Cancelled:
        for path in created:
            os.remove(path)
        raise
    return paths


# -- a CCDSoft / SBIG night full of traps ----------------------------------------

#: The pedestal CCDSoft writes as ``BIAS = 100``: ADU added to every pixel of
#: a frame the camera software dark-subtracted, so noise never clips at 0.
CCDSOFT_PEDESTAL = 100
#: Binning of the CCDSoft night, (x, y) as XBINNING/YBINNING say it.
CCDSOFT_BINNING = (1, 2)
#: The two cooler set-points of the CCDSoft night, deg C.
CCDSOFT_SET_POINTS = (-10.0, -5.0)


@dataclass
class TrapFrame:
    """One file of `make_ccdsoft_night` and the truth about it.

    Attributes
    ----------
    path : str
    frametype : str
        What the frame really is: 'bias', 'dark', 'flat', 'light', or
        'unknown' for the arc-lamp frame (no calibration type at all).
    imagetyp : str or None
        What its header's IMAGETYP says (None: no IMAGETYP card).
    exptime : float
    filter : str or None
    set_temp, ccd_temp : float
        Cooler set-point and the sensor temperature written to CCD-TEMP.
    dark_subtracted : bool
        The camera software subtracted a dark of the same exposure and
        temperature (bias included) and added the `CCDSOFT_PEDESTAL`; the
        header says ``HISTORY Auto-Dark Subtraction`` and ``PEDESTAL = -100``
        (3 lights and 1 flat).
    info : FrameInfo or None
        The recipe (None for the arc); ``camera.ideal_light_of(info)`` is a
        light's true signal.
    """

    path: str
    frametype: str
    imagetyp: object
    exptime: float
    filter: object
    set_temp: float
    ccd_temp: float
    dark_subtracted: bool = False
    info: object = None


@dataclass
class CcdsoftNight:
    """What `make_ccdsoft_night` wrote: the camera and every file's truth."""

    directory: str
    camera: SyntheticCamera
    frames: list

    @property
    def paths(self):
        """Every path, in observing order."""
        return [f.path for f in self.frames]

    @property
    def truth(self):
        """Path -> true frame type."""
        return {f.path: f.frametype for f in self.frames}

    def of_type(self, frametype):
        """The `TrapFrame` s that truly are ``frametype``, in observing order."""
        return [f for f in self.frames if f.frametype == frametype]

    def named(self, name):
        """The `TrapFrame` of file name ``name`` (base name)."""
        for frame in self.frames:
            if os.path.basename(frame.path) == name:
                return frame
        raise KeyError(name)


def _ccdsoft_header(imagetyp, exptime, filter, when, set_temp, ccd_temp, camera,
                    image_id):
    """A header as CCDSoft 5 writes it for an SBIG camera binned 1 x 2."""
    xbin, ybin = CCDSOFT_BINNING
    h = fits.Header()
    h["OBJECT"] = ("M57" if imagetyp == "Light Frame" else "", "")
    h["TELESCOP"] = ("", "")
    h["OBSERVER"] = ("", "")
    h["DATE-OBS"] = (_iso(when, 3), "GMT START OF EXPOSURE")
    h["TIME-OBS"] = (when.strftime("%H:%M:%S") + f"{when.microsecond / 1e6:.3f}"[1:],
                     "GMT START OF EXPOSURE")
    h["EXPTIME"] = (float(exptime), "EXPOSURE IN SECONDS")
    h["CCD-TEMP"] = (round(float(ccd_temp), 3), "CCD TEMP IN DEGREES C")
    h["XPIXSZ"] = (9.0 * xbin, "PIXEL WIDTH IN MICRONS")
    h["YPIXSZ"] = (9.0 * ybin, "PIXEL HEIGHT IN MICRONS")
    h["XBINNING"] = (xbin, "HORIZONTAL BINNING FACTOR")
    h["YBINNING"] = (ybin, "VERTICAL BINNING FACTOR")
    h["XORGSUBF"] = (0, "SUB_FRAME ORIGIN X_POS")
    h["YORGSUBF"] = (0, "SUB_FRAME ORIGIN Y_POS")
    if filter is not None:
        h["FILTER"] = (str(filter), "OPTICAL FILTER NAME")
    if imagetyp is not None:
        h["IMAGETYP"] = (imagetyp, "IMAGE TYPE")
    h["SWCREATE"] = ("CCDSoft Version 5.00.216", "")
    h["SET-TEMP"] = (float(set_temp), "TEMPERATURE SETPOINT IN DEGREES C")
    h["COLORCCD"] = (0, "NON-ZERO IF COLOR CCD")
    h["IMAGEID"] = (int(image_id), "IMAGE NUMBER")
    h["EGAIN"] = (camera.gain, "ELECTRONS PER ADU")
    h["E-GAIN"] = (camera.gain, "ELECTRONS PER ADU")
    h["INSTRUME"] = ("SBIG ST-8 3 CCD Camera", "CAMERA MODEL")
    h["BIAS"] = (CCDSOFT_PEDESTAL, "PEDESTAL ADDED TO DARK-SUBTRACTED IMAGES")
    return h


def _arc_lines(camera, rng):
    """A spectrograph's arc-lamp frame: bright, sharp emission lines (ADU).

    Each line is a Gaussian across the columns, as tall as the frame, with
    a slit-edge taper along it: nothing like a flat (not smooth) or a star
    field (no point sources), and far too bright for a dark.
    """
    ny, nx = camera.shape
    x = np.arange(nx)[None, :]
    y = (np.arange(ny)[:, None] + 0.5) / ny
    taper = np.clip(1.0 - ((y - 0.5) / 0.55) ** 8, 0.0, 1.0)
    lines = np.zeros(camera.shape)
    for centre in rng.uniform(0.05, 0.95, 9) * nx:
        height = rng.uniform(1500.0, 40000.0)
        lines += height * np.exp(-0.5 * ((x - centre) / 1.1) ** 2) * taper
    return camera._full(lines)


def _ccdsoft_plan():
    """(kind, exptime, count, set-point, extra) in observing order.

    extra: 'header' (IMAGETYP written), 'name' (file name stem), 'autodark'
    (how many of the group the camera dark-subtracted), 'stars'.
    """
    cold, warm = CCDSOFT_SET_POINTS
    return [
        ("bias", 0.0, 5, cold, {}),
        ("dark", 2.0, 3, cold, {}),
        ("dark", 5.0, 3, cold, {}),
        ("dark", 60.0, 3, cold, {}),
        # Twilight flats taken with the light-frame button: the trap.
        ("flat", 2.0, 3, cold, {"header": "Light Frame", "level": 21000.0}),
        # ... one of them with the camera's auto-dark on (a light, to CCDSoft).
        ("flat", 5.0, 3, cold, {"header": "Light Frame", "level": 19000.0,
                                "autodark": 1}),
        ("unknown", 5.0, 1, cold, {"name": "arc-neon"}),
        ("light", 60.0, 1, cold, {"name": "flat-field-target", "stars": 40}),
        ("light", 60.0, 4, cold, {"name": "m57-R", "autodark": 2}),
        ("bias", 0.0, 3, warm, {}),
        ("dark", 60.0, 3, warm, {}),
        ("light", 60.0, 2, warm, {"name": "m57-R", "autodark": 1}),
    ]


def _ccdsoft_name(kind, exptime, extra, counters):
    if "name" in extra:
        stem = extra["name"]
    elif kind == "bias":
        stem = "bias"
    else:
        stem = f"{kind}-" + ("R-" if kind == "flat" else "") + f"{exptime:g}s"
    counters[stem] = counters.get(stem, 0) + 1
    if stem == "flat-field-target":
        return stem + ".fits"
    return f"{stem}-{counters[stem]:03d}.fits"


def make_ccdsoft_night(directory, seed=0, *, shape=(80, 120), overwrite=False):
    """Write a night as CCDSoft saves it for an SBIG camera, full of traps.

    Every trap a lab night with CCDSoft headers sets for a calibration
    tool, in 34 small frames (``shape`` rows x columns, 80 x 120 by default),
    R filter, binned 1 x 2 (``XBINNING = 1``, ``YBINNING = 2``), a
    ``BIAS = 100`` pedestal card in every header, IMAGETYP spelled as
    CCDSoft does ('Bias Frame', 'Dark Frame', 'Light Frame'):

    - **flats saved as lights**: 3 flats of 2 s (~21000 ADU) and 3 of 5 s
      (~19000 ADU), smooth and vignetted, with ``IMAGETYP = 'Light Frame'``
      and names ``flat-R-2s-001.fits``, ``flat-R-5s-001.fits``...;
    - **mixed flat exposures** with darks of both (3 x 2 s, 3 x 5 s) and of
      the lights (60 s);
    - **two cooler set-points**: at -10 C 5 bias, the 2 s, 5 s and 60 s
      darks, the flats and 5 lights; then at -5 C 3 bias, 3 darks of 60 s
      and 2 lights (dark current 1.7 x higher).  CCD-TEMP scatters by
      ~0.1 C around SET-TEMP;
    - **auto-dark lights**: 3 of the 6 ``m57-R-*.fits`` lights were
      dark-subtracted by the camera software (``HISTORY Auto-Dark
      Subtraction``, ``PEDESTAL = -100`` as CCDSoft writes them): their
      pixels are ``flat * signal + 100`` plus noise;
    - **an auto-dark flat**: ``flat-R-5s-001.fits`` was dark-subtracted by
      the camera software too (a flat saved as a light gets the light's
      auto-dark), with the same header traces;
    - **an arc-lamp frame** ``arc-neon-001.fits`` with no IMAGETYP: bright
      sharp lines, neither a dark nor a flat nor a light (truth 'unknown');
    - **a light named** ``flat-field-target.fits``: IMAGETYP 'Light Frame'
      and a field of stars; it is a light.

    Parameters
    ----------
    directory : str or path-like
        Created if missing.
    seed : int
    shape : (int, int)
        Rows, columns of each frame.
    overwrite : bool
        Replace files of the same names (else `CcdcalError` if one exists).

    Returns
    -------
    CcdsoftNight
        ``.frames``: a `TrapFrame` per file (path, true type, header's
        IMAGETYP, exposure, set-point, CCD-TEMP, auto-dark flag, recipe) in
        observing order; ``.paths``, ``.truth`` (path -> true type),
        ``.of_type(kind)``, ``.named(file_name)``; ``.camera`` the
        `SyntheticCamera` (bias ~100 ADU, gain 2.3 e-/ADU, read noise 15 e-,
        0.5 e-/s dark current at -10 C; ``camera.flats['R']``...).

    Examples
    --------
    >>> night = make_ccdsoft_night(tmp_path / 'ccdsoft')      # doctest: +SKIP
    >>> [f.path for f in night.of_type('flat')][0]             # doctest: +SKIP
    '.../flat-R-2s-001.fits'
    """
    directory = os.fspath(directory)
    seed = int(seed)
    cold = CCDSOFT_SET_POINTS[0]
    camera = SyntheticCamera(
        shape, bias_level=float(CCDSOFT_PEDESTAL), read_noise=15.0, gain=2.3,
        dark_current=0.5, hot_pixel_fraction=2e-3, hot_pixel_rate=20.0,
        filters=("R",), vignetting=0.3, seed=(seed, 5000), ccd_temp=cold)
    rng = np.random.default_rng((seed, 5001))
    when = datetime.datetime(2024, 10, 3, 0, 30, 0)
    counters, jobs = {}, []
    for kind, exptime, count, set_temp, extra in _ccdsoft_plan():
        for n in range(count):
            name = _ccdsoft_name(kind, exptime, extra, counters)
            ccd_temp = set_temp + round(float(rng.normal(0.0, 0.1)), 2)
            autodark = n < extra.get("autodark", 0)
            jobs.append((name, kind, exptime, set_temp, ccd_temp, autodark, extra, when))
            when += datetime.timedelta(seconds=exptime + 8.0)
    paths = [os.path.join(directory, job[0]) for job in jobs]
    if not overwrite:
        existing = [p for p in paths if os.path.exists(p)]
        if existing:
            raise CcdcalError(f"{existing[0]} already exists; pass overwrite=True "
                              "to replace it")
    os.makedirs(directory, exist_ok=True)
    frames = []
    for k, ((name, kind, exptime, set_temp, ccd_temp, autodark, extra, date), path) \
            in enumerate(zip(jobs, paths)):
        frames.append(_write_ccdsoft_frame(
            camera, path, kind, exptime, set_temp, ccd_temp, autodark, extra, date,
            (seed, k)))
    return CcdsoftNight(directory, camera, frames)


def _write_ccdsoft_frame(camera, path, kind, exptime, set_temp, ccd_temp, autodark,
                         extra, date, seed):
    """Render, label and write one frame of `make_ccdsoft_night`."""
    dark_scale = 2.0 ** ((ccd_temp - camera.ccd_temp) / 6.3)
    filter = "R" if kind in ("flat", "light") else None
    info = None
    if kind == "unknown":
        rng = np.random.default_rng(seed)
        dark = camera.dark_rate * exptime * dark_scale
        image = camera.bias + dark + _arc_lines(camera, rng)
        image = rng.poisson(np.clip(image - camera.bias, 0, None) * camera.gain) \
            / camera.gain + camera.bias
        image += rng.normal(0.0, camera.read_noise / camera.gain, camera.raw_shape)
        data = np.clip(np.rint(image), 0, camera.saturation).astype(np.uint16)
        imagetyp = None
    else:
        kwargs = {"seed": seed, "dark_scale": dark_scale,
                  "cosmic_rays": 1 if kind in ("dark", "light") else 0}
        if kind == "flat":
            kwargs["level"] = extra["level"] * (1.0 + 0.01 * np.random.default_rng(
                seed).standard_normal())
        if kind == "light":
            kwargs.update(sky=20.0, stars=extra.get("stars", 15),
                          star_seed=(seed[0], 5002, _name_key(extra.get("name"))))
        info = camera.plan_frame(kind, exptime, filter, **kwargs)
        data = camera.render(info, dtype=np.float64)
        if autodark:
            # The camera subtracted a dark of this exposure (bias included)
            # and added the pedestal.
            data = data - (camera.bias + camera.dark_rate * exptime * dark_scale) \
                + CCDSOFT_PEDESTAL
        data = np.clip(np.rint(data), 0, camera.saturation).astype(np.uint16)
        imagetyp = extra.get("header") or {"bias": "Bias Frame", "dark": "Dark Frame",
                                           "light": "Light Frame"}[kind]
    header = _ccdsoft_header(imagetyp, exptime, filter, date, set_temp, ccd_temp,
                             camera, seed[1] + 1)
    if autodark:
        # What CCDSoft / CCDOps write on a frame they dark-subtracted: the
        # correction to add to get zero-based ADU, and the HISTORY lines.
        header["PEDESTAL"] = (-CCDSOFT_PEDESTAL, "CORRECTION TO ADD FOR ZERO-BASED ADU")
        header.add_history("Auto-Dark Subtraction")
        header.add_history(f"Dark Subtraction (Dark {exptime:g} sec, Bin1x2, "
                           f"Temp {set_temp:g}C)")
    write_frame(path, data, header, overwrite=True)
    if info is not None:
        camera.written[path] = info
    return TrapFrame(path, kind, imagetyp, float(exptime), filter, float(set_temp),
                     float(ccd_temp), bool(autodark), info)
