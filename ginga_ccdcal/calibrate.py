"""Calibrating one light frame with the masters `match_light` chose.

The arithmetic is ccdproc's (``subtract_bias``, ``subtract_dark`` with
exposure scaling, ``flat_correct`` with an already normalised flat), done
in float32 in place on one array so a 4k x 4k frame takes a fraction of a
second; `tests/test_calibrate.py` checks it against ccdproc itself.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np
from astropy import units as u
from astropy.io import fits

from . import provenance
from .errors import CalibrationError, NotCalibrated
from .fitsfile import pixel_type, read_image
from .classify import header_number
from .dark_scale import DarkScaleError, fit_dark_scale
from .masters import master_data
from .products import CHANGED_WHILE_READ, raw_identity, raw_touched, record_raw
from .quality import pixel_warnings
from .regions import apply_regions, find_regions
from .safe_write import write_fits

__all__ = ["CalibrationOptions", "calibrate_ccd", "calibrate_frame", "calibrate_and_write",
           "output_path", "not_calibrated_reason", "FLAT_MIN_RESPONSE"]

_STEP_CODES = {"overscan": "OT", "bias": "B", "dark": "D", "flat": "F", "cosmics": "C"}

#: Flat pixels below this fraction of the normalised flat's level carry
#: no usable signal: dividing by them would blow the noise up by 20 times
#: or more (or give inf/NaN at zero).  They are set to 0 and masked.
FLAT_MIN_RESPONSE = 0.05


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


def calibrate_frame(frame, match, options=None, *, notes=None, on_step=None,
                    raw_root=None):
    """Read the raw ``frame`` and calibrate it with the masters in ``match``.

    The file-based form of `calibrate_ccd`: the same code path, with the
    raw pixels and header read from ``frame.path``.

    Parameters
    ----------
    frame : `~ginga_ccdcal.scan.Frame`
    match : `~ginga_ccdcal.match.MatchResult`
    options : `CalibrationOptions`, optional
    notes, on_step, raw_root
        See `calibrate_ccd`.

    Returns
    -------
    astropy.nddata.CCDData

    Raises
    ------
    CalibrationError, FrameError
        See `calibrate_ccd`; `FrameError` when the raw file cannot be read.
    """
    _refuse_uncalibrated(match, options, frame.path)  # before reading pixels
    # Read straight into float32 (from reused memory: one light after
    # another); saturation is still judged on the file's own pixel type.
    data, header, _ = read_image(frame.path, dtype=np.float32, reuse=True)
    result = _calibrate(data, pixel_type(header), header, match, options,
                        name=frame.path, notes=notes, on_step=on_step, raw_root=raw_root)
    if frame.frametype not in ("light", "unknown"):
        # Asked for by name (a folder's calibration frames are left alone).
        provenance.add_history(result.header, f"note: the header says {frame.frametype}; "
                               "calibrated as a light because it was asked for")
    return result


def not_calibrated_reason(match):
    """Why no step at all can be applied to ``match.frame``, or None if one can.

    The sentence the CLI, the watcher and the plugins show for a light that
    is not calibrated, e.g. ``"no master bias, dark or flat (...)"``.
    """
    choices = (match.bias, match.dark, match.flat)
    if any(choices) or not match.missing:
        return None
    details = "; ".join(f"{c.role}: {c.reason}" for c in choices)
    if all(not c.done for c in choices):
        return f"no master bias, dark or flat ({details})"
    return f"nothing left to apply ({details})"


def _refuse_uncalibrated(match, options, name):
    """Raise when calibrating would write a frame that is not calibrated."""
    if options is not None and options.strict and match.missing:
        raise CalibrationError(f"{name}: not calibrated (--strict asks for every step): "
                               + "; ".join(f"{r}: {getattr(match, r).reason}"
                                           for r in match.missing))
    reason = not_calibrated_reason(match)
    if reason:
        raise NotCalibrated(f"{name}: {reason}")


def calibrate_ccd(ccd, match, options=None, *, name="frame", notes=None, on_step=None,
                  raw_root=None):
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
        How messages name this frame (its path).
    notes : list, optional
        Sentences about the raw pixels (undefined, saturated) and about
        flat pixels at or near zero are appended here, as well as to the
        output's HISTORY.
    on_step : callable, optional
        ``on_step(role, data, choice)`` with a copy of the frame after each
        step: ``'raw'`` (after any overscan and trim, ``choice`` None),
        then ``'bias'``, ``'dark'``, ``'flat'`` as they are applied
        (`ginga_ccdcal.steps` shows them side by side).
    raw_root : str, optional
        The raw folder: HISTORY names the raw frame relative to it (by its
        file name without one), never by its absolute path.

    Returns
    -------
    astropy.nddata.CCDData
        float32 data, unit adu (or electron), the raw header plus the
        provenance of every step.  Steps that could not be applied are
        listed in CALMISS and HISTORY; steps the header says were done
        before (`ginga_ccdcal.provenance.steps_done`) are not redone and
        HISTORY says why.  The mask marks pixels without a calibrated value:
        undefined in the raw frame, or where the flat is at or near zero
        (below `FLAT_MIN_RESPONSE`; set to 0 there, counted in FLATLOW).

    Raises
    ------
    NotCalibrated
        No step at all could be applied (no master bias, dark or flat).
    CalibrationError
        ``strict`` and a master is missing; a master's shape differs;
        the dark scale cannot be fitted; ``gain='header'`` and the header
        has none.

    Examples
    --------
    >>> from ginga_ccdcal.masters import load_master    # doctest: +SKIP
    >>> result = calibrate_ccd(raw, match_light(light, masters))  # doctest: +SKIP
    """
    _refuse_uncalibrated(match, options, name)  # before converting pixels
    raw = np.asarray(ccd.data)
    return _calibrate(raw.astype(np.float32), raw.dtype, fits.Header(ccd.header), match,
                      options, name=name, notes=notes, on_step=on_step, raw_root=raw_root)


def _calibrate(data, raw_type, header, match, options, *, name, notes, on_step, raw_root):
    """`calibrate_ccd` on ``data``, the raw pixels as float32 that it may
    change in place; ``raw_type`` is the pixels' type as the camera wrote
    them (for saturation and undefined pixels); ``header`` is a copy.
    Both callers have refused a match with nothing to apply already."""
    # Imported here: astropy.nddata brings astropy.wcs, coordinates and
    # scipy.sparse (about half a second), which commands that calibrate
    # nothing (masters, scan) need not pay for.
    from astropy.nddata import CCDData, StdDevUncertainty
    options = options or CalibrationOptions()
    gain, dark_scale = options.gain, options.dark_scale
    readnoise, cosmics = options.readnoise, options.cosmics
    warnings = pixel_warnings(data, header, raw_type)
    for key in ("BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM"):
        header.remove(key, ignore_missing=True)
    steps = []
    flat_low = None
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
    pedestal = provenance.camera_pedestal(header)
    if pedestal is not None:
        data += np.float32(pedestal)
        provenance.remove_pedestal_cards(header)  # a reader must not add it again
        provenance.add_history(header, f"camera pedestal removed: {pedestal:g} "
                               "added to every pixel (zero-based ADU before the flat)")
    if on_step is not None:
        on_step("raw", data.copy(), None)
    pending = []  # masters not applied yet: all in one pass (`_apply_masters`)
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
            pending.append(("subtract", master, 1.0))
        elif choice.role == "dark":
            scale = choice.scale
            if dark_scale == "fit":
                if match.bias_in_dark:
                    raise CalibrationError(
                        f"{name}: cannot fit the dark scale: {choice.master.name} "
                        "still contains the bias")
                pending = _apply_masters(data, pending)  # fitted to the frame as it is now
                try:
                    scale = fit_dark_scale(data, master)
                except DarkScaleError as exc:
                    raise CalibrationError(f"{name}: cannot fit the dark scale of "
                                           f"{choice.master.name}: {exc}") from None
                header["DARKFIT"] = (True, "dark scale fitted to this frame")
                provenance.add_history(header, f"dark scale fitted: {scale:.4f} "
                                       f"(exposure ratio {choice.scale:.4f})")
            pending.append(("subtract", master, scale))
        else:
            # Multiplying by the cached reciprocal is one pass instead of a
            # division.  Pixels where the flat is at or near zero, negative
            # or undefined carry no signal: set to 0 and masked, not NaN.
            inverse = master_data(choice.master, "inverse")
            pending.append(("multiply", inverse[choice.cutout] if choice.cutout
                            else inverse, None))
            pending = _apply_masters(data, pending)
            flat_low = _flat_low(choice.master)
            if flat_low is not None:
                flat_low = flat_low[choice.cutout] if choice.cutout else flat_low
                data[flat_low] = 0.0
        steps.append(choice.role)
        provenance.record_master(header, choice.role, choice.master.path,
                                 scale=scale if choice.role == "dark" else None,
                                 reason=choice.reason)
        for warning in choice.warnings:
            provenance.add_history(header, f"warning: {warning}")
        if on_step is not None:
            pending = _apply_masters(data, pending)
            on_step(choice.role, data.copy(), choice)
    _apply_masters(data, pending)
    if cosmics:
        cleaned = _clean_cosmic_rays(data, header, gain, readnoise)
        steps.append("cosmics")
        header["CRCLEAN"] = (cleaned, "pixels cleaned of cosmic rays (L.A.Cosmic)")
    done = [c.role for c in (match.bias, match.dark, match.flat) if c.done]
    for role in done:
        provenance.add_history(header, f"{role} not applied: {getattr(match, role).reason}")
    for role in match.missing:
        provenance.add_history(header, f"{role} NOT applied: {getattr(match, role).reason}")
    if match.missing:
        header["CALMISS"] = (",".join(match.missing), "steps NOT applied: no master")
    if flat_low is not None and flat_low.any():  # a cut-out may have none
        count = int(np.count_nonzero(flat_low))
        header["FLATLOW"] = (count, f"pixels with flat < {FLAT_MIN_RESPONSE:g}: 0, masked")
        warnings.append(f"{count} pixel(s) where the flat is at or near zero (below "
                        f"{FLAT_MIN_RESPONSE:g} of its level) are set to 0 and masked")
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
    # CALSTAT is what the image has had, here or before (as MaxIm means it).
    header["CALSTAT"] = ("".join(code for step, code in _STEP_CODES.items()
                                 if step in steps or step in done),
                         "O oscan, T trim, B bias, D dark, F flat, C CR")
    header["BUNIT"] = unit.to_string()
    provenance.stamp(header, "calibrated (" + ", ".join(steps or ["nothing"]) + ")")
    provenance.add_history(header, f"raw frame {provenance.relative_name(name, raw_root)}")
    # Integer raw pixels and finite masters give finite results: only a
    # float raw frame can bring undefined pixels (found by pixel_warnings).
    mask = ~np.isfinite(data) if raw_type.kind == "f" else None
    if flat_low is not None:
        mask = flat_low.copy() if mask is None else mask | flat_low
    return CCDData(data, unit=unit, header=header, uncertainty=uncertainty,
                   mask=mask if mask is not None and mask.any() else None)


#: Bytes of a frame taken through all the masters at a time by
#: `_apply_masters`: small enough to stay in the processor's cache.
_BLOCK_BYTES = 1 << 20


def _apply_masters(data, operations):
    """Apply ``operations`` to ``data`` in place; returns an empty list.

    Each operation is ``("subtract", master, scale)`` (``data -= scale *
    master``) or ``("multiply", reciprocal, None)``.  A block of rows goes
    through all of them while it is in the processor's cache, so the frame
    makes one trip through memory instead of one per master, and the
    scaled dark needs only a block-sized temporary (a frame-sized one
    costs more to fetch than the arithmetic).  The numbers are the same
    as applying the masters one after the other: each pixel gets the same
    float32 operations in the same order.
    """
    if not operations:
        return []
    rows_per_block = max(1, _BLOCK_BYTES // max(1, data[:1].nbytes))
    product = np.empty((min(rows_per_block, len(data)),) + data.shape[1:], np.float32)
    for start in range(0, len(data), rows_per_block):
        rows = slice(start, start + rows_per_block)
        block = data[rows]
        for kind, array, scale in operations:
            if kind == "multiply":
                block *= array[rows]
            elif scale == 1.0:
                block -= array[rows]
            else:
                part = product[:len(block)]
                np.multiply(array[rows], np.float32(scale), out=part)
                block -= part
    return []


_flat_low_cache = {}


def _flat_low(master):
    """Where a master flat is below `FLAT_MIN_RESPONSE` (or undefined), or None.

    Cached per master file, like the master's pixels: a night's lights
    share a few flats, so the comparison is made once per flat.
    """
    key = (master.path, os.path.getmtime(master.path))
    if key not in _flat_low_cache:
        if len(_flat_low_cache) > 8:
            _flat_low_cache.clear()
        low = ~(master_data(master) >= FLAT_MIN_RESPONSE)  # also catches NaN
        if low.any():
            low.flags.writeable = False
        _flat_low_cache[key] = low if low.any() else None
    return _flat_low_cache[key]


def _clean_cosmic_rays(data, header, gain, readnoise):
    """L.A.Cosmic on ``data`` (ADU) in place; returns the pixels cleaned."""
    from astropy.nddata import CCDData
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
    ``UNCERT`` extension, the mask (pixels without a calibrated value) into
    a ``MASK`` extension (1 = masked), as ``CCDData.write`` does.

    Returns
    -------
    (str, CCDData)
        The written path and the calibrated frame.

    Raises
    ------
    OutputExists
        The output is already there and ``overwrite`` is False.
    NotCalibrated
        Nothing could be applied: nothing is written.
    CalibrationError, FrameError, CcdcalError
        See `calibrate_frame` and `ginga_ccdcal.safe_write.write_fits`.
    """
    path = output_path(frame, out_dir, raw_root)
    # The raw file's checksum is computed while the frame is calibrated:
    # both read the same cached bytes, on two cores (hashing and numpy
    # let go of the interpreter lock).
    with ThreadPoolExecutor(max_workers=1) as executor:
        pending = executor.submit(raw_identity, frame.path)
        ccd = calibrate_frame(frame, match, options, notes=notes, raw_root=raw_root)
        identity = pending.result()
    if raw_touched(identity, frame.path):
        # Its pixels may be a mix of two versions: said, and redone next time.
        identity = replace(identity, checksum=CHANGED_WHILE_READ)
        warning = "the raw file changed while it was read; calibrate it again"
        provenance.add_history(ccd.header, f"warning: {warning}")
        if notes is not None:
            notes.append(warning)
    record_raw(ccd.header, identity)
    extensions = []
    if ccd.uncertainty is not None:
        # The extension CCDData.read recognises as the uncertainty.
        extensions.append(fits.ImageHDU(ccd.uncertainty.array.astype(np.float32),
                                        fits.Header({"UTYPE": "StdDevUncertainty"}),
                                        name="UNCERT"))
    if ccd.mask is not None:
        extensions.append(fits.ImageHDU(ccd.mask.astype(np.uint8), name="MASK"))
    write_fits(path, ccd.data, ccd.header, overwrite=overwrite, protect=[frame.path],
               extensions=extensions)
    return path, ccd
