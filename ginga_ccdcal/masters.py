"""Building master bias, dark and flat frames, and finding existing ones.

The recipe is the one taught in CCD-reduction labs (and ccdproc's
documentation): the bias is an average of the bias frames; each dark
exposure is a median of bias-subtracted darks; each filter's flat is a
median of flats, each with the bias and the dark of its own exposure
subtracted and scaled to a common level, then normalised to a mean of one
(as ccdproc's ``flat_correct`` and IRAF's ``ccdproc`` divide by the mean;
the median is an option).  The pixel work is done by
`ginga_ccdcal.combine.combine`.

Besides the keywords listed in `ginga_ccdcal.provenance`, a master's
header summarises its inputs: DATE-BEG and DATE-END (DATE-OBS of the first
and last frame), DATE-AVG and MJD-AVG (mean mid-exposure time), CCD-TEMP
(mean), CCDTMIN and CCDTMAX; NREJECT (pixels rejected by sigma clipping);
for flats NDARKSUB (flats a dark was subtracted from) and NLOWFLAT
(pixels at or below zero, which cannot flat-field).
"""

import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np

from . import provenance
from .combine import combine
from .errors import CcdcalError
from .match import choose_bias, match_light
from .fitsfile import read_header, read_image
from .group import DEFAULT_TOLERANCES, group_frames
from .products import belongs_to_master
from .progress import check
from .quality import SATURATED_FLAT_FRACTION, saturated_fraction
from .regions import apply_regions, find_regions
from .safe_write import OutputExists, write_fits

__all__ = ["MasterFrame", "MasterOptions", "MasterReport", "build_masters",
           "build_master_bias", "build_master_darks", "build_master_flats",
           "load_master", "load_masters", "master_from_file", "stale_masters",
           "master_data", "normalise_flat", "split_by_temperature"]

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

    ``method`` and ``sigma_clip`` are dicts keyed by kind.  Clipping is
    about the median with the MAD-based standard deviation by default
    (``clip_func``, ``clip_dev_func``; see `ginga_ccdcal.combine.combine`).
    ``flat_norm`` ('mean' or 'median') is what the master flat is divided
    by.  Darks and flats are split by CCD temperature as well when the
    temperatures of one group spread by more than ``temp_tolerance``
    degrees.  With
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
    clip_func: str = "median"
    clip_dev_func: str = "mad_std"
    flat_norm: str = "mean"
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


FLAT_NORMS = ("mean", "median")


class MergingReport:
    """A dataclass report of list and dict fields that add up.

    Reports of work done apart (the bias, darks and flats tasks of a
    cluster run; lights calibrated one by one) become one with `extend`.
    """

    def extend(self, other):
        """Add ``other``'s entries after ours, field by field."""
        for item in fields(self):
            mine = getattr(self, item.name)
            if isinstance(mine, dict):
                mine.update(getattr(other, item.name))
            else:
                mine.extend(getattr(other, item.name))


@dataclass
class MasterReport(MergingReport):
    """What `build_masters` made, reused, and could not do.

    ``notes`` maps a master's path to lines saying what went into it (see
    `summary`).
    """

    masters: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def note(self, path, text):
        self.notes.setdefault(os.path.abspath(path), []).append(text)

    def summary(self, master):
        """Lines for people about one master: clipping, normalisation,
        what each flat had subtracted.  Empty for a master that was kept."""
        return list(self.notes.get(os.path.abspath(master.path), []))



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
    """Masters older than a raw frame that would go into them (worth rebuilding).

    A raw frame belongs to a master when it is of the master's kind and
    `ginga_ccdcal.match.compatible` with it in the very same setup (shape
    and binning; exposure for darks, filter for flats) and set-point
    (`ginga_ccdcal.products.belongs_to_master`): a new 2x2 bias does not
    make the 1x1 master bias stale, nor a -10 C dark the -5 C master.

    Returns
    -------
    list of (MasterFrame, int)
        Each stale master with the number of newer raw frames.
    """
    stale = []
    for master in masters:
        newer = sum(1 for f in frames
                    if f.mtime > master.mtime and belongs_to_master(f, master))
        if newer:
            stale.append((master, newer))
    return stale


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


def _start_time(frame):
    """Start of the frame's exposure (astropy Time, UTC), or None.

    DATE-OBS in ISO form, or a date with the time in TIME-OBS / UT.
    """
    from astropy.time import Time
    header = frame.header
    text = str(header.get("DATE-OBS", "")).strip()
    if text and "T" not in text:
        clock = header.get("TIME-OBS", header.get("UT"))
        if clock:
            text = f"{text}T{str(clock).strip()}"
    if not text:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Time(text, scale="utc")
    except ValueError:
        return None


def _summarise_inputs(header, frames):
    """Times and temperatures of all inputs, not the first frame's.

    DATE-BEG/DATE-END are the first and last DATE-OBS; DATE-AVG/MJD-AVG the
    mean of the frames' mid-exposure times; CCD-TEMP the mean temperature
    with CCDTMIN/CCDTMAX.  Keywords are written only from what the inputs
    say (a frame without a date or temperature is left out of that
    summary, and the comment says how many frames it covers).
    """
    from astropy.time import TimeDelta
    from .classify import TEMPERATURE_KEYWORDS
    timed = [(t, f) for t, f in ((_start_time(f), f) for f in frames) if t is not None]
    if timed:
        timed.sort(key=lambda pair: pair[0])
        first, last = timed[0][0], timed[-1][0]
        of = "" if len(timed) == len(frames) else f" ({len(timed)} of {len(frames)})"
        offsets = [(t - first).sec + 0.5 * (f.exptime or 0.0) for t, f in timed]
        mid = first + TimeDelta(float(np.mean(offsets)), format="sec")
        header["DATE-BEG"] = (first.isot, "DATE-OBS of the first input frame" + of)
        header["DATE-END"] = (last.isot, "DATE-OBS of the last input frame" + of)
        header["DATE-AVG"] = (mid.isot, "mean mid-exposure time of the inputs, UTC")
        header["MJD-AVG"] = (round(float(mid.mjd), 8), "MJD of DATE-AVG")
    temps = [f.ccd_temp for f in frames if f.ccd_temp is not None]
    for key in TEMPERATURE_KEYWORDS:  # the first frame's: not the master's
        header.remove(key, ignore_missing=True, remove_all=True)
    if temps:
        of = "" if len(temps) == len(frames) else f", {len(temps)} of {len(frames)}"
        header["CCD-TEMP"] = (round(float(np.mean(temps)), 3),
                              f"mean CCD temperature of the inputs, C{of}")
        header["CCDTMIN"] = (float(min(temps)), "lowest input CCD temperature, C")
        header["CCDTMAX"] = (float(max(temps)), "highest input CCD temperature, C")


def _earliest_first(frames):
    """The frames in observing order (DATE-OBS), undated ones last by path."""
    def key(frame):
        start = _start_time(frame)
        return (start is None, start.mjd if start is not None else 0.0, frame.path)
    return sorted(frames, key=key)


def _master_header(frames, kind, options, result, regions=None):
    # The first frame observed gives the keywords that describe one
    # exposure (DATE-OBS, TIME-OBS, JD...), so they agree with DATE-BEG.
    header = _earliest_first(frames)[0].header.copy()
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
    _summarise_inputs(header, frames)
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
    """Combine bias frames into master bias frame(s), one per detector setup
    (and per cooler set-point when the night has two, as for darks).

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
    for setup in setups:
        # Two cooler set-points: a master bias each (the bias level of many
        # cameras drifts with temperature; match.choose_bias takes the nearest).
        for group, temp in _by_temperature(setup, options):
            check(cancel)
            _build_one_bias(group, temp, out_dir, options, report, overwrite,
                            progress, cancel, _setup_suffix(group, setups))
    return report


def _build_one_bias(group, temp, out_dir, options, report, overwrite, progress,
                    cancel, suffix):
    path = os.path.join(out_dir, f"master_bias{_temp_suffix(temp)}{suffix}.fits")
    if not _existing(path, overwrite, report):
        inputs, regions = _inputs(group, options)
        result = combine(inputs, progress=progress, cancel=cancel,
                         **options.combine_kwargs("bias"))
        header = _master_header(group, "bias", options, result, regions)
        header["EXPTIME"] = (0.0, "bias")
        header["EXPOSURE"] = 0.0
        _clip_note(report, path, "bias", options, result)
        _write_master(path, result.data, header, overwrite, report)


def split_by_temperature(frames, tolerance):
    """``[(frames, temperature or None)]``: one group, or one per set-point.

    Frames are split by CCD temperature only when their temperatures spread
    wider than ``tolerance`` degrees (two set-points in one night);
    otherwise they stay one group, with None for its temperature.  The
    masters and the characterisation both group darks this way, so a
    -10 C and a -5 C dark never meet.
    """
    temps = [f.ccd_temp for f in frames if f.ccd_temp is not None]
    if not temps or max(temps) - min(temps) <= tolerance:
        return [(frames, None)]
    tolerances = {"ccd_temp": tolerance}
    return [(g.frames, g.value) for g in group_frames(frames, ("ccd_temp",), tolerances)]


def _by_temperature(frames, options):
    return split_by_temperature(frames, options.temp_tolerance)


def _temp_suffix(temp):
    return "" if temp is None else f"_{temp:+.0f}C"


def _clip_note(report, path, kind, options, result):
    if options.sigma_clip[kind]:
        n = int(result.n_rejected)
        total = max(1, result.n_frames * result.data.size)
        report.note(path, f"sigma clipping rejected {n} pixels "
                          f"({100.0 * n / total:.3g} % of {result.n_frames} frames; "
                          f"{options.clip_func}/{options.clip_dev_func}, "
                          f"{options.sigma_low:g}/{options.sigma_high:g} sigma)")


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
    tolerances = {"exptime": options.exptime_tolerance}
    setups = _setups(frames)
    for setup in setups:
        for exp_group in group_frames(setup, ("exptime",), tolerances):
            for group, temp in _by_temperature(exp_group.frames, options):
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
    name = f"master_dark_{exptime:g}s{_temp_suffix(temp)}"
    path = os.path.join(out_dir, name + suffix + ".fits")
    if _existing(path, overwrite, report):
        return
    bias = choose_bias(group[0], masters)
    group = _usable_darks(group, bias.master is not None, report)
    if not group:
        return
    bias_data = master_data(bias.master) if bias.master is not None else np.float32(0)
    # A dark whose bias the camera software (or IRAF...) took off already
    # only loses its pedestal; the others lose the master bias.
    subtract = [_pedestal_subtrahend(f) if "bias" in _done(f) else bias_data
                for f in group]
    inputs, regions = _inputs(group, options)
    result = combine(inputs, subtract=subtract, progress=progress,
                     cancel=cancel, **options.combine_kwargs("dark"))
    header = _master_header(group, "dark", options, result, regions)
    header["EXPTIME"] = (float(exptime), "exposure of the combined darks, s")
    header["EXPOSURE"] = float(exptime)
    before = [f for f in group if "bias" in _done(f)]
    header["BIASSUB"] = (bias.master is not None or len(before) == len(group),
                         "bias subtracted before combining")
    for frame in before:
        provenance.add_history(header, f"dark {frame.name}: bias not subtracted: "
                                       + _done(frame)["bias"])
    if bias.master is not None:
        provenance.record_master(header, "bias", bias.master.path, reason=bias.reason)
    elif not before:
        report.problems.append(f"{path}: no master bias, so this dark includes "
                               "the bias and cannot be scaled to other exposures")
    _clip_note(report, path, "dark", options, result)
    _write_master(path, result.data, header, overwrite, report)


def _done(frame):
    """Steps a raw frame's header says were done already (`provenance.steps_done`)."""
    return provenance.steps_done(getattr(frame, "header", None))


def _pedestal_subtrahend(frame):
    """What to subtract to take off the camera software's pedestal (0 if none)."""
    correction = provenance.camera_pedestal(getattr(frame, "header", None))
    return np.float32(-(correction or 0.0))


def _usable_darks(group, have_bias, report):
    """The darks of one group that can be combined together.

    A dark the camera software dark-subtracted holds no dark current any
    more; one whose bias was removed before cannot join darks that still
    contain it when there is no master bias to take it off them too.
    """
    usable = []
    with_bias = [f for f in group if "bias" not in _done(f)]
    for frame in group:
        done = _done(frame)
        if "dark" in done:
            report.problems.append(f"{frame.path}: dark {done['dark']}, so it holds "
                                   "no dark current; not used")
        elif "bias" in done and not have_bias and with_bias:
            report.problems.append(
                f"{frame.path}: bias {done['bias']}, but the other darks still "
                "contain it and there is no master bias; not used")
        else:
            usable.append(frame)
    return usable


def _flat_treatment(flat, masters, options):
    """The bias and dark for one flat, and a line saying what they are.

    Each flat gets the dark of its own exposure (or a scaled one when a
    bias allows it), as a light would: the one rule of
    `ginga_ccdcal.match`.

    Returns
    -------
    key : tuple
        (bias path or None, dark path or None, dark scale): flats with the
        same key share one array to subtract.
    bias, dark : Choice
        ``bias`` is empty when the dark includes it.
    text : str
    """
    # The rule a light follows (`match.match_light`): a step the camera
    # software did already (auto-dark on a flat saved as a light) is not redone.
    match = match_light(flat, [m for m in masters if m.kind != "flat"],
                        tolerance=options.exptime_tolerance,
                        temp_tolerance=options.temp_tolerance)
    bias, dark = match.bias, match.dark
    if bias.done:
        parts = [f"bias not subtracted: {bias.reason}"]
    elif match.bias_in_dark:
        parts = ["bias included in the dark"]
    else:
        parts = [f"bias {bias.master.name}" if bias.master is not None
                 else f"no bias ({bias.reason})"]
    if dark.done:
        parts.append(f"dark not subtracted: {dark.reason}")
    elif dark.master is not None:
        scaled = f" x{dark.scale:.4g}" if dark.scale != 1.0 else ""
        parts.append(f"dark {dark.master.name}{scaled}: {dark.reason}")
    else:
        parts.append(f"no dark: {dark.reason}")
    parts.extend(f"warning: {w}" for w in dark.warnings)
    pedestal = float(_pedestal_subtrahend(flat))
    if pedestal:
        parts.append(f"camera pedestal of {pedestal:g} ADU removed")
    key = (bias.master.path if bias.master is not None else None,
           dark.master.path if dark.master is not None else None,
           float(dark.scale) if dark.master is not None else None, pedestal)
    return key, bias, dark, "; ".join(parts)


def _subtrahend(bias, dark, pedestal=0.0):
    """What to subtract from a flat: bias + scaled dark + the camera's
    pedestal (0 when none of them)."""
    subtract = np.float32(pedestal)
    if bias.master is not None:
        subtract = subtract + master_data(bias.master)
    if dark.master is not None:
        subtract = subtract + np.float32(dark.scale) * master_data(dark.master)
    return subtract


def _check_flat_norm(options):
    how = getattr(options, "flat_norm", options)
    if how not in FLAT_NORMS:
        raise CcdcalError(f"flat_norm must be one of {', '.join(FLAT_NORMS)}, "
                          f"not {how!r}")


def normalise_flat(data, how="mean"):
    """A combined flat divided by its mean (default) or median.

    The one place a master flat is normalised.  ccdproc's ``flat_correct``
    and IRAF's ``ccdproc`` divide by the flat's mean, so a mean-normalised
    master gives calibrated levels that agree with theirs; on a vignetted
    flat the median differs by a few per cent.

    Parameters
    ----------
    data : numpy.ndarray
    how : {'mean', 'median'}

    Returns
    -------
    normalised : numpy.ndarray (float32)
    level : float
        What it was divided by.

    Raises
    ------
    CcdcalError
        ``how`` unknown, or the level is not a positive number.
    """
    _check_flat_norm(how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: level NaN
        level = float((np.nanmean if how == "mean" else np.nanmedian)(data))
    if not np.isfinite(level) or level <= 0:
        raise CcdcalError(f"flat level ({how}) is {level}; flats not usable")
    return (data / np.float32(level)).astype(np.float32, copy=False), level


def build_master_flats(frames, out_dir, options=None, *, masters=(),
                       report=None, overwrite=False, progress=None, cancel=None):
    """Combine flats into one normalised master per filter (and setup).

    Flats are grouped by detector setup and filter, and by CCD temperature
    when one group spans two set-points.  Each flat has its own master
    bias and dark subtracted (the dark of its exposure; one of another
    exposure only scaled, which needs a bias), is scaled by the inverse of
    its median so that twilight flats of falling brightness weigh alike,
    and the combination is divided by its ``options.flat_norm`` ('mean' or
    'median', see `normalise_flat`).  The header's HISTORY says per flat
    what was subtracted; NDARKSUB counts the flats that had a dark.
    """
    options = options or MasterOptions()
    _check_flat_norm(options)
    report = report if report is not None else MasterReport()
    if not frames:
        return report
    setups = _setups(frames)
    for setup in setups:
        for filt_group in group_frames(setup, ("filter",)):
            for group, temp in _by_temperature(filt_group.frames, options):
                check(cancel)
                name = f"master_flat_{_safe_name(filt_group.value)}{_temp_suffix(temp)}"
                path = os.path.join(out_dir, name + _setup_suffix(group, setups) + ".fits")
                _build_one_flat(group, filt_group.value, path, options, masters,
                                report, overwrite, progress, cancel)
    return report


def _build_one_flat(group, filt, path, options, masters, report, overwrite,
                    progress, cancel):
    if _existing(path, overwrite, report):
        return
    group = _unsaturated(group, report)
    if not group:
        report.problems.append(f"{path}: not made, every filter {filt} flat "
                               "is saturated")
        return
    treatments = [_flat_treatment(f, masters, options) for f in group]
    shared = {}
    for key, bias, dark, _ in treatments:
        if key not in shared:
            shared[key] = _subtrahend(bias, dark, key[3])
    inputs, regions = _inputs(group, options)
    result = combine(inputs, subtract=[shared[t[0]] for t in treatments],
                     scale="inverse_median", progress=progress,
                     cancel=cancel, **options.combine_kwargs("flat"))
    try:
        data, _ = normalise_flat(result.data, options.flat_norm)
    except CcdcalError as exc:
        report.problems.append(f"{path}: {exc}")
        return
    header = _master_header(group, "flat", options, result, regions)
    if filt is not None:
        header["FILTER"] = (str(filt), "filter of the combined flats")
    exptimes = [f.exptime for f in group if f.exptime is not None]
    if exptimes:
        header["EXPTIME"] = (float(np.median(exptimes)), "median exposure of the flats, s")
    header["FLATNORM"] = (options.flat_norm, "statistic the flat was divided by")
    n_bias = sum(1 for _, b, d, _ in treatments
                 if b.master is not None or b.done
                 or (d.master is not None and not d.master.bias_subtracted))
    n_dark = sum(1 for _, _, d, _ in treatments if d.master is not None or d.done)
    header["BIASSUB"] = (n_bias == len(group), "bias subtracted from every flat")
    header["DARKSUB"] = (n_dark == len(group), "dark subtracted from every flat")
    header["NDARKSUB"] = (n_dark, "flats a dark was subtracted from")
    _record_flat_masters(header, treatments)
    for frame, (_, _, _, text) in zip(group, treatments):
        provenance.add_history(header, f"flat {frame.name}: {text}")
    low = int(np.count_nonzero(~(data > 0)))  # zero, negative or NaN
    header["NLOWFLAT"] = (low, "pixels at or below zero or undefined")
    _flat_notes(report, path, group, treatments, n_dark, low, options)
    _clip_note(report, path, "flat", options, result)
    _write_master(path, data, header, overwrite, report)


def _record_flat_masters(header, treatments):
    """BIASFILE/DARKFILE (and checksums) when every flat used the same one."""
    for role, index in (("bias", 1), ("dark", 2)):
        used = {t[index].master.path: t[index] for t in treatments
                if t[index].master is not None}
        if len(used) == 1:
            choice = next(iter(used.values()))
            provenance.record_master(header, role, choice.master.path,
                                     scale=choice.scale if role == "dark" else None,
                                     reason=choice.reason)
        elif used:
            header[f"N{role.upper()}S"] = (len(used), f"master {role}s used (see HISTORY)")


def _flat_notes(report, path, group, treatments, n_dark, low, options):
    """The report's lines for one master flat: what each group of flats got."""
    report.note(path, f"normalised by its {options.flat_norm}")
    by_text = {}
    for frame, (_, _, _, text) in zip(group, treatments):
        by_text.setdefault(text, []).append(frame.name)
    for text, names in by_text.items():
        report.note(path, f"{len(names)} flat(s): {text}")
    if n_dark < len(group):
        lacking = [(f, t) for f, t in zip(group, treatments)
                   if t[2].master is None and not t[2].done]
        report.problems.append(
            f"{path}: dark not subtracted from {len(lacking)} of {len(group)} flats "
            f"({', '.join(f.name for f, _ in lacking)}): "
            + "; ".join(sorted({t[2].reason for _, t in lacking})))
    if low:
        report.note(path, f"{low} pixels at or below zero or undefined "
                          "(they cannot flat-field: the calibrated pixel is masked)")


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
    _check_flat_norm(options)
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
