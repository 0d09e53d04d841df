"""Calibrating one light frame with the masters `match_light` chose.

The arithmetic is ccdproc's (``subtract_bias``, ``subtract_dark`` with
exposure scaling, ``flat_correct`` with an already normalised flat), done
in float32 in place on one array so a 4k x 4k frame takes a fraction of a
second; `tests/test_calibrate.py` checks it against ccdproc itself.
"""

import os
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from . import provenance
from .errors import CalibrationError
from .fitsfile import read_image
from .classify import header_number
from .dark_scale import fit_dark_scale
from .masters import master_data
from .quality import pixel_warnings
from .regions import apply_regions, find_regions
from .safe_write import write_fits

__all__ = ["CalibrationOptions", "calibrate_ccd", "calibrate_frame", "calibrate_and_write",
           "output_path"]

_STEP_CODES = {"overscan": "OT", "bias": "B", "dark": "D", "flat": "F", "cosmics": "C"}


@dataclass
class CalibrationOptions:
    """How to calibrate a light: one object every front end fills in.

    The CLI, `ginga_ccdcal.reduce`, the watcher, the plugins and notebooks
    all pass one of these to `calibrate_ccd` (or the file-based calls built
    on it), so an option means the same thing everywhere.

    Attributes
    ----------
    strict : bool
        Raise `CalibrationError` if any step has no master, instead of
        skipping it and recording the gap in the header.
    gain : float or 'header', optional
        Convert ADU to electrons with this gain (e-/ADU), or with the
        header's EGAIN/GAIN keyword.
    dark_scale : {'exposure', 'fit'}
        Scale the master dark by the exposure ratio the match chose, or fit
        the factor that best removes the dark from this light
        (`ginga_ccdcal.dark_scale.fit_dark_scale`; needs a bias-subtracted
        dark).
    readnoise : float, optional
        Read noise in electrons: the result then carries a per-pixel
        uncertainty (photon noise of the calibrated signal plus read noise,
        as ``ccdproc.create_deviation`` computes it; the masters' own noise
        is not propagated).  Needs ``gain``.
    cosmics : bool
        Remove cosmic rays from the calibrated frame with L.A.Cosmic
        (``ccdproc.cosmicray_lacosmic``, i.e. astroscrappy), using the gain
        and read noise given or found in the header (GAIN/EGAIN, RDNOISE).
        The cleaned pixels are counted in CRCLEAN.

    Examples
    --------
    >>> CalibrationOptions(gain=1.5, readnoise=9.0).dark_scale
    'exposure'
    """

    strict: bool = False
    gain: Union[float, str, None] = None
    dark_scale: str = "exposure"
    readnoise: Optional[float] = None
    cosmics: bool = False

    def __post_init__(self):
        # Caught here, before any file is read, rather than once per light.
        if self.dark_scale not in ("exposure", "fit"):
            raise CalibrationError(f"dark scale {self.dark_scale!r}: use 'exposure' or 'fit'")
        if self.readnoise is not None and self.gain is None:
            raise CalibrationError("an uncertainty from the read noise needs the gain "
                                   "(e-/ADU)")


def calibrate_frame(frame, match, options=None, *, notes=None, on_step=None):
    """Read the raw ``frame`` and calibrate it with the masters in ``match``.

    The file-based form of `calibrate_ccd`: the same code path, with the
    raw pixels and header read from ``frame.path``.

    Parameters
    ----------
    frame : `~ginga_ccdcal.scan.Frame`
    match : `~ginga_ccdcal.match.MatchResult`
    options : `CalibrationOptions`, optional
    notes, on_step
        See `calibrate_ccd`.

    Returns
    -------
    astropy.nddata.CCDData

    Raises
    ------
    CalibrationError, FrameError
        See `calibrate_ccd`; `FrameError` when the raw file cannot be read.
    """
    raw, header, _ = read_image(frame.path)
    ccd = CCDData(raw, unit=u.adu, header=header, copy=False)
    return calibrate_ccd(ccd, match, options, name=frame.path, notes=notes,
                         on_step=on_step)


def calibrate_ccd(ccd, match, options=None, *, name="frame", notes=None, on_step=None):
    """Calibrate the raw ``ccd`` in memory with the masters in ``match``.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        The raw frame as read (any dtype; its header is not modified).
    match : `~ginga_ccdcal.match.MatchResult`
        The masters to apply (`ginga_ccdcal.match.match_light`).
    options : `CalibrationOptions`, optional
        Defaults: nothing but bias, dark scaled by exposure, flat.
    name : str
        How messages and the header's HISTORY name this frame.
    notes : list, optional
        Sentences about the raw pixels (undefined, saturated) are appended
        here, as well as to the output's HISTORY.
    on_step : callable, optional
        ``on_step(role, data, choice)`` with a copy of the frame after each
        step: ``'raw'`` (after any overscan and trim, ``choice`` None),
        then ``'bias'``, ``'dark'``, ``'flat'`` as they are applied
        (`ginga_ccdcal.steps` shows them side by side).

    Returns
    -------
    astropy.nddata.CCDData
        float32 data, unit adu (or electron), the raw header plus the
        provenance of every step.

    Raises
    ------
    CalibrationError
        ``strict`` and a master is missing; a master's shape differs;
        ``gain='header'`` and the header has none.

    Examples
    --------
    >>> from ginga_ccdcal.masters import load_master    # doctest: +SKIP
    >>> result = calibrate_ccd(raw, match_light(light, masters))  # doctest: +SKIP
    """
    options = options or CalibrationOptions()
    strict, gain, dark_scale = options.strict, options.gain, options.dark_scale
    readnoise, cosmics = options.readnoise, options.cosmics
    if strict and match.missing:
        raise CalibrationError(f"{name}: cannot calibrate, missing "
                               + "; ".join(getattr(match, r).reason for r in match.missing))
    raw, header = np.asarray(ccd.data), fits.Header(ccd.header)
    warnings = pixel_warnings(raw, header)
    data = raw.astype(np.float32)
    for key in ("BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM"):
        header.remove(key, ignore_missing=True)
    steps = []
    chosen = [c.master for c in (match.bias, match.dark, match.flat) if c]
    if any(m.overscan for m in chosen):
        # The masters were overscan-corrected and trimmed: so must the light be.
        regions = find_regions(header, data.shape)
        if regions is None:
            raise CalibrationError(f"{name}: the masters are overscan-"
                                   "corrected but this frame's header gives no overscan")
        data = apply_regions(data, regions)
        header["OVSCNSUB"] = (True, "overscan subtracted and frame trimmed")
        provenance.add_history(header, "overscan: " + regions.describe())
        steps.append("overscan")
    if on_step is not None:
        on_step("raw", data.copy(), None)
    for choice in (match.bias, match.dark, match.flat):
        if not choice:
            continue
        master = master_data(choice.master)
        if choice.cutout:
            master = master[choice.cutout]
        if master.shape != data.shape:
            raise CalibrationError(
                f"{name}: shape {data.shape} differs from {choice.master.name} "
                f"{master.shape}")
        if choice.role == "bias":
            data -= master
        elif choice.role == "dark":
            scale = choice.scale
            if dark_scale == "fit":
                if match.bias_in_dark:
                    raise CalibrationError(
                        f"{name}: cannot fit the dark scale: {choice.master.name} "
                        "still contains the bias")
                scale = fit_dark_scale(data, master)
                header["DARKFIT"] = (True, "dark scale fitted to this frame")
                provenance.add_history(header, f"dark scale fitted: {scale:.4f} "
                                       f"(exposure ratio {choice.scale:.4f})")
            if scale == 1.0:
                data -= master
            else:
                data -= np.float32(scale) * master
        else:
            # Multiplying by the cached reciprocal is one pass instead of a
            # division plus masking; pixels where the flat is zero or
            # undefined carry no signal and come out NaN.
            inverse = master_data(choice.master, "inverse")
            data *= inverse[choice.cutout] if choice.cutout else inverse
        steps.append(choice.role)
        provenance.record_master(header, choice.role, choice.master.path,
                                 scale=scale if choice.role == "dark" else None,
                                 reason=choice.reason)
        for warning in choice.warnings:
            provenance.add_history(header, f"warning: {warning}")
        if on_step is not None:
            on_step(choice.role, data.copy(), choice)
    if cosmics:
        cleaned = _clean_cosmic_rays(data, header, gain, readnoise)
        steps.append("cosmics")
        header["CRCLEAN"] = (cleaned, "pixels cleaned of cosmic rays (L.A.Cosmic)")
    for role in match.missing:
        provenance.add_history(header, f"{role} NOT applied: {getattr(match, role).reason}")
    for warning in warnings:
        provenance.add_history(header, f"warning: {warning}")
    if notes is not None:
        notes.extend(warnings)
    unit = u.adu
    if gain is not None:
        value = _gain_value(name, header, gain)
        data *= np.float32(value)
        unit = u.electron
        header["GAINCOR"] = (value, "data multiplied by this gain, e-/ADU")
        steps.append("gain")
    uncertainty = None
    if readnoise is not None:
        # data is in electrons now: Poisson variance is the signal itself.
        uncertainty = StdDevUncertainty(np.sqrt(np.clip(data, 0, None)
                                                + np.float32(readnoise) ** 2))
        header["RDNOISE"] = (float(readnoise), "read noise used for the uncertainty, e-")
    header["CALSTAT"] = ("".join(_STEP_CODES.get(s, "") for s in steps),
                         "O oscan, T trim, B bias, D dark, F flat, C CR")
    header["BUNIT"] = unit.to_string()
    provenance.stamp(header, "calibrated (" + ", ".join(steps or ["nothing"]) + ")")
    provenance.add_history(header, f"raw frame {name}")
    return CCDData(data, unit=unit, header=header, uncertainty=uncertainty)


def _clean_cosmic_rays(data, header, gain, readnoise):
    """L.A.Cosmic on ``data`` (ADU) in place; returns the pixels cleaned."""
    from ccdproc import cosmicray_lacosmic
    if not isinstance(gain, (int, float)):
        gain = header_number(header, ("EGAIN", "GAIN")) or 1.0
    readnoise = readnoise or header_number(header, ("RDNOISE", "READNOIS")) or 6.5
    provenance.add_history(header, f"cosmic rays: L.A.Cosmic with gain {gain:g} e-/ADU, "
                           f"read noise {readnoise:g} e-")
    ccd = cosmicray_lacosmic(CCDData(np.nan_to_num(data, nan=0.0), unit=u.adu),
                             gain=gain * u.electron / u.adu,
                             readnoise=readnoise * u.electron, gain_apply=False)
    # Keep undefined pixels undefined; take the cleaned values elsewhere.
    defined = np.isfinite(data)
    data[defined] = ccd.data[defined]
    return int(np.count_nonzero(ccd.mask & defined))


def _gain_value(name, header, gain):
    if gain != "header":
        return float(gain)
    # EGAIN first: N.I.N.A. writes its camera setting (not e-/ADU) as GAIN.
    value = header_number(header, ("EGAIN", "GAIN"))
    if value is None:
        raise CalibrationError(f"{name}: gain 'header' asked for, but the "
                               "header has no GAIN or EGAIN")
    return value


def output_path(frame, out_dir, raw_root=None):
    """Where the calibrated ``frame`` goes: its raw name in ``out_dir``.

    Sub-folders below ``raw_root`` are kept, so two raw files with one
    name in different folders never collide.  Compressed raw files
    (``.fz``, ``.gz``) are written uncompressed.
    """
    name = os.path.basename(frame.path)
    for suffix in (".fz", ".gz"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    if not name.lower().endswith((".fits", ".fit", ".fts")):
        name += ".fits"
    sub = ""
    if raw_root:
        rel = os.path.relpath(os.path.dirname(os.path.abspath(frame.path)),
                              os.path.abspath(raw_root))
        if not rel.startswith(".."):
            sub = "" if rel == "." else rel
    return os.path.join(out_dir, sub, name)


def calibrate_and_write(frame, match, out_dir, options=None, *, raw_root=None,
                        overwrite=False, notes=None):
    """Calibrate ``frame`` and write it atomically into ``out_dir``.

    ``options`` (a `CalibrationOptions`) and ``notes`` are those of
    `calibrate_frame`; an uncertainty, when asked for, goes into an
    ``UNCERT`` extension.

    Returns
    -------
    (str, CCDData)
        The written path and the calibrated frame.

    Raises
    ------
    OutputExists
        The output is already there and ``overwrite`` is False.
    CalibrationError, FrameError, CcdcalError
        See `calibrate_frame` and `ginga_ccdcal.safe_write.write_fits`.
    """
    path = output_path(frame, out_dir, raw_root)
    ccd = calibrate_frame(frame, match, options, notes=notes)
    extensions = []
    if ccd.uncertainty is not None:
        # The extension CCDData.read recognises as the uncertainty.
        extensions.append(fits.ImageHDU(ccd.uncertainty.array.astype(np.float32),
                                        fits.Header({"UTYPE": "StdDevUncertainty"}),
                                        name="UNCERT"))
    write_fits(path, ccd.data, ccd.header, overwrite=overwrite, protect=[frame.path],
               extensions=extensions)
    return path, ccd
