"""A whole night in one call: scan, build masters, calibrate every light.

This is what ``ginga-ccdcal reduce`` and the plugins' "Calibrate all" run.
Files that cannot be used are skipped and listed; the night reduces as
far as it can.  Re-running keeps the lights already calibrated that are
still right (`ginga_ccdcal.products`), so a run that was stopped picks up
where it left off.
"""

import os
from dataclasses import dataclass, field

from .calibrate import calibrate_and_write, not_calibrated_reason, output_path
from .errors import CcdcalError, FrameError, NotCalibrated
from .masters import MasterOptions, MergingReport, build_masters, load_masters
from .match import match_light
from .products import Verdict, check_light_product, check_masters
from .progress import check, report
from .safe_write import OutputExists, ensure_folder, remove_stale_temps
from .scan import scan_folder

__all__ = ["CalibrationReport", "NightPlan", "NightReport", "available_masters",
           "build_night_masters", "calibrate_light", "calibrate_lights",
           "calibration_frames_text", "outdated_masters", "plan_night", "reduce_night",
           "same_output_problems"]


@dataclass
class CalibrationReport(MergingReport):
    """What happened to each light.

    Attributes
    ----------
    written : list of str
        Outputs written (each with at least one step applied).
    existing : list of str
        Outputs already there and still right
        (`ginga_ccdcal.products.check_light_product`), kept.
    redone : list of (str, str)
        ``(output, reason)`` for outputs that were there but no longer
        right (raw file changed, a master rebuilt or now available...) and
        were calibrated again; those outputs are in ``written`` too.
    problems : list of str
        Lights skipped (unreadable, a step that failed...), one line each.
    warnings : list of str
        Lines about lights that were written: steps not applied, pixels...
    missing : dict
        ``{raw path: [roles]}`` of written lights that lack a step
        ('bias', 'dark', 'flat'), for the plugins to show.
    not_calibrated : dict
        ``{raw path: reason}`` of lights to which nothing could be applied;
        nothing is written for them and they are not counted as calibrated.
    """

    written: list = field(default_factory=list)
    existing: list = field(default_factory=list)
    redone: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    missing: dict = field(default_factory=dict)
    not_calibrated: dict = field(default_factory=dict)

    def summary(self):
        """One line: how many written, kept, not calibrated, skipped."""
        parts = [f"{len(self.written)} calibrated"]
        if self.existing:
            parts.append(f"{len(self.existing)} already there (kept; --overwrite to redo)")
        if self.redone:
            # Each light's own reason is in `redone`; here the kinds of them.
            reasons = sorted({why for _, why in self.redone})
            parts.append(f"{len(self.redone)} of the calibrated redone, as no longer "
                         "right: " + "; ".join(reasons[:2])
                         + ("; ..." if len(reasons) > 2 else ""))
        if self.not_calibrated:
            parts.append(f"{len(self.not_calibrated)} not calibrated")
        if self.problems:
            parts.append(f"{len(self.problems)} skipped")
        return ", ".join(parts)



def calibration_frames_text(folder, counts):
    """What a folder holds for masters: "0 bias, 0 dark, 0 flat".

    Parameters
    ----------
    folder : str
    counts : dict
        ``ScanResult.counts()``.

    Returns
    -------
    str
        e.g. ``"no calibration frames in night/: 0 bias, 0 dark, 0 flat"``
        when there are none, else the counts alone.
    """
    text = ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in ("bias", "dark", "flat"))
    if not any(counts.get(kind) for kind in ("bias", "dark", "flat")):
        text = f"no calibration frames in {folder}: {text}"
        if counts.get("light"):
            text += f" ({counts['light']} light)"
    return text


@dataclass
class NightPlan:
    """`plan_night`'s answer: a night's folders and the frames to reduce."""

    raw_dir: str
    out_dir: str
    masters_dir: str
    scan: object
    frames: list

    def of_type(self, frametype):
        """The frames to reduce of one type, in path order."""
        return [f for f in self.frames if f.frametype == frametype]


@dataclass
class NightReport:
    """`reduce_night`'s answer: the scan, the masters and the calibration."""

    scan: object
    masters: object
    calibration: CalibrationReport

    @property
    def guessed(self):
        """One line per frame whose type was guessed from its pixels."""
        return [f"{f.path}: no usable IMAGETYP/OBSTYPE/FRAMETYP, type guessed as "
                f"'{f.frametype}' from the pixels (correct it with --aliases or in "
                "the CCD Browser)" for f in self.scan.frames if f.guessed]

    @property
    def problems(self):
        """Every line about a file not used or a light not calibrated."""
        return ([str(p) for p in self.scan.problems] + self.guessed
                + list(self.masters.problems) + list(self.calibration.problems)
                + [f"{path}: not calibrated: {reason}"
                   for path, reason in self.calibration.not_calibrated.items()])


def calibrate_lights(lights, masters, out_dir, options=None, *, raw_root=None,
                     overwrite=False, progress=None, cancel=None):
    """Calibrate many lights; one bad light never stops the others.

    Parameters
    ----------
    lights : list of `~ginga_ccdcal.scan.Frame`
    masters : list of `~ginga_ccdcal.masters.MasterFrame`
    out_dir : str
    raw_root : str, optional
        Keep the lights' sub-folders below this folder in ``out_dir``.
    overwrite : bool
        Recalibrate lights whose output exists (otherwise only outputs no
        longer right are redone, listed in ``redone`` with the reason).
    options : `~ginga_ccdcal.calibrate.CalibrationOptions`, optional

    Returns
    -------
    CalibrationReport
        A light with nothing applied is in ``not_calibrated``, not written;
        two lights whose outputs would have one name: the second is a
        problem, never written over the first.
    """
    ensure_folder(out_dir)
    result = CalibrationReport()
    clashes = same_output_problems(lights, out_dir, raw_root)
    for i, light in enumerate(lights):
        check(cancel)
        if light.path in clashes:
            result.problems.append(clashes[light.path])
        else:
            result.extend(calibrate_light(light, masters, out_dir, options,
                                          raw_root=raw_root, overwrite=overwrite))
        report(progress, i + 1, len(lights), light.name)
    return result


def same_output_problems(lights, out_dir, raw_root=None):
    """Lights whose output name an earlier light already has.

    Returns
    -------
    dict
        ``{raw path: problem line}``; such a light is not calibrated, so
        that neither output is lost.
    """
    targets, clashes = {}, {}
    for light in lights:
        target = output_path(light, out_dir, raw_root)
        first = targets.setdefault(os.path.abspath(target), light.path)
        if first != light.path:
            clashes[light.path] = (f"{light.path}: same output name as {first} "
                                   f"({target}); not calibrated, so as not to lose "
                                   "either (calibrate the two folders separately)")
    return clashes


def calibrate_light(light, masters, out_dir, options=None, *, raw_root=None,
                    overwrite=False):
    """Calibrate one light, unless its output is there and still right.

    The unit of work of `calibrate_lights` (and of a cluster task); the
    arguments are the same.  A bad light gives a problem line, never an
    exception.  Lights sharing an output name are `calibrate_lights`'
    business (`same_output_problems`).

    Returns
    -------
    CalibrationReport
        With this light in ``written`` (and ``redone``), ``existing``,
        ``problems`` or ``not_calibrated``.
    """
    result = CalibrationReport()
    target = output_path(light, out_dir, raw_root)
    _keep_or_calibrate(light, masters, target, out_dir, options, raw_root, overwrite,
                       result)
    return result


def _keep_or_calibrate(light, masters, target, out_dir, options, raw_root, overwrite,
                       result):
    """Keep ``target`` if it is still right, else calibrate ``light`` (again)."""
    match = match_light(light, masters)
    verdict = _still_right(target, light, match, overwrite, result)
    if verdict is None:
        return
    if verdict.keep:
        result.existing.append(target)
    else:
        _calibrate_one(light, match, target, out_dir, options, raw_root, overwrite,
                       result, verdict)


def _still_right(target, light, match, overwrite, result):
    """The `~ginga_ccdcal.products.Verdict` on ``target``; None: leave it alone.

    A product is kept only if it is what calibrating now would give; with
    ``overwrite`` nothing is kept.
    """
    if overwrite:
        return Verdict(target, os.path.exists(target), False)
    try:
        return check_light_product(target, light, match)
    except CcdcalError as exc:  # a file we did not write is in the way
        result.problems.append(str(exc))
        return None


def _calibrate_one(light, match, target, out_dir, options, raw_root, overwrite, result,
                   verdict):
    """Calibrate and write one light, recording the outcome in ``result``."""
    reason = not_calibrated_reason(match)
    if reason:
        result.not_calibrated[light.path] = reason
        return
    lines = [f"{light.path}: {role} not applied ({getattr(match, role).reason})"
             for role in match.missing]
    lines += [f"{light.path}: {w}" for w in match.warnings]
    try:
        # An incomplete output (power cut after the rename) is redone.
        redo = overwrite or os.path.exists(target)
        notes = []
        path, _ = calibrate_and_write(light, match, out_dir, options, raw_root=raw_root,
                                      overwrite=redo, notes=notes)
    except NotCalibrated as exc:
        result.not_calibrated[light.path] = str(exc).replace(f"{light.path}: ", "", 1)
        return
    except OutputExists:
        # Another writer (a task of a cancelled cluster run) finished it
        # first; the atomic write means it is complete.
        result.existing.append(target)
        return
    except (FrameError, CcdcalError) as exc:
        result.problems.append(str(exc))
        return
    except OSError as exc:
        result.problems.append(f"{light.path}: {exc.strerror or exc}")
        return
    result.written.append(path)
    if verdict.exists and not overwrite:
        result.redone.append((path, verdict.reason))
    if match.missing:
        result.missing[light.path] = list(match.missing)
    result.warnings.extend(lines + [f"{light.path}: {note}" for note in notes])


def reduce_night(raw_dir, out_dir, *, masters_dir=None, options=None,
                 calibration=None, overwrite=False, aliases=None, progress=None,
                 cancel=None):
    """Reduce a night: masters from its calibration frames, then every light.

    Parameters
    ----------
    raw_dir : str
        The night's raw frames (searched recursively).  Never modified.
    out_dir : str
        Calibrated lights go here (same file names as the raw ones).
    masters_dir : str, optional
        Where masters are written and looked for; default ``out_dir/masters``.
    options : `~ginga_ccdcal.masters.MasterOptions`, optional
    overwrite : bool
        Rebuild masters and recalibrate lights that already exist.
    aliases : dict, optional
        The user's type and filter spellings (`classify.load_aliases`).
    progress, cancel
        See `ginga_ccdcal.progress`; ``progress`` receives
        ``(done, total, message)`` with the message naming the stage.
    calibration : `~ginga_ccdcal.calibrate.CalibrationOptions`, optional
        How to calibrate the lights.

    Returns
    -------
    NightReport
    """
    def stage(name):
        return None if progress is None else (
            lambda done, total, msg="": progress(done, total, f"{name}: {msg}"))

    plan = plan_night(raw_dir, out_dir, masters_dir=masters_dir, aliases=aliases,
                      progress=stage("scan"), cancel=cancel)
    masters = build_night_masters(plan, options, overwrite=overwrite,
                                  progress=stage("masters"), cancel=cancel)
    calibrated = calibrate_lights(plan.of_type("light"),
                                  available_masters(masters, plan.masters_dir),
                                  plan.out_dir, calibration, raw_root=plan.raw_dir,
                                  overwrite=overwrite, progress=stage("calibrate"),
                                  cancel=cancel)
    return NightReport(plan.scan, masters, calibrated)


def plan_night(raw_dir, out_dir, *, masters_dir=None, aliases=None, progress=None,
               cancel=None):
    """The first step of `reduce_night`: scan, and prepare the output folders.

    The arguments are those of `reduce_night`.  Leftover temporary files
    of a killed run are removed from the output folders.

    Returns
    -------
    NightPlan

    Raises
    ------
    CcdcalError
        The output folder is the raw folder, no usable frame was found, or
        there is nothing to calibrate with (no calibration frame, no master).
    """
    raw_dir, out_dir = os.fspath(raw_dir), os.fspath(out_dir)
    if os.path.abspath(out_dir) == os.path.abspath(raw_dir):
        raise CcdcalError(f"{out_dir}: the output folder must differ from the raw folder")
    masters_dir = masters_dir or os.path.join(out_dir, "masters")
    scan = scan_folder(raw_dir, aliases=aliases, progress=progress, cancel=cancel)
    # Our own products inside the raw folder are never inputs.
    frames = [f for f in scan.frames
              if not os.path.abspath(f.path).startswith(os.path.abspath(out_dir) + os.sep)]
    if not frames:
        raise CcdcalError(f"{raw_dir}: no usable FITS frames found"
                          + (f" ({len(scan.problems)} unreadable)" if scan.problems else ""))
    counts = scan.counts()
    if not any(counts.get(k) for k in ("bias", "dark", "flat")) \
            and not load_masters(masters_dir):
        # Nothing to calibrate with: say so, and leave no empty folders.
        raise CcdcalError(calibration_frames_text(raw_dir, counts)
                          + f", and no masters in {masters_dir}")
    ensure_folder(masters_dir)
    # Leftovers of a run that was killed mid-write (never under a final name).
    for folder in (out_dir, masters_dir):
        remove_stale_temps(folder)
    return NightPlan(raw_dir, out_dir, masters_dir, scan, frames)


def build_night_masters(plan, options=None, *, overwrite=False, progress=None,
                        cancel=None):
    """`build_masters` for a planned night, rebuilding outdated masters.

    Masters whose frames changed since they were built (and those made
    from them, `outdated_masters`) are rebuilt, never kept silently; each
    carries the reason in the report's notes ("rebuilt: ...").

    Returns
    -------
    `~ginga_ccdcal.masters.MasterReport`
    """
    outdated = {} if overwrite is True else outdated_masters(plan)
    masters = build_masters(plan.frames, plan.masters_dir, options or MasterOptions(),
                            overwrite=overwrite or set(outdated), progress=progress,
                            cancel=cancel)
    for path, why in outdated.items():
        masters.note(path, f"rebuilt: {why}")
    return masters


def outdated_masters(plan):
    """``{master path: reason}`` for the masters of ``plan.masters_dir`` that
    no longer match the night's raw frames (`products.check_masters`): a
    frame changed, gone or new, or a master they were made from changed."""
    masters = load_masters(plan.masters_dir)
    if not masters:
        return {}
    # A frame older than every master of its type was there when they were
    # built: offered then, and left out on purpose (a saturated flat) if it
    # is in none.  It must not make a master outdated at every run.
    built = {}
    for m in masters:
        built[m.kind] = min(built.get(m.kind, m.mtime), m.mtime)
    seen = {(os.path.abspath(f.path), f.mtime) for f in plan.frames
            if f.frametype in built and f.mtime <= built[f.frametype]}
    return dict(check_masters(masters, plan.frames, raw_root=plan.raw_dir,
                              seen=seen).outdated)


def available_masters(report, masters_dir):
    """The masters lights may use: those of ``report``, then older ones.

    Masters made in an earlier run (found in ``masters_dir``) for setups
    this night lacks still count.
    """
    known = {m.path for m in report.masters}
    return report.masters + [m for m in load_masters(masters_dir) if m.path not in known]
