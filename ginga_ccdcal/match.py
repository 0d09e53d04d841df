"""Which master bias, dark and flat a frame should be calibrated with, and why.

Every decision comes back as a `Choice` carrying a reason sentence (the
plugins show it, calibrated headers record it) and any warnings, so the
observer can see that a 300 s light got the 120 s dark scaled by 2.5.

Rules
-----
One rule says whether a master fits a frame at all: `compatible` (shape
and binning, or a subframe cut-out; for darks the exposure within the
tolerance; for flats the filter; optionally the CCD temperature).  The
master builder's stale check, this module, the characterisation and the
watcher all ask it.  Among the masters that fit:

bias
    the master bias of the same detector setup (shape and binning).
dark
    1. usable before close: a dark that includes the bias is usable only at
       the frame's own exposure (scaling would scale the bias too); a
       bias-subtracted dark only beside a master bias;
    2. a usable master dark of the same exposure (within the tolerance),
       the closest in CCD temperature;
    3. otherwise the bias-subtracted master dark nearest in exposure,
       scaled by the exposure ratio (longer darks preferred on a tie:
       scaling down also shrinks their noise).

    A temperature difference larger than the tolerance is a warning.
flat
    the master flat of the same filter and setup, the closest in CCD
    temperature.  Filter names match exactly (outer spaces aside) first: ``R``
    (Johnson) and ``r`` (SDSS) are different filters.  A match that differs
    only in case is made when there is nothing better, with a warning.

A setup is the binning and the shape.  A subframe (smaller than the
master, with XORGSUBF/YORGSUBF saying where it sits) uses the matching
cut-out of a full-frame master of the same binning.
"""

from dataclasses import dataclass, field

from .classify import filter_match  # the one filter rule, re-exported here
from .group import DEFAULT_TOLERANCES
from .provenance import steps_done

__all__ = ["Choice", "MatchResult", "choose_bias", "choose_dark",
           "choose_flat", "compatible", "filter_match", "match_light",
           "setup_key"]

#: Exposures this close (seconds) are one exposure: the grouping's tolerance.
EXPTIME_TOLERANCE = DEFAULT_TOLERANCES["exptime"]
TEMP_TOLERANCE = 2.0      # degrees C


@dataclass
class Choice:
    """One master picked for one role, with the reason and any warnings."""

    role: str
    master: object = None
    reason: str = ""
    scale: float = 1.0
    warnings: list = field(default_factory=list)
    #: numpy slices of the master that cover the frame (subframes); None
    #: when the whole master is used.
    cutout: tuple = None
    #: True when the step was already done before (by the camera software:
    #: `ginga_ccdcal.provenance.steps_done`); ``reason`` says by whom.
    done: bool = False

    def __bool__(self):
        return self.master is not None


@dataclass
class MatchResult:
    """The masters for one light frame.

    ``missing`` lists the roles with no usable master (the calibration
    skips those steps and says so); ``bias_in_dark`` is True when the dark
    still contains the bias, so the bias must not be subtracted again.
    """

    frame: object
    bias: Choice
    dark: Choice
    flat: Choice

    @property
    def bias_in_dark(self):
        return bool(self.dark) and not self.dark.master.bias_subtracted

    @property
    def missing(self):
        missing = [c.role for c in (self.dark, self.flat) if not c and not c.done]
        if not self.bias and not self.bias.done and not self.bias_in_dark:
            missing.insert(0, "bias")
        return missing

    @property
    def warnings(self):
        return [w for c in (self.bias, self.dark, self.flat) for w in c.warnings]

    def describe(self):
        """Lines for people: which master for each step and why."""
        lines = []
        for choice in (self.bias, self.dark, self.flat):
            if choice.role == "bias" and not choice and self.bias_in_dark:
                lines.append("bias: included in the dark (dark not bias-subtracted)")
                continue
            if choice.done:
                lines.append(f"{choice.role}: not applied - {choice.reason}")
                continue
            name = f"{choice.master.name} ({choice.master.version})" if choice else "NONE"
            lines.append(f"{choice.role}: {name} - {choice.reason}")
            lines.extend(f"  warning: {w}" for w in choice.warnings)
        return lines


def _subframe_origin(frame):
    """(x, y) of a subframe's first pixel in the full frame, binned pixels.

    MaxIm DL and other programs write XORGSUBF/YORGSUBF; None when the
    frame does not say it is a subframe.
    """
    try:
        x, y = frame.value("XORGSUBF"), frame.value("YORGSUBF")
    except AttributeError:
        return None
    if x is None or y is None:
        return None
    try:
        return int(x), int(y)
    except (TypeError, ValueError):
        return None


def _cutout(frame, master):
    """Slices of ``master`` covering ``frame``, () for all of it, None if it can't."""
    if tuple(master.binning) != tuple(frame.binning):
        return None
    shape = tuple(master.raw_shape or master.shape)  # trimmed masters: raw shape
    if shape == tuple(frame.shape):
        return ()
    origin = _subframe_origin(frame)
    if origin is None or master.overscan:
        return None
    x, y = origin
    rows, cols = frame.shape
    if x < 0 or y < 0 or y + rows > shape[0] or x + cols > shape[1]:
        return None
    return (slice(y, y + rows), slice(x, x + cols))


def setup_key(item):
    """The detector setup of a frame or master: ``((rows, cols), (xbin, ybin))``.

    A master that was overscan-corrected and trimmed is keyed by the raw
    shape of the frames it was made from, so it has the key of the frames
    it calibrates.
    """
    shape = getattr(item, "raw_shape", None) or item.shape
    return tuple(int(n) for n in shape), tuple(int(b) for b in item.binning)


def _temp_gap(frame, master):
    """|master - frame| CCD temperature, 0 when either is unknown."""
    if master.ccd_temp is None or frame.ccd_temp is None:
        return 0.0
    return abs(master.ccd_temp - frame.ccd_temp)


def compatible(frame, master, *, exptime=None, tolerance=EXPTIME_TOLERANCE,
               temp_tolerance=None, subframe=True, case_filters=False):
    """Whether ``master`` fits ``frame``: the one rule every caller asks.

    Parameters
    ----------
    frame : `~ginga_ccdcal.scan.Frame`
    master : `~ginga_ccdcal.masters.MasterFrame`
    exptime : float or False, optional
        For darks: the exposure the dark must have (default the frame's),
        within ``tolerance`` seconds; ``False`` skips the check (a dark
        that may be scaled).
    tolerance : float
        Seconds.
    temp_tolerance : float, optional
        When given, CCD temperatures further apart than this many degrees
        do not fit.  By default temperature only ranks the masters.
    subframe : bool
        Whether a subframe may use a cut-out of a full-frame master; False
        asks for the very same setup (would the frame be combined into
        this master?).
    case_filters : bool
        For flats: accept a filter name that differs only in case.

    Returns
    -------
    bool

    Examples
    --------
    >>> compatible(light, master_dark_300s)               # doctest: +SKIP
    True
    """
    if subframe:
        if _cutout(frame, master) is None:
            return False
    elif setup_key(master) != setup_key(frame):
        return False
    if master.kind == "dark" and exptime is not False:
        wanted = frame.exptime if exptime is None else exptime
        if wanted is None or master.exptime is None \
                or abs(master.exptime - wanted) > tolerance:
            return False
    if master.kind == "flat":
        how = filter_match(frame.filter, master.filter)
        if how is None or (how == "case" and not case_filters):
            return False
    if temp_tolerance is not None and _temp_gap(frame, master) > temp_tolerance:
        return False
    return True


def _with_cutout(choice, frame):
    """Attach the subframe cut-out to a choice, and say so in its reason."""
    if choice.master is not None:
        cut = _cutout(frame, choice.master)
        if cut:
            choice.cutout = cut
            choice.reason += (f"; subframe at x={cut[1].start}, y={cut[0].start} "
                              "cut from the full-frame master")
    return choice


def _setup_text(frame):
    return f"{frame.shape[1]}x{frame.shape[0]} px, binning {frame.binning[0]}x{frame.binning[1]}"


def choose_bias(frame, masters):
    """The master bias for ``frame`` (same shape and binning)."""
    biases = [m for m in masters if m.kind == "bias"]
    fitting = [m for m in biases if compatible(frame, m)]
    fitting.sort(key=lambda m: (_temp_gap(frame, m), m.path))
    if fitting:
        return Choice("bias", fitting[0], f"master bias for {_setup_text(frame)}")
    if biases:
        return Choice("bias", None, f"no master bias for {_setup_text(frame)} "
                      f"(have {', '.join(m.name for m in biases)})")
    return Choice("bias", None, "no master bias")


def choose_dark(frame, masters, *, exptime=None, bias_available=True,
                tolerance=EXPTIME_TOLERANCE, temp_tolerance=TEMP_TOLERANCE):
    """The master dark for ``frame``, the factor to scale it by, and why.

    Parameters
    ----------
    frame : Frame
    masters : list of MasterFrame
    exptime : float, optional
        Exposure to match; defaults to ``frame.exptime``.
    bias_available : bool
        Whether a master bias will be subtracted.  Without one, a dark that
        includes the bias (same exposure) is the right choice.
    tolerance, temp_tolerance : float
        Exposures within ``tolerance`` seconds count as equal; temperatures
        further apart than ``temp_tolerance`` degrees give a warning.
    """
    exptime = frame.exptime if exptime is None else exptime
    darks = [m for m in masters if m.kind == "dark" and m.exptime is not None
             and compatible(frame, m, exptime=False)]
    if not darks:
        return Choice("dark", None, "no master dark for " + _setup_text(frame))
    if exptime is None:
        return Choice("dark", None, "the frame has no exposure time "
                      "(EXPTIME/EXPOSURE), so no dark can be matched")
    same = [m for m in darks
            if compatible(frame, m, exptime=exptime, tolerance=tolerance)]
    # Usable first, then closest: a bias-subtracted dark needs a master
    # bias beside it; one that includes the bias does the bias's job too.
    usable = [m for m in same if bias_available or not m.bias_subtracted]
    if usable:
        usable.sort(key=lambda m: (_temp_gap(frame, m),
                                   m.bias_subtracted != bias_available, m.path))
        best = usable[0]
        choice = Choice("dark", best, f"same exposure ({best.exptime:g} s)")
    elif same:
        return Choice("dark", None, f"{same[0].name} is bias-subtracted but there "
                      "is no master bias to go with it")
    else:
        scalable = [m for m in darks if m.bias_subtracted]
        if not scalable:
            names = ", ".join(f"{m.exptime:g} s" for m in darks)
            return Choice("dark", None, f"no dark of {exptime:g} s, and the darks "
                          f"there are ({names}) were not bias-subtracted, so they "
                          "cannot be scaled")
        if not bias_available:
            return Choice("dark", None, f"no dark of {exptime:g} s, and scaling "
                          "another needs a master bias")
        scalable.sort(key=lambda m: (abs(m.exptime - exptime), -m.exptime,
                                     _temp_gap(frame, m), m.path))
        best = scalable[0]
        if best.exptime <= 0:
            return Choice("dark", None, "only zero-length darks to scale from")
        factor = exptime / best.exptime
        choice = Choice("dark", best, f"scaled {best.exptime:g} s -> {exptime:g} s "
                        f"(x{factor:.3g}), nearest exposure", scale=factor)
    if _temp_gap(frame, best) > temp_tolerance:
        choice.warnings.append(f"dark at {best.ccd_temp:.1f} C, frame at "
                               f"{frame.ccd_temp:.1f} C (difference "
                               f"{_temp_gap(frame, best):.1f} C)")
    return choice


def choose_flat(frame, masters):
    """The normalised master flat of ``frame``'s filter and setup.

    An exact filter match first (the closest in CCD temperature); a name
    differing only in case (``R`` for ``r``) only when there is none, with
    a warning.
    """
    flats = [m for m in masters if m.kind == "flat"
             and compatible(frame, m, case_filters=True)]
    flats.sort(key=lambda m: (filter_match(frame.filter, m.filter) != "exact",
                              _temp_gap(frame, m), m.path))
    if flats:
        best = flats[0]
        if filter_match(frame.filter, best.filter) == "exact":
            return Choice("flat", best, f"filter {best.filter}" if best.filter
                          else "no filter on frame or flat")
        return Choice("flat", best, f"filter {best.filter} for the frame's "
                      f"{frame.filter} (case differs)",
                      warnings=[f"filter names differ only in case: frame "
                                f"'{frame.filter}', flat '{best.filter}' (R and r "
                                "may be different filters)"])
    setup_flats = [m for m in masters if m.kind == "flat"
                   and _cutout(frame, m) is not None]
    if frame.filter is None and len(setup_flats) == 1:
        only = setup_flats[0]
        return Choice("flat", only, f"the only flat (filter {only.filter})",
                      warnings=["the frame has no FILTER keyword"])
    have = ", ".join(sorted({str(m.filter) for m in setup_flats})) or "none"
    return Choice("flat", None, f"no master flat for filter {frame.filter} "
                  f"(flats for: {have})")


def match_light(frame, masters, *, tolerance=EXPTIME_TOLERANCE,
                temp_tolerance=TEMP_TOLERANCE):
    """Pick the master bias, dark and flat for a light frame.

    Parameters
    ----------
    frame : `~ginga_ccdcal.scan.Frame`
    masters : list of `~ginga_ccdcal.masters.MasterFrame`

    Returns
    -------
    MatchResult

    Examples
    --------
    >>> result = match_light(light, load_masters('masters/'))  # doctest: +SKIP
    >>> print('\\n'.join(result.describe()))                   # doctest: +SKIP
    bias: master_bias.fits - master bias for 3085x2048 px, binning 1x1
    dark: master_dark_120s.fits - scaled 120 s -> 300 s (x2.5), nearest exposure
    flat: master_flat_R.fits - filter R
    """
    done = steps_done(getattr(frame, "header", None))
    if "bias" in done:
        # The bias is gone already: a dark that still contains it would
        # take it off a second time.
        masters = [m for m in masters if m.kind != "dark" or m.bias_subtracted]
    bias = choose_bias(frame, masters)
    dark = choose_dark(frame, masters, bias_available=bool(bias) or "bias" in done,
                       tolerance=tolerance, temp_tolerance=temp_tolerance)
    if dark and not dark.master.bias_subtracted:
        bias = Choice("bias", None, "included in the dark")
    flat = choose_flat(frame, masters)
    # Steps done before (camera software, IRAF, ccdproc) are never redone.
    bias, dark, flat = (Choice(c.role, None, done[c.role], done=True) if c.role in done
                        else c for c in (bias, dark, flat))
    return MatchResult(frame, *(_with_cutout(c, frame) for c in (bias, dark, flat)))
