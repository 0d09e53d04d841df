"""Building master bias, dark and flat frames, and finding existing ones.

The recipe is the one taught in CCD-reduction labs (and ccdproc's
documentation): the bias is an average of the bias frames; each dark
exposure is a median of bias-subtracted darks; each filter's flat is a
median of bias- and dark-subtracted flats, each scaled to a common level,
then normalised to a median of one.  The pixel work is done by
`ginga_ccdcal.combine.combine`.
"""

import os
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import provenance
from .combine import combine
from .errors import CcdcalError
from .fitsfile import read_header, read_image
from .group import DEFAULT_TOLERANCES, group_frames
from .progress import check
from .quality import SATURATED_FLAT_FRACTION, saturated_fraction
from .regions import apply_regions, find_regions
from .safe_write import OutputExists, write_fits

__all__ = ["MasterFrame", "MasterOptions", "MasterReport", "build_masters",
           "build_master_bias", "build_master_darks", "build_master_flats",
           "load_master", "load_masters", "master_from_file", "stale_masters", "master_data"]

MASTER_KINDS = ("bias", "dark", "flat")


@dataclass
class MasterFrame:
    """A master calibration frame on disk, described by its header."""

    path: str
    kind: str
    exptime: float = None
    filter: str = None
    ccd_temp: float = None
    binning: tuple = (1, 1)
    shape: tuple = ()
    n_frames: int = 0
    bias_subtracted: bool = False
    overscan: bool = False
    raw_shape: tuple = ()
    mtime: float = 0.0
    header: object = None

    @property
    def name(self):
        return os.path.basename(self.path)

    @property
    def version(self):
        """Which build of this master: frames and time, e.g. ``'10 frames, 09:12:03'``."""
        made = str((self.header or {}).get("CCDCALDT", ""))
        return f"{self.n_frames} frames" + (f", made {made[11:19]}" if made else "")

    def describe(self):
        """One line for lists: ``'dark 30 s (10 frames, bias-subtracted)'``."""
        bits = [self.kind]
        if self.kind == "dark" and self.exptime is not None:
            bits.append(f"{self.exptime:g} s")
        if self.kind == "flat":
            bits.append(f"filter {self.filter}")
        if self.ccd_temp is not None and self.kind == "dark":
            bits.append(f"{self.ccd_temp:.1f} C")
        extra = f"{self.n_frames} frames"
        if self.kind == "dark":
            extra += ", bias-subtracted" if self.bias_subtracted else ", includes bias"
        return f"{' '.join(bits)} ({extra})"


@dataclass
class MasterOptions:
    """How to combine each kind of master (ccdproc's meanings).

    ``method`` and ``sigma_clip`` are dicts keyed by kind.  Darks are split
    by CCD temperature as well as exposure when the temperatures of one
    exposure spread by more than ``temp_tolerance`` degrees.  With
    ``overscan`` (the default), frames whose header declares an overscan
    (see `ginga_ccdcal.regions`) have it subtracted and are trimmed; lights
    calibrated with such masters get the same treatment.
    """

    method: dict = field(default_factory=lambda: {
        "bias": "average", "dark": "median", "flat": "median"})
    sigma_clip: dict = field(default_factory=lambda: {
        "bias": False, "dark": False, "flat": False})
    sigma_low: float = 3.0
    sigma_high: float = 3.0
    clip_func: str = "mean"
    clip_dev_func: str = "std"
    flat_norm: str = "median"
    overscan: bool = True
    exptime_tolerance: float = DEFAULT_TOLERANCES["exptime"]
    temp_tolerance: float = 2.0
    mem_limit: int = None

    def combine_kwargs(self, kind):
        return dict(method=self.method[kind], sigma_clip=self.sigma_clip[kind],
                    sigma_clip_low_thresh=self.sigma_low,
                    sigma_clip_high_thresh=self.sigma_high,
                    sigma_clip_func=self.clip_func,
                    sigma_clip_dev_func=self.clip_dev_func,
                    mem_limit=self.mem_limit)


@dataclass
class MasterReport:
    """What `build_masters` made, reused, and could not do."""

    masters: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    problems: list = field(default_factory=list)


def master_from_file(path):
    """Describe a master written by this package, or None if it is not one."""
    try:
        info = read_header(path)
    except CcdcalError:
        return None
    header = info.header
    kind = str(header.get("MSTRTYPE", "")).lower()
    if kind not in MASTER_KINDS:
        return None
    from .classify import binning_from_header, temperature_from_header
    exptime = header.get("EXPTIME")
    shape = tuple(info.shape)
    raw_shape = shape
    if "RAWNAX1" in header and "RAWNAX2" in header:
        raw_shape = (int(header["RAWNAX2"]), int(header["RAWNAX1"]))
    return MasterFrame(
        path=os.path.abspath(path), kind=kind, overscan=bool(header.get("OVSCNSUB", False)),
        raw_shape=raw_shape,
        exptime=float(exptime) if exptime is not None else None,
        filter=(str(header["FILTER"]).strip() if "FILTER" in header else None),
        ccd_temp=temperature_from_header(header),
        binning=binning_from_header(header), shape=shape,
        n_frames=int(header.get("NCOMBINE", 0)),
        bias_subtracted=bool(header.get("BIASSUB", False)),
        mtime=os.path.getmtime(path), header=header)


def load_masters(folder):
    """All masters this package wrote in ``folder`` (not recursive).

    Returns an empty list if the folder does not exist.
    """
    if not folder or not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        if name.lower().endswith((".fits", ".fit", ".fts")) and not name.startswith("."):
            master = master_from_file(os.path.join(folder, name))
            if master is not None:
                found.append(master)
    return found


def load_master(path):
    """A master as an astropy `~astropy.nddata.CCDData`, for work by hand.

    The same float32 pixels the calibration uses (a copy, so changing it
    changes nothing else), the master's header, and unit ADU unless the
    header's BUNIT says otherwise.

    Examples
    --------
    >>> bias = load_master("masters/master_bias.fits")      # doctest: +SKIP
    >>> by_hand = raw.subtract(bias)                         # doctest: +SKIP
    """
    from astropy import units as u
    from astropy.nddata import CCDData
    master = master_from_file(path)
    if master is None:
        raise CcdcalError(f"{path}: not a master made by ginga-ccdcal")
    try:
        unit = u.Unit(str(master.header.get("BUNIT", "adu")))
    except ValueError:
        unit = u.adu
    return CCDData(np.array(master_data(master)), unit=unit, header=master.header.copy())


_cache = {}


def master_data(master, form="data"):
    """A master's pixels as float32, cached while the file is unchanged.

    Calibrating a night reads the same three masters for every light;
    keeping them in memory is what makes one calibration fast.

    Parameters
    ----------
    master : MasterFrame
    form : {'data', 'inverse'}
        ``'inverse'`` gives ``1 / data`` with NaN where the master is zero,
        negative or undefined: a flat's reciprocal, so that flat-fielding is
        one multiplication and dead pixels come out undefined.
    """
    key = (master.path, os.path.getmtime(master.path), form)
    if key not in _cache:
        for old in [k for k in _cache if k[0] == master.path and k[1] != key[1]]:
            del _cache[old]
        if len(_cache) > 16:
            _cache.pop(next(iter(_cache)))
        if form == "inverse":
            data = master_data(master)
            with np.errstate(divide="ignore", invalid="ignore"):
                array = np.float32(1) / data
            array[~(data > 0)] = np.nan  # also catches NaN in the master
        else:
            array = read_image(master.path, dtype=np.float32)[0]
        array.flags.writeable = False  # shared: nobody may change it in place
        _cache[key] = array
    return _cache[key]


def stale_masters(masters, frames):
    """Masters older than a raw frame of their kind (so worth rebuilding).

    Returns
    -------
    list of (MasterFrame, int)
        Each stale master with the number of newer raw frames.
    """
    stale = []
    for master in masters:
        newer = sum(1 for f in frames
                    if f.frametype == master.kind and f.mtime > master.mtime
                    and _same_setup(master, f))
        if newer:
            stale.append((master, newer))
    return stale


def _same_setup(master, frame):
    if master.kind == "flat" and (master.filter or "") != (frame.filter or ""):
        return False
    if master.kind == "dark" and master.exptime is not None and frame.exptime is not None:
        return abs(master.exptime - frame.exptime) <= DEFAULT_TOLERANCES["exptime"]
    return True


def _safe_name(text):
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_") or "none"


def _setups(frames):
    """Frames split by detector setup (shape and binning), largest first.

    A night may mix 1x1 and 2x2 binning, or full frames and subframes, on
    purpose: each setup gets masters of its own.
    """
    setups = Counter((f.shape, f.binning) for f in frames)
    return [[f for f in frames if (f.shape, f.binning) == setup]
            for setup, _ in setups.most_common()]


def _setup_suffix(frames, all_setups):
    if len(all_setups) < 2:
        return ""
    f = frames[0]
    suffix = f"_bin{f.binning[0]}x{f.binning[1]}"
    if sum(1 for s in all_setups if s[0].binning == f.binning) > 1:
        suffix += f"_{f.shape[0]}x{f.shape[1]}"
    return suffix


def _inputs(frames, options):
    """What to combine: the files, or their overscan-corrected, trimmed pixels.

    Returns ``(inputs, regions)``; ``regions`` is None when no overscan is
    applied.  Corrected frames are held in memory (the bounded-memory path
    of `combine` applies to files read as they are).
    """
    regions = find_regions(frames[0].header, frames[0].shape) if options.overscan else None
    if regions is None:
        return [f.path for f in frames], None
    return [apply_regions(read_image(f.path)[0], regions) for f in frames], regions


def _master_header(frames, kind, options, result, regions=None):
    header = frames[0].header.copy()
    for key in ("BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM", "HISTORY",
                "COMMENT"):
        header.remove(key, ignore_missing=True, remove_all=True)
    if regions is not None:
        # The raw regions no longer describe the trimmed master.
        for key in ("BIASSEC", "TRIMSEC", "DATASEC", "OSCAN", "OSCANAX", "OSCANST"):
            header.remove(key, ignore_missing=True)
        rows, cols = frames[0].shape
        header["OVSCNSUB"] = (True, "overscan subtracted and frame trimmed")
        header["RAWNAX1"] = (cols, "columns of the raw frames")
        header["RAWNAX2"] = (rows, "rows of the raw frames")
        provenance.add_history(header, "inputs overscan-corrected: " + regions.describe())
    header["IMAGETYP"] = (f"MASTER {kind.upper()}", "combined calibration frame")
    header["MSTRTYPE"] = (kind, "ginga_ccdcal master kind")
    header["COMBMETH"] = (result.method, "combination method")
    clipped = bool(options.sigma_clip[kind])
    header["CLIPPED"] = (clipped, "sigma clipping applied before combining")
    if clipped:
        header["CLIPLO"] = (options.sigma_low, "low rejection threshold, sigma")
        header["CLIPHI"] = (options.sigma_high, "high rejection threshold, sigma")
        header["CLIPFUNC"] = (options.clip_func, "clipping centre")
        header["CLIPDEV"] = (options.clip_dev_func, "clipping deviation")
        header["NREJECT"] = (int(result.n_rejected), "pixels rejected by clipping")
    provenance.record_sources(header, [f.path for f in frames])
    provenance.stamp(header, f"master {kind} made")
    return header


def _replaces(path, overwrite):
    """Whether ``overwrite`` (True/False, or a set of paths) covers ``path``."""
    if isinstance(overwrite, bool):
        return overwrite
    return os.path.abspath(path) in {os.path.abspath(p) for p in overwrite}


def _write_master(path, data, header, overwrite, report):
    try:
        write_fits(path, data.astype(np.float32, copy=False), header,
                   overwrite=_replaces(path, overwrite))
    except OutputExists:
        report.problems.append(f"{path}: exists and was kept (overwrite to rebuild)")
    master = master_from_file(path)
    report.masters.append(master)
    return master


def _existing(path, overwrite, report):
    """Reuse a master already on disk unless asked to rebuild it."""
    if _replaces(path, overwrite) or not os.path.exists(path):
        return None
    master = master_from_file(path)
    if master is not None:
        report.kept.append(master)
        report.masters.append(master)
    return master


def build_master_bias(frames, out_dir, options=None, *, report=None,
                      overwrite=False, progress=None, cancel=None):
    """Combine bias frames into master bias frame(s), one per detector setup.

    Parameters
    ----------
    frames : list of `~ginga_ccdcal.scan.Frame`
        The bias frames.
    out_dir : str
    options : MasterOptions, optional
    report : MasterReport, optional
        Collects the results; a new one is made if not given.
    overwrite : bool
        Rebuild a master that already exists (otherwise it is reused).

    Returns
    -------
    MasterReport
    """
    options = options or MasterOptions()
    report = report if report is not None else MasterReport()
    if not frames:
        report.problems.append("no bias frames: darks and flats are combined "
                               "without bias subtraction")
        return report
    setups = _setups(frames)
    for group in setups:
        check(cancel)
        path = os.path.join(out_dir, f"master_bias{_setup_suffix(group, setups)}.fits")
        if _existing(path, overwrite, report):
            continue
        inputs, regions = _inputs(group, options)
        result = combine(inputs, progress=progress, cancel=cancel,
                         **options.combine_kwargs("bias"))
        header = _master_header(group, "bias", options, result, regions)
        header["EXPTIME"] = (0.0, "bias")
        header["EXPOSURE"] = 0.0
        _write_master(path, result.data, header, overwrite, report)
    return report


def _bias_for(group, masters):
    from .match import choose_bias
    return choose_bias(group[0], masters)


def build_master_darks(frames, out_dir, options=None, *, masters=(),
                       report=None, overwrite=False, progress=None, cancel=None):
    """Combine darks, bias-subtracted, into one master per exposure time.

    Darks are grouped by exposure (within ``options.exptime_tolerance``)
    and, when the temperatures of a group spread wider than
    ``options.temp_tolerance``, by CCD temperature too.  ``masters`` are
    the available master biases; without one the darks are combined as
    they are and marked ``BIASSUB = F`` (such a dark cannot be scaled).
    """
    options = options or MasterOptions()
    report = report if report is not None else MasterReport()
    if not frames:
        return report
    tolerances = {"exptime": options.exptime_tolerance,
                  "ccd_temp": options.temp_tolerance}
    setups = _setups(frames)
    for setup in setups:
        for exp_group in group_frames(setup, ("exptime",), tolerances):
            temps = [f.ccd_temp for f in exp_group.frames if f.ccd_temp is not None]
            if temps and max(temps) - min(temps) > options.temp_tolerance:
                subgroups = [(g.frames, g.value) for g in
                             group_frames(exp_group.frames, ("ccd_temp",), tolerances)]
            else:
                subgroups = [(exp_group.frames, None)]
            for group, temp in subgroups:
                check(cancel)
                _build_one_dark(group, exp_group.value, temp, out_dir, options,
                                masters, report, overwrite, progress, cancel,
                                _setup_suffix(group, setups))
    return report


def _build_one_dark(group, exptime, temp, out_dir, options, masters, report,
                    overwrite, progress, cancel, suffix):
    if exptime is None:
        report.problems.extend(f"{f.path}: dark without EXPTIME/EXPOSURE, not used"
                               for f in group)
        return
    name = f"master_dark_{exptime:g}s"
    if temp is not None:
        name += f"_{temp:+.0f}C"
    path = os.path.join(out_dir, name + suffix + ".fits")
    if _existing(path, overwrite, report):
        return
    bias = _bias_for(group, masters)
    subtract = master_data(bias.master) if bias.master is not None else None
    inputs, regions = _inputs(group, options)
    result = combine(inputs, subtract=subtract, progress=progress,
                     cancel=cancel, **options.combine_kwargs("dark"))
    header = _master_header(group, "dark", options, result, regions)
    header["EXPTIME"] = (float(exptime), "exposure of the combined darks, s")
    header["EXPOSURE"] = float(exptime)
    temps = [f.ccd_temp for f in group if f.ccd_temp is not None]
    if temps:
        header["CCD-TEMP"] = (float(np.mean(temps)), "mean CCD temperature, C")
    header["BIASSUB"] = (bias.master is not None, "bias subtracted before combining")
    if bias.master is not None:
        provenance.record_master(header, "bias", bias.master.path, reason=bias.reason)
    else:
        report.problems.append(f"{path}: no master bias, so this dark includes "
                               "the bias and cannot be scaled to other exposures")
    _write_master(path, result.data, header, overwrite, report)


def build_master_flats(frames, out_dir, options=None, *, masters=(),
                       report=None, overwrite=False, progress=None, cancel=None):
    """Combine flats into one normalised master per filter.

    Each flat has the master bias and the matching master dark (same
    exposure, or the nearest bias-subtracted one scaled) subtracted, is
    scaled by the inverse of its median so that twilight flats of falling
    brightness weigh alike, and the combination is divided by its
    ``options.flat_norm`` ('median' or 'mean') so the master is one on
    average.
    """
    from .match import choose_dark
    options = options or MasterOptions()
    report = report if report is not None else MasterReport()
    if not frames:
        return report
    setups = _setups(frames)
    for setup in setups:
        for filt_group in group_frames(setup, ("filter",)):
            check(cancel)
            group, filt = filt_group.frames, filt_group.value
            suffix = _setup_suffix(group, setups)
            path = os.path.join(out_dir, f"master_flat_{_safe_name(filt)}{suffix}.fits")
            if _existing(path, overwrite, report):
                continue
            group = _unsaturated(group, report)
            if not group:
                report.problems.append(f"{path}: not made, every filter {filt} flat "
                                       "is saturated")
                continue
            bias = _bias_for(group, masters)
            exptimes = [f.exptime for f in group if f.exptime is not None]
            exptime = float(np.median(exptimes)) if exptimes else None
            dark = choose_dark(group[0], masters, exptime=exptime,
                               bias_available=bias.master is not None,
                               tolerance=options.exptime_tolerance)
            inputs, regions = _inputs(group, options)
            subtract = np.float32(0)
            if bias.master is not None and not (dark.master is not None
                                                and not dark.master.bias_subtracted):
                    subtract = subtract + master_data(bias.master)
            if dark.master is not None:
                subtract = subtract + np.float32(dark.scale) * master_data(dark.master)
            result = combine(inputs, subtract=subtract,
                             scale="inverse_median", progress=progress,
                             cancel=cancel, **options.combine_kwargs("flat"))
            data = result.data
            norm = (np.nanmedian if options.flat_norm == "median" else np.nanmean)(data)
            if not np.isfinite(norm) or norm <= 0:
                report.problems.append(f"{path}: flat level is {norm}; flats not usable")
                continue
            data = data / np.float32(norm)
            header = _master_header(group, "flat", options, result, regions)
            if filt is not None:
                header["FILTER"] = (str(filt), "filter of the combined flats")
            if exptime is not None:
                header["EXPTIME"] = (exptime, "median exposure of the flats, s")
            header["FLATNORM"] = (options.flat_norm, "flat normalised by its ...")
            header["BIASSUB"] = (bias.master is not None, "bias subtracted")
            header["DARKSUB"] = (dark.master is not None, "dark subtracted")
            if bias.master is not None:
                provenance.record_master(header, "bias", bias.master.path,
                                         reason=bias.reason)
            if dark.master is not None:
                provenance.record_master(header, "dark", dark.master.path,
                                         scale=dark.scale, reason=dark.reason)
            else:
                report.problems.append(f"{path}: no usable master dark for the "
                                       f"flats ({dark.reason}); dark not subtracted")
            _write_master(path, data, header, overwrite, report)
    return report


def _unsaturated(flats, report):
    """The flats fit to use: a saturated flat would flatten nothing."""
    kept = []
    for frame in flats:
        data, header, _ = read_image(frame.path)
        fraction, level = saturated_fraction(data, header)
        if fraction > SATURATED_FLAT_FRACTION:
            report.problems.append(f"{frame.path}: {100 * fraction:.0f}% of pixels "
                                   f"saturated (at or above {level:g} ADU); flat not used")
        else:
            kept.append(frame)
    return kept


class _StageProgress:
    """Turns per-stage progress into one bar over all stages."""

    def __init__(self, progress, stages):
        self.progress, self.stages, self.index, self.label = progress, stages, 0, ""

    def stage(self, index, label):
        self.index, self.label = index, label

    def __call__(self, done, total, message=""):
        if self.progress is not None and total:
            overall = (self.index + done / total) / self.stages
            self.progress(overall, 1.0, f"{self.label}: {message}".rstrip(": "))


def build_masters(frames, out_dir, options=None, *, overwrite=False,
                  progress=None, cancel=None):
    """Build every master a set of raw frames allows: bias, darks, flats.

    Parameters
    ----------
    frames : list of `~ginga_ccdcal.scan.Frame`
        Typically ``scan_folder(raw).frames``; lights and unknowns are
        ignored.
    out_dir : str
        Where the masters are written (created if needed).  Masters
        already there are reused unless ``overwrite``.
    overwrite : bool or set of str
        Rebuild every master that exists, or only those at these paths
        (how the watch mode refreshes stale masters).
    options : MasterOptions, optional
    progress, cancel
        See `ginga_ccdcal.progress`; progress runs from 0 to 1 over all
        masters.

    Returns
    -------
    MasterReport
        ``masters`` (all, built or kept), ``kept``, and ``problems``: one
        line per thing that could not be done as asked.
    """
    options = options or MasterOptions()
    by_type = {kind: [f for f in frames if f.frametype == kind] for kind in MASTER_KINDS}
    report = MasterReport()
    staged = _StageProgress(progress, 3)
    staged.stage(0, "master bias")
    build_master_bias(by_type["bias"], out_dir, options, report=report,
                      overwrite=overwrite, progress=staged, cancel=cancel)
    staged.stage(1, "master darks")
    build_master_darks(by_type["dark"], out_dir, options, masters=report.masters,
                       report=report, overwrite=overwrite, progress=staged,
                       cancel=cancel)
    staged.stage(2, "master flats")
    build_master_flats(by_type["flat"], out_dir, options,
                       masters=list(report.masters), report=report,
                       overwrite=overwrite, progress=staged, cancel=cancel)
    return report
