"""Characterising the CCD from a night's calibration frames.

The bias, dark and flat frames a night already holds are enough to measure
the camera itself, the way a detector lab does:

read noise
    the robust standard deviation of the difference of two bias frames,
    divided by sqrt(2) (the fixed bias pattern cancels), averaged over
    several pairs;
gain
    the photon-transfer method: for each pair of flats of one filter and
    level, the variance of their (scaled) difference against their mean
    bias-subtracted level lies on a line of slope 1/gain.  Flats at
    several levels are fitted with that line (the bias pair gives the
    point at zero signal); flats at a single level use the two-flat,
    two-bias formula of Janesick (*Photon Transfer*, SPIE 2007)::

        gain = (F1 + F2 - B1 - B2) / (var(F1 - F2) - var(B1 - B2))

dark current
    for each CCD temperature set-point apart (darks at -10 C and -5 C are
    never mixed), the bias-subtracted level of each exposure's dark
    (robust mean over the pixels, so hot pixels and cosmic rays do not
    count; the median of three or more darks, the mean of two), divided by
    the exposure; with several exposures, the slope of level against
    exposure, which ignores any residual bias offset;
hot pixels
    pixels whose dark rate exceeds the local median by ``hot_sigma``
    robust standard deviations (or by an absolute rate in e-/s), so that
    smooth amplifier glow is not counted;
bias structure
    mean profiles of the combined bias along rows and columns and their
    peak-to-peak, on the raw bias (the overscan would remove the row
    pattern);
vignetting
    ``1 - corner / peak`` of a smooth quadratic surface fitted to the
    normalised flat of each filter (block medians, so dust shadows and
    bad pixels do not pull the fit): the light lost in the darkest corner;
bad pixels
    :func:`ccdproc.ccdmask` on the ratio of two flats of different level
    (IRAF's recipe: pixels whose response is not linear), or on the
    normalised flat when all flats share one level, together with the
    hot pixels.

Everything is computed on the most common detector setup (shape and
binning) among the calibration frames; the overscan, when the header
declares one (see `ginga_ccdcal.regions`), is trimmed away, and
subtracted where absolute levels matter (darks, flats).
"""

import datetime
import html
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from astropy.stats import mad_std, sigma_clipped_stats

from . import __version__
from .combine import combine
from .errors import CcdcalError
from .fitsfile import read_image
from .group import group_frames
from .progress import check
from .quality import saturated_fraction
from .regions import apply_regions, find_regions

__all__ = ["CCDReport", "DarkCurrent", "DarkLevel", "PTCPoint", "characterise",
           "characterise_folder", "write_report", "measure_vignetting",
           "radial_profile", "ptc_model", "dark_rate_histogram"]

#: Robust statistics clip at this many standard deviations.
CLIP_SIGMA = 5.0
#: Two flats form a pair when their levels differ by less than this fraction.
PAIR_TOLERANCE = 0.05
#: Flats whose levels span at least this factor are fitted as a photon-transfer curve.
PTC_MIN_SPAN = 1.5
#: Names of the files `write_report` writes.
REPORT_FILES = {"html": "ccd_report.html", "text": "ccd_report.txt",
                "ptc": "ptc.png", "bias": "bias_profiles.png",
                "hot": "hot_pixels.png", "flat": "flat_profile.png",
                "mask": "bad_pixels.fits"}


@dataclass
class DarkLevel:
    """The dark signal measured at one exposure time.

    Attributes
    ----------
    exptime : float
        Seconds.
    n_frames : int
        Raw darks combined (or the master's NCOMBINE).
    level_adu : float
        Bias-subtracted level, ADU (robust mean over the pixels).
    rate_adu : float
        ``level_adu / exptime``, ADU/s/pixel.
    rate_e : float or None
        The same in e-/s/pixel (None without a gain).
    ccd_temp : float or None
        Median CCD temperature of the set-point's darks, deg C.
    source : str
        ``'raw darks'`` or the master's file name.
    """

    exptime: float
    n_frames: int
    level_adu: float
    rate_adu: float
    rate_e: float = None
    ccd_temp: float = None
    source: str = "raw darks"


@dataclass
class DarkCurrent:
    """The dark current at one CCD temperature set-point.

    Attributes
    ----------
    set_point : float or None
        Median CCD temperature of the darks, deg C.
    rate_adu : float
        ADU/s/pixel: the slope of level against exposure with several
        exposures, else level / exposure.
    rate_e : float or None
        e-/s/pixel (None without a gain).
    method : str
        ``'slope over N exposures'`` or ``'level / exposure'``.
    n_exposures : int
    """

    set_point: float
    rate_adu: float
    method: str
    n_exposures: int
    rate_e: float = None


@dataclass
class PTCPoint:
    """One point of the photon-transfer curve (a pair of frames).

    With ``r = S1 / S2`` the ratio of the two bias-subtracted means, the
    scaled difference ``D = F1 - r F2`` is free of the flat's fixed pattern
    and ``var(D) = S1 (1 + r) / gain + sigma^2 (1 + r^2)``.  The point is
    ``signal = S1 (1 + r) / (1 + r^2)``, ``variance = var(D) / (1 + r^2)``,
    so that ``variance = signal / gain + sigma^2`` exactly (for ``r = 1``
    these are the mean level and half the variance of the difference).

    Attributes
    ----------
    signal : float
        ADU above bias.
    variance : float
        ADU squared.
    filter : str or None
        None for the bias pair (signal 0).
    files : tuple of str
        Paths of the frames.
    """

    signal: float
    variance: float
    filter: object
    files: tuple


@dataclass
class CCDReport:
    """What `characterise` measured; None wherever a quantity could not be.

    Attributes
    ----------
    folder : str
    shape : tuple
        (rows, columns) of the imaging area analysed.
    binning : tuple
    n_bias, n_dark, n_flat : int
        Frames of each kind used.
    bias_level : float
        Median of the combined raw bias, ADU.
    read_noise_adu, read_noise_e : float
    read_noise_pairs : list of float
        Read noise (ADU) of each bias pair.
    gain : float
        e-/ADU.
    gain_error : float
        Standard error of the fitted gain (photon-transfer fit), or the
        scatter of the pairs' gains over sqrt(pairs) (single level).
    gain_method : str
        ``'photon transfer fit'``, ``'two-flat/two-bias (Janesick)'`` or
        ``'header EGAIN'``.
    ptc : list of PTCPoint
        The bias pair first (when there is one), then the flat pairs.
    darks : list of DarkLevel
        One per exposure time and temperature set-point (darks at -10 C
        and -5 C are never mixed), coldest set-point and shortest first.
    dark_currents : list of DarkCurrent
        One per set-point, coldest first.
    dark_current_adu, dark_current_e : float
        ADU/s/pixel and e-/s/pixel at the main set-point (the one with the
        most darks).
    dark_method : str
        ``'slope over N exposures'`` or ``'level / exposure'``.
    dark_temp : float
        The main set-point: median CCD temperature of its darks, deg C.
    dark_rate_map : numpy.ndarray
        ADU/s per pixel from the longest dark exposure at the main
        set-point.
    hot_map : numpy.ndarray of bool
    n_hot : int
    hot_threshold_adu : float
        Excess over the local median dark rate (ADU/s) above which a pixel
        is hot.
    bias_row_profile, bias_col_profile : numpy.ndarray
        Mean of the combined raw bias along each row (one value per row)
        and each column, ADU.
    bias_row_ptp, bias_col_ptp : float
        Their peak-to-peak, ADU.
    vignetting : dict
        Filter -> fraction of light lost in the darkest corner.
    flat_profiles : dict
        Filter -> (radius in pixels, level relative to the peak) arrays.
    bad_pixel_mask : numpy.ndarray of bool
    n_bad : int
    bad_pixel_source : str
        The image ccdmask was run on.
    regions : `~ginga_ccdcal.regions.Regions` or None
        Overscan and imaging area of the raw frames (None: no overscan;
        the whole frame is the imaging area).  The maps above are in
        imaging-area pixels.
    vignetting_peaks : dict
        Filter -> (row, column) of the flat's fitted maximum, the centre
        of its radial profile.
    notes : list of str
        What could not be measured, and why.
    """

    folder: str = ""
    shape: tuple = ()
    binning: tuple = (1, 1)
    n_bias: int = 0
    n_dark: int = 0
    n_flat: int = 0
    bias_level: float = None
    read_noise_adu: float = None
    read_noise_e: float = None
    read_noise_pairs: list = field(default_factory=list)
    gain: float = None
    gain_error: float = None
    gain_method: str = None
    ptc: list = field(default_factory=list)
    darks: list = field(default_factory=list)
    dark_currents: list = field(default_factory=list)
    dark_current_adu: float = None
    dark_current_e: float = None
    dark_method: str = None
    dark_temp: float = None
    dark_rate_map: np.ndarray = None
    hot_map: np.ndarray = None
    n_hot: int = None
    hot_threshold_adu: float = None
    bias_row_profile: np.ndarray = None
    bias_col_profile: np.ndarray = None
    bias_row_ptp: float = None
    bias_col_ptp: float = None
    vignetting: dict = field(default_factory=dict)
    flat_profiles: dict = field(default_factory=dict)
    bad_pixel_mask: np.ndarray = None
    n_bad: int = None
    bad_pixel_source: str = None
    regions: object = None
    vignetting_peaks: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def lines(self):
        """The report as lines of text for people (terminal, text file)."""
        def num(value, fmt, unit=""):
            return "not measured" if value is None else f"{value:{fmt}}{unit}"

        rows, cols = self.shape if self.shape else (0, 0)
        out = [f"CCD characterisation of {self.folder or '(frames)'}",
               f"  imaging area {cols} x {rows} px, binning "
               f"{self.binning[0]}x{self.binning[1]}; used {self.n_bias} bias, "
               f"{self.n_dark} dark, {self.n_flat} flat frames",
               f"  bias level      {num(self.bias_level, '.1f', ' ADU')}",
               f"  read noise      {num(self.read_noise_adu, '.3f', ' ADU')}"
               + (f" = {self.read_noise_e:.3f} e-" if self.read_noise_e is not None else "")
               + (f"  ({len(self.read_noise_pairs)} bias pairs)"
                  if self.read_noise_pairs else "")]
        gain = num(self.gain, ".4f", " e-/ADU")
        if self.gain is not None and self.gain_error:
            gain += f" +- {self.gain_error:.4f}"
        if self.gain_method:
            gain += f"  ({self.gain_method}"
            n_flat_pairs = sum(1 for p in self.ptc if p.filter is not None)
            gain += f", {n_flat_pairs} flat pairs)" if n_flat_pairs else ")"
        out.append(f"  gain            {gain}")
        dark = num(self.dark_current_adu, ".5f", " ADU/s/px")
        if self.dark_current_e is not None:
            dark += f" = {self.dark_current_e:.5f} e-/s/px"
        if self.dark_method:
            dark += f"  ({self.dark_method}"
            dark += f", {self.dark_temp:.1f} C)" if self.dark_temp is not None else ")"
        out.append(f"  dark current    {dark}")
        if len(self.dark_currents) > 1:
            for current in self.dark_currents:
                rate = f"{current.rate_adu:.5f} ADU/s/px"
                if current.rate_e is not None:
                    rate += f" = {current.rate_e:.5f} e-/s/px"
                out.append(f"    set-point {_temp_text(current.set_point)}: {rate} "
                           f"({current.method})")
        for d in self.darks:
            rate = f"{d.rate_adu:.5f} ADU/s"
            if d.rate_e is not None:
                rate += f" = {d.rate_e:.5f} e-/s"
            temp = f" at {d.ccd_temp:.1f} C" if d.ccd_temp is not None else ""
            out.append(f"    {d.exptime:g} s: level {d.level_adu:.3f} ADU, {rate}"
                       f"{temp} ({d.n_frames} frames, {d.source})")
        if self.n_hot is not None:
            out.append(f"  hot pixels      {self.n_hot} "
                       f"({100.0 * self.n_hot / max(1, rows * cols):.3f} %), above "
                       f"{self.hot_threshold_adu:.4g} ADU/s over the local median")
        else:
            out.append("  hot pixels      not measured")
        if self.bias_row_ptp is not None:
            out.append(f"  bias structure  rows {self.bias_row_ptp:.2f} ADU "
                       f"peak-to-peak, columns {self.bias_col_ptp:.2f} ADU")
        else:
            out.append("  bias structure  not measured")
        if self.vignetting:
            for filt, value in sorted(self.vignetting.items(), key=lambda kv: str(kv[0])):
                out.append(f"  vignetting      filter {filt}: {100 * value:.1f} % "
                           "light lost in the darkest corner")
        else:
            out.append("  vignetting      not measured")
        if self.n_bad is not None:
            out.append(f"  bad pixels      {self.n_bad} ({self.bad_pixel_source}, "
                       "plus the hot pixels)")
        else:
            out.append("  bad pixels      not measured")
        out.extend(f"  note: {note}" for note in self.notes)
        return out

    def to_header(self, header):
        """Write the measured numbers into a FITS header as keywords.

        Only quantities that were measured are written: RDNOISE (e-) and
        RDNOISEA (ADU), GAIN (e-/ADU), DARKCUR (e-/s/pixel) and DARKCURA
        (ADU/s/pixel), DARKTEMP, NHOTPIX, NBADPIX, BIASLEV, BIASRPTP and
        BIASCPTP (row and column peak-to-peak), VIGNET (worst filter) and,
        with several filters, VIGNETn / VIGFILTn per filter.

        Parameters
        ----------
        header : astropy.io.fits.Header
            Modified in place.

        Returns
        -------
        astropy.io.fits.Header
            The same header.
        """
        def put(key, value, comment, digits=None):
            if value is not None:
                if digits is not None:
                    value = round(float(value), digits)
                header[key] = (value, comment)

        put("RDNOISE", self.read_noise_e, "read noise, e- (ccdcal characterise)", 4)
        put("RDNOISEA", self.read_noise_adu, "read noise, ADU", 4)
        put("GAIN", self.gain, f"gain, e-/ADU ({self.gain_method})"[:47], 5)
        put("DARKCUR", self.dark_current_e, "dark current, e-/s/pixel", 6)
        put("DARKCURA", self.dark_current_adu, "dark current, ADU/s/pixel", 6)
        put("DARKTEMP", self.dark_temp, "CCD temperature of the darks, C", 2)
        put("NHOTPIX", self.n_hot, "number of hot pixels")
        put("NBADPIX", self.n_bad, "number of bad pixels (ccdmask + hot)")
        put("BIASLEV", self.bias_level, "median bias level, ADU", 2)
        put("BIASRPTP", self.bias_row_ptp, "bias row profile peak-to-peak, ADU", 3)
        put("BIASCPTP", self.bias_col_ptp, "bias column profile peak-to-peak, ADU", 3)
        if self.vignetting:
            worst = max(self.vignetting, key=self.vignetting.get)
            put("VIGNET", self.vignetting[worst],
                f"light lost in darkest corner, filter {worst}"[:47], 4)
            if len(self.vignetting) > 1:
                for i, filt in enumerate(sorted(self.vignetting, key=str), 1):
                    put(f"VIGNET{i}", self.vignetting[filt], f"vignetting, filter {filt}", 4)
                    header[f"VIGFILT{i}"] = (str(filt), f"filter of VIGNET{i}")
        return header


# -- robust statistics -------------------------------------------------------

def _clipped(values):
    """(mean, std) of ``values`` after iterative 5-sigma clipping about the median."""
    values = np.asarray(values, dtype=np.float64)
    mean, _, std = sigma_clipped_stats(values, sigma=CLIP_SIGMA, maxiters=10,
                                       cenfunc="median", stdfunc="std")
    return float(mean), float(std)


def _robust_std(values):
    """`astropy.stats.mad_std` of the finite values."""
    values = np.asarray(values, dtype=np.float64)
    return float(mad_std(values[np.isfinite(values)]))


# -- reading frames ----------------------------------------------------------

def _trimmed(frame, regions):
    """The frame's imaging area, raw (no overscan subtracted), float32."""
    data = read_image(frame.path, dtype=np.float32)[0]
    return data[regions.trim] if regions is not None else data


def _corrected(frame, regions):
    """The frame's imaging area with the overscan subtracted, float32."""
    data = read_image(frame.path, dtype=np.float32)[0]
    return apply_regions(data, regions) if regions is not None else data


def _stack(frames, regions, method, *, corrected, subtract=None, scale=None,
           cancel=None):
    """Combine frames' imaging areas (bounded memory when there is no overscan)."""
    if regions is None:
        inputs = [f.path for f in frames]
    else:
        read = _corrected if corrected else _trimmed
        inputs = []
        for frame in frames:
            check(cancel)
            inputs.append(read(frame, regions))
    return combine(inputs, method=method, subtract=subtract, scale=scale,
                   cancel=cancel).data


class _Stages:
    """One progress bar over several stages of unequal known length."""

    def __init__(self, progress, names):
        self.progress, self.names, self.index = progress, list(names), 0

    def start(self, name):
        self.index = self.names.index(name)
        self(0, 1, "")

    def __call__(self, done, total, message=""):
        if self.progress is not None and total:
            label = self.names[self.index]
            self.progress(self.index + done / total, len(self.names),
                          f"{label}: {message}".rstrip(": "))


# -- the measurements --------------------------------------------------------

def _pairs(items, limit):
    return [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)][:limit]


def _read_noise(report, biases, regions, max_pairs, stages, cancel):
    pairs = _pairs(biases, max_pairs)
    variances = []
    for k, (a, b) in enumerate(pairs):
        check(cancel)
        diff = _trimmed(a, regions) - _trimmed(b, regions)
        _, std = _clipped(diff)
        report.read_noise_pairs.append(std / np.sqrt(2.0))
        variances.append(std ** 2 / 2.0)
        stages(k + 1, len(pairs) + 1, f"{a.name} - {b.name}")
    if variances:
        report.read_noise_adu = float(np.sqrt(np.mean(variances)))
        report.ptc.append(PTCPoint(0.0, float(np.mean(variances)), None,
                                   tuple(f.path for p in pairs for f in p)))
    else:
        report.notes.append("read noise needs two bias frames")


def _bias(report, biases, regions, max_frames, cancel):
    """Combined raw bias (structure) and overscan-corrected bias (subtraction)."""
    use = biases[:max_frames]
    raw = _stack(use, regions, "average", corrected=False, cancel=cancel)
    corrected = raw
    if regions is not None:
        corrected = _stack(use, regions, "average", corrected=True, cancel=cancel)
    report.bias_level = float(np.nanmedian(raw))
    report.bias_row_profile = np.nanmean(raw, axis=1)
    report.bias_col_profile = np.nanmean(raw, axis=0)
    report.bias_row_ptp = float(np.ptp(report.bias_row_profile))
    report.bias_col_ptp = float(np.ptp(report.bias_col_profile))
    return raw, corrected


def _flat_pairs(flats, bias_raw, regions, stages, cancel):
    """Pairs of flats of one filter whose levels agree, with those levels."""
    levels = []
    for k, frame in enumerate(flats):
        check(cancel)
        raw, header, _ = read_image(frame.path)
        if regions is not None:
            raw = raw[regions.trim]
        # Saturated pixels have no photon noise left: such a flat would
        # bend the photon-transfer curve.
        saturated, _ = saturated_fraction(raw, header)
        mean, _ = _clipped(raw.astype(np.float32) - bias_raw)
        levels.append((frame, mean, saturated))
        stages(k + 1, 2 * len(flats), frame.name)
    pairs, skipped = [], []
    by_filter = {}
    for frame, mean, saturated in levels:
        if saturated > 1e-4:
            skipped.append(frame.name)
            continue
        by_filter.setdefault(frame.filter, []).append((frame, mean))
    for filt, items in by_filter.items():
        items.sort(key=lambda item: item[1])
        i = 0
        while i < len(items) - 1:
            (f1, m1), (f2, m2) = items[i], items[i + 1]
            if m1 > 0 and abs(m2 - m1) <= PAIR_TOLERANCE * m2:
                pairs.append((filt, f1, m1, f2, m2))
                i += 2
            else:
                i += 1
    return pairs, skipped


def _gain(report, flats, bias_raw, regions, stages, cancel):
    pairs, skipped = _flat_pairs(flats, bias_raw, regions, stages, cancel)
    if skipped:
        report.notes.append(f"{len(skipped)} saturated flat(s) left out of the "
                            "gain: " + ", ".join(skipped[:5]))
    for k, (filt, f1, s1, f2, s2) in enumerate(pairs):
        check(cancel)
        # Scale the second flat to the first so the fixed pattern
        # (vignetting, dust, PRNU) cancels in the difference.
        r = s1 / s2
        diff = (_trimmed(f1, regions) - bias_raw) - r * (_trimmed(f2, regions) - bias_raw)
        _, std = _clipped(diff)
        norm = 1.0 + r * r
        report.ptc.append(PTCPoint(s1 * (1.0 + r) / norm, std ** 2 / norm, filt,
                                   (f1.path, f2.path)))
        stages(len(flats) + len(flats) * (k + 1) / len(pairs), 2 * len(flats),
               f"{f1.name} - {f2.name}")
    flat_points = [p for p in report.ptc if p.filter is not None]
    if not flat_points:
        report.notes.append("gain needs two flats of one filter at the same "
                            "level (within 5 %)")
        return
    signal = np.array([p.signal for p in flat_points])
    variance = np.array([p.variance for p in flat_points])
    read_var = report.read_noise_adu ** 2 if report.read_noise_adu is not None else None
    if signal.max() >= PTC_MIN_SPAN * signal.min() and len(flat_points) >= 2:
        x = np.concatenate([[0.0], signal]) if read_var is not None else signal
        y = np.concatenate([[read_var], variance]) if read_var is not None else variance
        if not np.all(y > 0):
            report.notes.append("a frame pair has no variance (frames without "
                                "noise?); no photon-transfer gain")
            return
        # The variance of a variance estimate grows with the variance:
        # weight each point by 1 / its variance.
        coef, cov = np.polyfit(x, y, 1, w=1.0 / y, cov="unscaled") if len(x) > 2 \
            else (np.polyfit(x, y, 1), None)
        slope = coef[0]
        if slope <= 0:
            report.notes.append("photon-transfer slope is not positive; no gain")
            return
        report.gain = float(1.0 / slope)
        if cov is not None:
            resid = y - np.polyval(coef, x)
            dof = max(1, len(x) - 2)
            chi2 = float(np.sum((resid / y) ** 2)) / dof
            report.gain_error = float(np.sqrt(cov[0, 0] * chi2) / slope ** 2)
        report.gain_method = "photon transfer fit"
    else:
        if read_var is None:
            report.notes.append("flats at a single level need bias pairs for "
                                "the gain (two-flat/two-bias formula)")
            return
        excess = variance - read_var
        if np.any(excess <= 0):
            report.notes.append("flat variance not above the read noise; no gain")
            return
        gains = signal / excess
        report.gain = float(signal.sum() / excess.sum())
        if len(gains) > 1:
            report.gain_error = float(np.std(gains, ddof=1) / np.sqrt(len(gains)))
        report.gain_method = "two-flat/two-bias (Janesick)"


def _header_gain(report, frames):
    for frame in frames:
        value = frame.header.get("EGAIN")
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if value > 0:
            report.gain, report.gain_method = value, "header EGAIN"
            report.notes.append(f"gain taken from the header (EGAIN = {value:g}): "
                                "no usable flat pairs to measure it")
            return


def _master_for(masters, kind, frame, shape, **match):
    """The master of ``kind`` that fits ``frame`` by the one rule of
    `ginga_ccdcal.match.compatible` (same setup, exposure, filter; same
    set-point within the masters' temperature tolerance), and whose pixels
    are the imaging area analysed (``shape``)."""
    from .match import TEMP_TOLERANCE, compatible
    for m in masters:
        if m.kind == kind and tuple(m.shape) == tuple(shape) and compatible(
                frame, m, subframe=False, temp_tolerance=TEMP_TOLERANCE, **match):
            return m
    return None


def _dark_image(frames, regions, bias_corr, cancel):
    """Bias-subtracted dark of one exposure from the raw frames.

    Three or more: their median.  Two: their mean, except where they differ
    by more than 5 sigma of their difference (a cosmic ray in one), where
    the lower is kept; unlike a pixel-wise minimum this does not bias the
    level low.  One: the frame itself.
    """
    if len(frames) >= 3:
        image = _stack(frames, regions, "median", corrected=True,
                       subtract=bias_corr if regions is None else None,
                       cancel=cancel)
        return image - bias_corr if regions is not None else image
    images = [_corrected(f, regions) for f in frames]
    if len(images) == 2:
        a, b = images
        diff = a - b
        hit = np.abs(diff) > CLIP_SIGMA * _robust_std(diff)
        image = np.where(hit, np.minimum(a, b), 0.5 * (a + b))
    else:
        image = images[0]
    return image - bias_corr


def _set_point_groups(darks):
    """Darks split by CCD temperature set-point (see `split_by_temperature`)."""
    from .masters import split_by_temperature
    from .match import TEMP_TOLERANCE
    groups = []
    for frames, _ in split_by_temperature(darks, TEMP_TOLERANCE):
        temps = [f.ccd_temp for f in frames if f.ccd_temp is not None]
        groups.append((float(np.median(temps)) if temps else None, frames))
    return sorted(groups, key=lambda g: (g[0] is None, g[0] or 0.0))


def _darks(report, darks, bias_corr, regions, masters, max_frames, stages, cancel):
    """Dark level per exposure and set-point; the rate map (ADU/s) of the
    longest exposure at the main set-point."""
    from .masters import master_data
    set_points = []
    for set_point, frames in _set_point_groups(darks):
        groups = [g for g in group_frames(frames, ("exptime",)) if g.value is not None]
        if groups:
            set_points.append((set_point, groups))
    if not set_points:
        report.notes.append("dark current needs darks with an exposure time")
        return None
    total = sum(len(groups) for _, groups in set_points)
    done = 0
    maps = {}
    for set_point, groups in set_points:
        for group in groups:
            check(cancel)
            exptime = float(group.value)
            use = group.frames[:max_frames]
            master = _master_for(masters, "dark", use[0], report.shape, exptime=exptime)
            image = None
            if master is not None:
                image = np.array(master_data(master), dtype=np.float32)
                if not master.bias_subtracted:
                    if bias_corr is None:
                        master = image = None
                    else:
                        image -= bias_corr
            if image is None:
                if bias_corr is None:
                    report.notes.append("dark current needs bias frames (or master "
                                        "darks) to subtract the bias")
                    return None
                image = _dark_image(use, regions, bias_corr, cancel)
            level, _ = _clipped(image)
            report.darks.append(DarkLevel(
                exptime=exptime, n_frames=master.n_frames if master else len(use),
                level_adu=level,
                rate_adu=level / exptime if exptime > 0 else float("nan"),
                ccd_temp=set_point, source=master.name if master else "raw darks"))
            if exptime > 0 and exptime > maps.get(set_point, (0.0, None))[0]:
                maps[set_point] = (exptime, image)
            done += 1
            stages(done, total, f"{exptime:g} s")
    for set_point, _ in set_points:
        current = _dark_current([d for d in report.darks
                                 if d.ccd_temp == set_point and d.exptime > 0], set_point)
        if current is not None:
            report.dark_currents.append(current)
    if not report.dark_currents:
        report.notes.append("dark current needs darks longer than 0 s")
        return None
    # The headline: the set-point with the most darks (the colder on a tie).
    counts = {sp: sum(len(g.frames) for g in groups) for sp, groups in set_points}
    main = max(report.dark_currents,
               key=lambda c: (counts[c.set_point],
                              -(c.set_point if c.set_point is not None else 0.0)))
    report.dark_current_adu, report.dark_method = main.rate_adu, main.method
    report.dark_temp = main.set_point
    if len(report.dark_currents) > 1:
        report.notes.append(
            f"darks at {len(report.dark_currents)} temperature set-points, measured "
            f"apart; hot pixels from the {_temp_text(main.set_point)} darks")
    exptime, image = maps[main.set_point]
    return image / np.float32(exptime)


def _temp_text(temp):
    return "unknown-temperature" if temp is None else f"{temp:.1f} C"


def _dark_current(levels, set_point):
    """`DarkCurrent` of one set-point from its levels (None without any)."""
    if not levels:
        return None
    exposures = sorted({d.exptime for d in levels})
    if len(exposures) >= 2:
        t = np.array([d.exptime for d in levels])
        level = np.array([d.level_adu for d in levels])
        rate = float(np.polyfit(t, level, 1)[0])
        method = f"slope over {len(exposures)} exposures"
    else:
        rate, method = levels[0].rate_adu, "level / exposure"
    return DarkCurrent(set_point=set_point, rate_adu=rate, method=method,
                       n_exposures=len(exposures))


def _hot_pixels(report, rate_map, hot_sigma, hot_threshold):
    from scipy.ndimage import median_filter
    # Compare with the local median so smooth amplifier glow is not "hot".
    excess = rate_map - median_filter(rate_map, size=5, mode="nearest")
    sigma = _robust_std(excess)
    threshold = hot_sigma * sigma
    if hot_threshold is not None:
        if report.gain is None:
            report.notes.append("hot-pixel threshold in e-/s needs a gain; used "
                                f"{hot_sigma:g} sigma instead")
        else:
            threshold = float(hot_threshold) / report.gain
    report.hot_threshold_adu = float(threshold)
    report.hot_map = excess > threshold
    report.n_hot = int(report.hot_map.sum())


def measure_vignetting(flat, *, blocks=24):
    """Fraction of light lost in the darkest corner of a flat.

    A quadratic surface in x and y is fitted to medians of blocks of the
    flat (two passes, the second without blocks further than 3 sigma from
    the first fit, so dust shadows and bad pixels do not pull it); the
    result is ``1 - (lowest of the four corner values) / (peak of the
    surface)``.

    Parameters
    ----------
    flat : 2-D array
        A flat field (any normalisation; NaN pixels are ignored).
    blocks : int
        Blocks along the shorter side.

    Returns
    -------
    fraction : float
    peak : (float, float)
        Row and column (pixels) of the surface's maximum.

    Examples
    --------
    >>> y, x = np.mgrid[0:100, 0:100]
    >>> flat = 1 - 0.2 * ((y - 49.5) ** 2 + (x - 49.5) ** 2) / (2 * 49.5 ** 2)
    >>> round(measure_vignetting(flat)[0], 3)
    0.2
    """
    flat = np.asarray(flat, dtype=np.float64)
    ny, nx = flat.shape
    size = max(1, min(ny, nx) // blocks)
    by, bx = ny // size, nx // size
    cut = flat[:by * size, :bx * size].reshape(by, size, bx, size)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            values = np.nanmedian(cut.transpose(0, 2, 1, 3).reshape(by, bx, -1), axis=2)
    rows = (np.arange(by) + 0.5) * size - 0.5
    cols = (np.arange(bx) + 0.5) * size - 0.5
    yy, xx = np.meshgrid(rows, cols, indexing="ij")

    def design(y, x):
        u, v = y / ny - 0.5, x / nx - 0.5
        return np.column_stack([np.ones_like(u), u, v, u * u, u * v, v * v])

    good = np.isfinite(values).ravel()
    a = design(yy.ravel(), xx.ravel())
    b = values.ravel()
    coef = None
    for _ in range(2):
        if good.sum() < 6:
            raise CcdcalError("flat has too few valid pixels to measure vignetting")
        coef = np.linalg.lstsq(a[good], b[good], rcond=None)[0]
        resid = b - a @ coef
        sigma = _robust_std(resid[good])
        good = np.isfinite(b) & (np.abs(resid) <= 3 * max(sigma, 1e-12))
    gy, gx = np.meshgrid(np.linspace(0, ny - 1, 101), np.linspace(0, nx - 1, 101),
                         indexing="ij")
    candidates = [(gy.ravel(), gx.ravel())]
    # The exact maximum of the quadratic, when it lies inside the frame.
    hessian = np.array([[2 * coef[3], coef[4]], [coef[4], 2 * coef[5]]])
    if hessian[0, 0] < 0 and np.linalg.det(hessian) > 0:
        u, v = np.linalg.solve(hessian, -coef[1:3])
        if abs(u) <= 0.5 and abs(v) <= 0.5:
            candidates.append((np.array([(u + 0.5) * ny]), np.array([(v + 0.5) * nx])))
    py = np.concatenate([c[0] for c in candidates])
    px = np.concatenate([c[1] for c in candidates])
    surface = design(py, px) @ coef
    top = int(np.argmax(surface))
    peak = float(surface[top])
    corners = design(np.array([0.0, 0.0, ny - 1.0, ny - 1.0]),
                     np.array([0.0, nx - 1.0, 0.0, nx - 1.0])) @ coef
    if peak <= 0:
        raise CcdcalError("flat level is not positive; cannot measure vignetting")
    return float(1.0 - corners.min() / peak), (float(py[top]), float(px[top]))


def radial_profile(flat, centre, bins=30):
    """Median level of ``flat`` in rings around ``centre``, relative to the centre ring.

    Returns
    -------
    radius, level : numpy.ndarray
        Ring centres (pixels) and median levels.
    """
    flat = np.asarray(flat, dtype=np.float64)
    y, x = np.indices(flat.shape)
    r = np.hypot(y - centre[0], x - centre[1]).ravel()
    values = flat.ravel()
    ok = np.isfinite(values)
    r, values = r[ok], values[ok]
    edges = np.linspace(0.0, r.max() + 1e-9, bins + 1)
    index = np.digitize(r, edges) - 1
    radius, level = [], []
    for i in range(bins):
        ring = values[index == i]
        if ring.size:
            radius.append(0.5 * (edges[i] + edges[i + 1]))
            level.append(float(np.median(ring)))
    level = np.array(level)
    return np.array(radius), level / level[0]


def _flats(report, flats, bias_corr, rate_map, regions, masters, max_frames,
           stages, cancel):
    """Normalised flat per filter (vignetting), and the image for ccdmask."""
    from .masters import master_data, normalise_flat
    by_filter = group_frames(flats, ("filter",))
    normalised = {}
    for k, group in enumerate(by_filter):
        check(cancel)
        filt = group.value
        master = _master_for(masters, "flat", group.frames[0], report.shape)
        if master is not None:
            flat = np.array(master_data(master), dtype=np.float64)
        else:
            flat = _combine_flats(group.frames[:max_frames], bias_corr, rate_map,
                                  regions, cancel)
        flat = normalise_flat(flat, "mean")[0]
        normalised[filt] = (flat, len(group.frames))
        fraction, peak = measure_vignetting(flat)
        report.vignetting[filt] = fraction
        report.vignetting_peaks[filt] = peak
        report.flat_profiles[filt] = radial_profile(flat, peak)
        stages(k + 1, len(by_filter) + 1, f"filter {filt}")
    return normalised


def _combine_flats(frames, bias_corr, rate_map, regions, cancel):
    """Median of the flats, each less the bias and the dark of its own
    exposure (the dark rate map times it), scaled by 1 / its median."""
    by_exptime = {}

    def subtrahend(frame):
        if rate_map is None or not frame.exptime:
            return bias_corr
        if frame.exptime not in by_exptime:
            by_exptime[frame.exptime] = bias_corr + rate_map * np.float32(frame.exptime)
        return by_exptime[frame.exptime]

    subtract = [subtrahend(f) for f in frames]
    if regions is None:
        return _stack(frames, None, "median", corrected=True, subtract=subtract,
                      scale="inverse_median", cancel=cancel)
    arrays = []
    for frame, sub in zip(frames, subtract):
        check(cancel)
        arrays.append(_corrected(frame, regions) - sub)
    return combine(arrays, method="median", scale="inverse_median", cancel=cancel).data


def _bad_pixels(report, flats, normalised, bias_corr, rate_map, regions, cancel):
    from astropy import units as u
    from astropy.nddata import CCDData
    from ccdproc import ccdmask

    ratio, source = None, None
    # IRAF's recipe: the ratio of flats of different level shows the pixels
    # whose response is not linear (dead, hot, charge traps).
    for filt, group in ((g.value, g.frames) for g in group_frames(flats, ("filter",))):
        levels = [(p.signal, p.files) for p in report.ptc if p.filter == filt]
        if len(levels) < 2:
            continue
        low, high = min(levels), max(levels)
        if high[0] < PTC_MIN_SPAN * low[0]:
            continue
        paths = {f.path: f for f in group}
        low_frames = [paths[p] for p in low[1] if p in paths]
        high_frames = [paths[p] for p in high[1] if p in paths]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (_combine_flats(high_frames, bias_corr, rate_map, regions, cancel)
                     / _combine_flats(low_frames, bias_corr, rate_map, regions, cancel))
        source = (f"ccdmask on the ratio of filter {filt} flats at "
                  f"{high[0]:.0f} and {low[0]:.0f} ADU")
        break
    if ratio is None and normalised:
        filt = max(normalised, key=lambda f: normalised[f][1])
        ratio = normalised[filt][0]
        source = f"ccdmask on the normalised filter {filt} flat"
    if ratio is None:
        return
    ratio = np.where(np.isfinite(ratio), ratio, np.nan)
    mask = ccdmask(CCDData(ratio, unit=u.dimensionless_unscaled), byblocks=True)
    if report.hot_map is not None:
        mask = mask | report.hot_map
    report.bad_pixel_mask = np.asarray(mask, dtype=bool)
    report.n_bad = int(report.bad_pixel_mask.sum())
    report.bad_pixel_source = source


# -- entry points --------------------------------------------------------------

def _main_setup(frames):
    setups = Counter((tuple(f.shape), tuple(f.binning)) for f in frames)
    (shape, binning), _ = setups.most_common(1)[0]
    return shape, binning, [f for f in frames if (tuple(f.shape), tuple(f.binning))
                            == (shape, binning)]


def characterise(frames, masters=(), *, hot_sigma=5.0, hot_threshold=None,
                 max_pairs=8, max_frames=25, progress=None, cancel=None):
    """Measure the CCD from the bias, dark and flat frames of a night.

    Parameters
    ----------
    frames : `~ginga_ccdcal.scan.ScanResult` or list of `~ginga_ccdcal.scan.Frame`
        Lights and unknown frames are ignored.
    masters : list of `~ginga_ccdcal.masters.MasterFrame`, optional
        Master darks and flats of the same setup are used instead of
        combining the raw frames again.
    hot_sigma : float
        A pixel is hot when its dark rate exceeds the local (5 x 5) median
        by this many robust standard deviations...
    hot_threshold : float, optional
        ...or, if given (and a gain is known), by this many e-/s.
    max_pairs : int
        Bias pairs used for the read noise.
    max_frames : int
        Frames combined at most per bias, dark exposure or flat filter.
    progress, cancel
        See `ginga_ccdcal.progress`.

    Returns
    -------
    CCDReport

    Raises
    ------
    CcdcalError
        No bias, dark or flat frames at all.
    FrameError
        A frame cannot be read.
    Cancelled
    """
    folder = getattr(frames, "folder", "")
    frames = list(getattr(frames, "frames", frames))
    calib = [f for f in frames if f.frametype in ("bias", "dark", "flat")]
    if not calib:
        raise CcdcalError(f"{folder or 'frames'}: no bias, dark or flat frames "
                          "to characterise the CCD with")
    shape, binning, used = _main_setup(calib)
    report = CCDReport(folder=str(folder), binning=binning)
    if len(used) < len(calib):
        report.notes.append(f"{len(calib) - len(used)} calibration frame(s) of "
                            "another shape or binning left out")
    regions = find_regions(used[0].header, shape)
    report.regions = regions
    if regions is not None:
        report.shape = tuple(s.stop - s.start for s in regions.trim)
    else:
        report.shape = tuple(shape)
    biases = [f for f in used if f.frametype == "bias"]
    darks = [f for f in used if f.frametype == "dark"]
    flats = [f for f in used if f.frametype == "flat"]
    report.n_bias, report.n_dark, report.n_flat = len(biases), len(darks), len(flats)
    masters = list(masters or ())
    stages = _Stages(progress, ["read noise", "bias", "gain", "darks", "flats",
                                "bad pixels"])

    stages.start("read noise")
    _read_noise(report, biases, regions, max_pairs, stages, cancel)
    bias_raw = bias_corr = None
    stages.start("bias")
    if biases:
        bias_raw, bias_corr = _bias(report, biases, regions, max_frames, cancel)
    else:
        report.notes.append("no bias frames: no bias structure, gain or dark current")
        master = _master_for(masters, "bias", used[0], report.shape)
        if master is not None:
            from .masters import master_data
            bias_corr = np.array(master_data(master), dtype=np.float32)
    stages.start("gain")
    if flats and bias_raw is not None:
        _gain(report, flats, bias_raw, regions, stages, cancel)
    elif not flats:
        report.notes.append("no flats: gain not measured")
    if report.gain is None:
        _header_gain(report, used)
    if report.gain is not None and report.read_noise_adu is not None:
        report.read_noise_e = report.read_noise_adu * report.gain

    stages.start("darks")
    rate_map = None
    if darks:
        rate_map = _darks(report, darks, bias_corr, regions, masters, max_frames,
                          stages, cancel)
    else:
        report.notes.append("no darks: dark current and hot pixels not measured")
    if rate_map is not None:
        report.dark_rate_map = rate_map
        _hot_pixels(report, rate_map, hot_sigma, hot_threshold)
        if report.gain is not None:
            report.dark_current_e = report.dark_current_adu * report.gain
            for d in report.darks + report.dark_currents:
                d.rate_e = d.rate_adu * report.gain

    stages.start("flats")
    normalised = {}
    if flats and bias_corr is not None:
        normalised = _flats(report, flats, bias_corr, rate_map, regions, masters,
                            max_frames, stages, cancel)
    elif flats:
        report.notes.append("flats without bias frames: vignetting not measured")
    stages.start("bad pixels")
    if flats and bias_corr is not None:
        _bad_pixels(report, flats, normalised, bias_corr, rate_map, regions, cancel)
    stages(1, 1, "done")
    return report


def characterise_folder(raw_dir, out_dir=None, progress=None, cancel=None, *,
                        masters_dir=None):
    """Scan a folder, characterise its CCD, and write the report if asked.

    This is what ``ginga-ccdcal characterise RAW --out DIR`` runs.

    Parameters
    ----------
    raw_dir : str or path-like
        Folder of raw frames (searched recursively).
    out_dir : str or path-like, optional
        Where `write_report` puts the HTML and text report, plots and the
        bad-pixel mask; nothing is written without it.
    progress, cancel
        See `ginga_ccdcal.progress`.
    masters_dir : str, optional
        Folder of masters made by this package, used where they fit.

    Returns
    -------
    CCDReport
    """
    from .masters import load_masters
    from .scan import scan_folder

    stages = _Stages(progress, ["scan", "characterise"])
    stages.start("scan")
    scan = scan_folder(raw_dir, progress=stages, cancel=cancel)
    stages.start("characterise")
    report = characterise(scan, load_masters(masters_dir) if masters_dir else (),
                          progress=stages if progress else None, cancel=cancel)
    if scan.problems:
        report.notes.append(f"{len(scan.problems)} unreadable file(s) skipped")
    if out_dir is not None:
        write_report(report, out_dir)
    return report


# -- the written report --------------------------------------------------------

def ptc_model(report, signal):
    """Variance (ADU^2) the fitted gain predicts at ``signal`` (ADU above bias).

    ``signal / gain + read_noise^2`` (read noise 0 when not measured): the
    line drawn through the photon-transfer points.
    """
    base = report.read_noise_adu ** 2 if report.read_noise_adu is not None else 0.0
    return np.asarray(signal, dtype=np.float64) / report.gain + base


def dark_rate_histogram(report, bins=200):
    """Histogram of the dark rate per pixel, as the hot-pixel plot shows it.

    In e-/s when the gain is known, else ADU/s.

    Returns
    -------
    counts, edges : numpy.ndarray
        Pixels per bin and the ``bins + 1`` bin edges.
    unit : str
        ``'e-/s'`` or ``'ADU/s'``.
    factor : float
        ADU/s -> ``unit``.
    threshold : float
        Where a pixel of typical surroundings (the median rate) becomes
        hot: median + ``hot_threshold_adu``, in ``unit``.
    """
    rates = report.dark_rate_map[np.isfinite(report.dark_rate_map)].ravel()
    unit, factor = "ADU/s", 1.0
    if report.gain is not None:
        unit, factor = "e-/s", report.gain
    counts, edges = np.histogram(rates * factor, bins=bins)
    threshold = (float(np.median(rates)) + report.hot_threshold_adu) * factor
    return counts, edges, unit, factor, threshold


def _figure():
    # A bare Figure renders with Agg and never touches pyplot's global
    # backend, which the viewer may have set to Qt.  matplotlib is an
    # extra ("plots"): the core imports and runs without it.
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CcdcalError("the report's plots need matplotlib: "
                          "pip install 'ginga-ccdcal[plots]'") from None
    return Figure(figsize=(6.4, 4.2), dpi=100)


def _plot_ptc(report, path):
    fig = _figure()
    ax = fig.add_subplot()
    flats = [p for p in report.ptc if p.filter is not None]
    for filt in sorted({p.filter for p in flats}, key=str):
        pts = [p for p in flats if p.filter == filt]
        ax.plot([p.signal for p in pts], [p.variance for p in pts], "o",
                label=f"flat pairs, filter {filt}")
    if report.read_noise_adu is not None:
        ax.plot([0.0], [report.read_noise_adu ** 2], "s", color="gray",
                label=f"bias pairs: read noise {report.read_noise_adu:.2f} ADU")
    if report.gain and flats:
        s = np.linspace(0, max(p.signal for p in flats) * 1.05, 100)
        ax.plot(s, ptc_model(report, s), "-",
                label=f"gain {report.gain:.3f} e-/ADU, {report.gain_method}")
    ax.set_xlabel("signal above bias (ADU)")
    ax.set_ylabel("variance (ADU$^2$)")
    ax.set_title("Photon-transfer curve")
    ax.legend(fontsize="small")
    fig.savefig(path)


def _plot_bias(report, path):
    fig = _figure()
    ax1, ax2 = fig.subplots(2, 1)
    ax1.plot(report.bias_row_profile, lw=1)
    ax1.set_ylabel("ADU")
    ax1.set_xlabel("row")
    ax1.set_title(f"bias: mean of each row (peak-to-peak {report.bias_row_ptp:.2f} ADU)",
                  fontsize="small")
    ax2.plot(report.bias_col_profile, lw=1, color="C1")
    ax2.set_ylabel("ADU")
    ax2.set_xlabel("column")
    ax2.set_title(f"bias: mean of each column (peak-to-peak {report.bias_col_ptp:.2f} ADU)",
                  fontsize="small")
    fig.subplots_adjust(hspace=0.65, left=0.12, right=0.97, top=0.93, bottom=0.11)
    fig.savefig(path)


def _plot_hot(report, path):
    fig = _figure()
    ax = fig.add_subplot()
    counts, edges, unit, factor, threshold = dark_rate_histogram(report)
    # One stairs artist rather than 200 bar patches: several times faster.
    ax.stairs(counts, edges, fill=True, color="C0")
    ax.set_yscale("log")
    ax.set_ylim(0.5, None)
    ax.axvline(threshold, color="C3", ls="--",
               label=f"hot: > local median + {report.hot_threshold_adu * factor:.3g} {unit}")
    ax.set_xlabel(f"dark current ({unit} per pixel)")
    ax.set_ylabel("pixels")
    ax.set_title(f"Dark current per pixel: {report.n_hot} hot pixels")
    ax.legend(fontsize="small")
    fig.savefig(path)


def _plot_flat(report, path):
    fig = _figure()
    ax = fig.add_subplot()
    for filt, (radius, level) in sorted(report.flat_profiles.items(),
                                        key=lambda kv: str(kv[0])):
        ax.plot(radius, level, "-o", ms=3,
                label=f"filter {filt}: vignetting {100 * report.vignetting[filt]:.1f} %")
    ax.set_xlabel("distance from the brightest point (pixels)")
    ax.set_ylabel("flat level / centre")
    ax.set_title("Flat-field illumination")
    ax.legend(fontsize="small")
    fig.savefig(path)


def write_report(report, folder):
    """Write the report: HTML with PNG plots, a text version, the bad-pixel mask.

    Files (see `REPORT_FILES`): ``ccd_report.html``, ``ccd_report.txt``,
    ``ptc.png``, ``bias_profiles.png``, ``hot_pixels.png``,
    ``flat_profile.png`` (each plot only when its data was measured) and
    ``bad_pixels.fits`` (1 = bad, with the measured numbers in its
    header).  Existing report files are replaced.

    Parameters
    ----------
    report : CCDReport
    folder : str or path-like
        Created if needed.

    Returns
    -------
    dict
        Kind (``'html'``, ``'text'``, ``'ptc'``...) -> path written.
    """
    from astropy.io import fits

    from . import provenance
    from .safe_write import ensure_folder, write_fits

    folder = os.fspath(folder)
    ensure_folder(folder)
    written = {}
    plots = [("ptc", bool([p for p in report.ptc if p.filter is not None]), _plot_ptc,
              "Photon-transfer curve"),
             ("bias", report.bias_row_profile is not None, _plot_bias, "Bias structure"),
             ("hot", report.dark_rate_map is not None and report.n_hot is not None,
              _plot_hot, "Hot pixels"),
             ("flat", bool(report.flat_profiles), _plot_flat, "Flat illumination")]
    for kind, available, plot, _ in plots:
        path = os.path.join(folder, REPORT_FILES[kind])
        if available:
            plot(report, path)
            written[kind] = path
        elif os.path.exists(path):
            os.remove(path)  # a stale plot from an earlier run would mislead
    lines = report.lines()
    text_path = os.path.join(folder, REPORT_FILES["text"])
    with open(text_path, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    written["text"] = text_path
    if report.bad_pixel_mask is not None:
        header = report.to_header(fits.Header())
        header["MASKTYPE"] = ("bad pixels", "1 = bad (ccdmask + hot pixels)")
        provenance.stamp(header, "bad-pixel mask made")
        written["mask"] = write_fits(os.path.join(folder, REPORT_FILES["mask"]),
                                     report.bad_pixel_mask.astype(np.uint8), header,
                                     overwrite=True)
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
            "<title>CCD characterisation</title>",
            "<style>body{font-family:sans-serif;max-width:54em;margin:2em auto}"
            "pre{background:#f4f4f4;padding:1em}img{max-width:100%}</style>",
            "</head><body>", "<h1>CCD characterisation</h1>",
            f"<p>{html.escape(report.folder)} &mdash; ginga_ccdcal {__version__}, {now}</p>",
            "<pre>" + html.escape("\n".join(lines)) + "</pre>"]
    for kind, _, _, title in plots:
        if kind in written:
            body.append(f"<h2>{title}</h2><img src='{REPORT_FILES[kind]}' alt='{title}'>")
    if "mask" in written:
        body.append(f"<p>Bad-pixel mask: <a href='{REPORT_FILES['mask']}'>"
                    f"{REPORT_FILES['mask']}</a> (1 = bad).</p>")
    body.append("</body></html>")
    html_path = os.path.join(folder, REPORT_FILES["html"])
    with open(html_path, "w", encoding="utf-8") as stream:
        stream.write("\n".join(body) + "\n")
    written["html"] = html_path
    return written
