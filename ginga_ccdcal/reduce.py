"""A whole night in one call: scan, build masters, calibrate every light.

This is what ``ginga-ccdcal reduce`` and the plugins' "Calibrate all" run.
Files that cannot be used are skipped and listed; the night reduces as
far as it can.  Re-running skips lights already calibrated, so a run that
was stopped picks up where it left off.
"""

import os
from dataclasses import dataclass, field

from .calibrate import calibrate_and_write, output_path
from .errors import CcdcalError, FrameError
from .fitsfile import is_complete
from .masters import MasterOptions, build_masters, load_masters
from .match import match_light
from .progress import check, report
from .safe_write import ensure_folder, remove_stale_temps
from .scan import scan_folder

__all__ = ["CalibrationReport", "NightReport", "calibrate_lights", "reduce_night"]


@dataclass
class CalibrationReport:
    """What happened to each light: written, already there, or not done."""

    written: list = field(default_factory=list)
    existing: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


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
        return ([str(p) for p in self.scan.problems] + self.guessed
                + list(self.masters.problems) + list(self.calibration.problems))


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
        Recalibrate lights whose output exists (otherwise they are skipped).
    options : `~ginga_ccdcal.calibrate.CalibrationOptions`, optional

    Returns
    -------
    CalibrationReport
    """
    ensure_folder(out_dir)
    result = CalibrationReport()
    for i, light in enumerate(lights):
        check(cancel)
        target = output_path(light, out_dir, raw_root)
        if os.path.exists(target) and not overwrite and is_complete(target):
            result.existing.append(target)
        else:
            match = match_light(light, masters)
            for role in match.missing:
                result.warnings.append(f"{light.path}: {role} not applied "
                                       f"({getattr(match, role).reason})")
            result.warnings.extend(f"{light.path}: {w}" for w in match.warnings)
            try:
                # An incomplete output (power cut after the rename) is redone.
                redo = overwrite or os.path.exists(target)
                notes = []
                path, _ = calibrate_and_write(light, match, out_dir, options,
                                              raw_root=raw_root, overwrite=redo,
                                              notes=notes)
                result.written.append(path)
                result.warnings.extend(f"{light.path}: {note}" for note in notes)
            except (FrameError, CcdcalError) as exc:
                result.problems.append(str(exc))
        report(progress, i + 1, len(lights), light.name)
    return result


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
    raw_dir, out_dir = os.fspath(raw_dir), os.fspath(out_dir)
    if os.path.abspath(out_dir) == os.path.abspath(raw_dir):
        raise CcdcalError(f"{out_dir}: the output folder must differ from the raw folder")
    masters_dir = masters_dir or os.path.join(out_dir, "masters")

    def stage(name):
        return None if progress is None else (
            lambda done, total, msg="": progress(done, total, f"{name}: {msg}"))

    scan = scan_folder(raw_dir, aliases=aliases, progress=stage("scan"), cancel=cancel)
    # Our own products inside the raw folder are never inputs.
    frames = [f for f in scan.frames
              if not os.path.abspath(f.path).startswith(os.path.abspath(out_dir) + os.sep)]
    if not frames:
        raise CcdcalError(f"{raw_dir}: no usable FITS frames found"
                          + (f" ({len(scan.problems)} unreadable)" if scan.problems else ""))
    ensure_folder(masters_dir)
    # Leftovers of a run that was killed mid-write (never under a final name).
    for folder in (out_dir, masters_dir):
        remove_stale_temps(folder)
    masters = build_masters(frames, masters_dir, options or MasterOptions(),
                            overwrite=overwrite, progress=stage("masters"),
                            cancel=cancel)
    # Masters made in an earlier run for setups this night lacks still count.
    known = {m.path for m in masters.masters}
    available = masters.masters + [m for m in load_masters(masters_dir)
                                   if m.path not in known]
    lights = [f for f in frames if f.frametype == "light"]
    calibrated = calibrate_lights(lights, available, out_dir, calibration,
                                  raw_root=raw_dir, overwrite=overwrite,
                                  progress=stage("calibrate"), cancel=cancel)
    return NightReport(scan, masters, calibrated)
