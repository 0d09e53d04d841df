"""Text that describes frames, groups, masters and results, for people.

Every front end lays these lines out (the Ginga plugins in message areas,
the command line on the terminal, a notebook in a cell); none of them
words a result its own way.  Also the readers of what a user types in
those front ends: the header-spellings editor (`parse_aliases_text`), the
calibration options (`parse_options`) and the grouping keys
(`parse_group_keys`).

Nothing here imports a GUI toolkit: the module is plain text in, plain
text out.
"""

import math

from .classify import FRAME_TYPES
from .errors import CcdcalError
from .group import DEFAULT_GROUP_KEYS

__all__ = ["parse_group_keys", "type_text", "frame_summary", "group_summary",
           "aliases_text", "parse_aliases_text", "watch_result_lines",
           "result_lines", "provenance_text", "parse_options", "DARK_SCALES",
           "format_number", "checklist_items", "checklist_text", "FRAME_STATES",
           "state_text", "match_state", "match_banner", "failure_state",
           "watch_state", "watch_banner"]

# Section names of the spellings editor -> keys of the aliases file.
_SECTIONS = {"types": "type", "type": "type", "filters": "filter", "filter": "filter"}

#: Marks of a step applied / not applied (`checklist_text`).
TICK, CROSS = "\u2713", "\u2717"

#: Dark-scale choices: words a user picks -> ``calibrate_frame``'s value.
DARK_SCALES = {"exposure ratio": "exposure", "fit to this light": "fit"}


def parse_group_keys(text):
    """``"frametype, EXPTIME"`` -> ``('frametype', 'exptime')``; empty -> default.

    Derived names are kept lower-case, header keywords as the user typed
    them (look-ups are case-insensitive anyway).

    >>> parse_group_keys("frametype; filter")
    ('frametype', 'filter')
    """
    keys = tuple(k.strip() for k in text.replace(";", ",").split(",") if k.strip())
    return keys or DEFAULT_GROUP_KEYS


def format_number(value, fmt="{:g}"):
    """``value`` formatted with ``fmt``; "" for None, ``str`` for text."""
    if value is None:
        return ""
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def type_text(frame):
    """A frame's type as a table cell: ``'flat (guessed)'``, ``'bias (set by you)'``.

    A type the evidence gave against the header (``frame.type_note``, when
    the scan set one) reads ``'flat (not the header's)'``.
    """
    if frame.type_source == "guess":
        return f"{frame.frametype} (guessed)"
    if frame.type_source == "user":
        return f"{frame.frametype} (set by you)"
    if getattr(frame, "type_note", None):
        return f"{frame.frametype} (not the header's)"
    return frame.frametype


def _span(values, unit, fmt="{:g}"):
    values = sorted(v for v in values if v is not None)
    if not values:
        return "not in headers"
    if values[0] == values[-1]:
        return f"{fmt.format(values[0])} {unit}"
    return f"{fmt.format(values[0])} to {fmt.format(values[-1])} {unit}"


def frame_summary(frame):
    """Lines describing one frame (`~ginga_ccdcal.scan.Frame`)."""
    source = {"guess": "guessed from the pixels", "user": "set by you",
              "unknown": "not in the header"}.get(frame.type_source,
                                                  f"from {frame.type_source}")
    lines = [f"{frame.name}: {frame.frametype} ({source})"]
    note = getattr(frame, "type_note", None)
    if note:
        lines.append(note)
    lines += [f"exposure {format_number(frame.exptime)} s, filter {frame.filter}, "
              f"CCD temperature {format_number(frame.ccd_temp, '{:.1f}')} C",
              f"{frame.shape[1]}x{frame.shape[0]} px, binning "
              f"{frame.binning[0]}x{frame.binning[1]}, HDU {frame.hdu}",
              frame.path]
    return lines


def group_summary(path_labels, frames):
    """Lines describing a group of frames: a header summary (counts, ranges),
    not image statistics."""
    lines = [" / ".join(path_labels) + f": {len(frames)} frame(s)"]
    if not frames:
        return lines
    types = {}
    for f in frames:
        types[f.frametype] = types.get(f.frametype, 0) + 1
    lines.append("types: " + ", ".join(f"{n} {t}" for t, n in sorted(types.items())))
    guessed = sum(1 for f in frames if f.guessed)
    if guessed:
        lines.append(f"{guessed} type(s) guessed from the pixels")
    overruled = sum(1 for f in frames if getattr(f, "type_note", None))
    if overruled:
        lines.append(f"{overruled} type(s) differ from the header (file name and "
                     "pixels disagree with it)")
    lines.append("exposure: " + _span([f.exptime for f in frames], "s"))
    lines.append("CCD temperature: " + _span([f.ccd_temp for f in frames], "C", "{:.1f}"))
    filters = sorted({str(f.filter) for f in frames if f.filter is not None})
    lines.append("filters: " + (", ".join(filters) if filters else "none"))
    shapes = sorted({f"{f.shape[1]}x{f.shape[0]} bin {f.binning[0]}x{f.binning[1]}"
                     for f in frames})
    lines.append("image size: " + ", ".join(shapes))
    size = sum(f.size for f in frames)
    lines.append(f"on disk: {size / 1e6:.1f} MB")
    return lines


def aliases_text(aliases):
    """The spellings editor's text for ``aliases`` (`classify.load_aliases` form).

    >>> print(aliases_text({'type': {'FLAT-DK': 'dark'}, 'filter': {}}))
    [types]
    FLAT-DK = dark
    <BLANKLINE>
    [filters]
    """
    aliases = aliases or {}
    lines = ["[types]"]
    lines += [f"{spelling} = {ours}" for spelling, ours
              in sorted((aliases.get("type") or {}).items())]
    lines += ["", "[filters]"]
    lines += [f"{spelling} = {ours}" for spelling, ours
              in sorted((aliases.get("filter") or {}).items())]
    return "\n".join(lines)


def parse_aliases_text(text):
    """Read the spellings editor: ``header value = ours`` under ``[types]``/``[filters]``.

    Blank lines and ``#`` comments are skipped.  The last ``=`` splits a
    line, so a header value may itself hold one.

    Returns
    -------
    dict
        ``{'type': {...}, 'filter': {...}}``, ready for `classify.save_aliases`.

    Raises
    ------
    CcdcalError
        A line outside a section, without ``=``, with an empty side, or
        naming a type that is not bias, dark, flat, light or unknown; the
        message gives the line number.
    """
    aliases = {"type": {}, "filter": {}}
    section = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = _SECTIONS.get(line[1:-1].strip().lower())
            if section is None:
                raise CcdcalError(f"line {number}: unknown section {line}; "
                                  "use [types] or [filters]")
            continue
        if section is None:
            raise CcdcalError(f"line {number}: put '{line}' under [types] or [filters]")
        spelling, sep, ours = line.rpartition("=")
        spelling, ours = spelling.strip(), ours.strip()
        if not sep or not spelling or not ours:
            raise CcdcalError(f"line {number}: '{line}' is not 'header value = ours'")
        if section == "type":
            ours = ours.lower()
            if ours not in FRAME_TYPES:
                raise CcdcalError(f"line {number}: '{ours}' is not a frame type; use "
                                  f"one of {', '.join(FRAME_TYPES)}")
        aliases[section][spelling] = ours
    return aliases


def watch_result_lines(result, clock=None):
    """Watch-log lines for one `~ginga_ccdcal.watch.WatchResult`.

    The first line says what happened to the file (prefixed with the time
    ``clock``, e.g. ``'21:04:17'``, if given); for lights the next lines
    name the master used for each step, with its version, and why.
    """
    if result.status == "problem":
        first = f"{result.name}: {result.problem}"
    else:
        first = result.summary()
    lines = [f"{clock} {first}" if clock else first]
    lines += [f"    {line}" for line in result.lines]
    return lines


def result_lines(header, exposure_ratio=None):
    """What a calibrated frame's header says about how it was made, for people.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Of the calibrated frame.
    exposure_ratio : float, optional
        The dark scale the exposure times give, quoted next to a fitted one.

    Returns
    -------
    list of str
        The steps applied (CALSTAT), the dark scale when it was fitted
        (DARKSCL with DARKFIT), the pixels cleaned of cosmic rays (CRCLEAN)
        and the gain when the data were converted to electrons (GAINCOR).
    """
    steps = header.get("CALSTAT", "") or "none"
    legend = header.comments["CALSTAT"] if "CALSTAT" in header else ""
    lines = [f"steps applied: {steps}" + (f" ({legend})" if legend else "")]
    if header.get("DARKFIT") and "DARKSCL" in header:
        text = f"dark scale fitted to this light: x{header['DARKSCL']:.4f}"
        if exposure_ratio is not None:
            text += f" (exposure ratio x{exposure_ratio:.4g})"
        lines.append(text)
    if "CRCLEAN" in header:
        lines.append(f"cosmic rays: {header['CRCLEAN']} pixels cleaned")
    if "GAINCOR" in header:
        lines.append(f"in electrons (gain {header['GAINCOR']:g} e-/ADU)")
    return lines


def provenance_text(master):
    """A master's description and full header (its provenance), as text."""
    lines = [f"{master.path}", master.describe(), ""]
    if master.header is not None:
        lines += [str(card) for card in master.header.cards]
    return "\n".join(lines)


def parse_options(dark_scale, cosmics, gain_text, readnoise_text):
    """The ``calibrate_frame`` options a form describes.

    Parameters
    ----------
    dark_scale : str
        ``'exposure'`` or ``'fit'``.
    cosmics : bool
    gain_text, readnoise_text : str
        As typed: blank for none; the gain may also be ``header``.

    Returns
    -------
    dict
        ``dark_scale``, ``cosmics``, ``gain`` (None, float or
        ``'header'``), ``readnoise`` (None or float).

    Raises
    ------
    ValueError
        With a message for the user when a number is not one.
    """
    def number(text, what):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not value > 0 or value == math.inf:
            raise ValueError(f"{what} must be a positive number, not {text!r}")
        return value

    if dark_scale not in DARK_SCALES.values():
        raise ValueError(f"dark scale must be one of {sorted(DARK_SCALES.values())}")
    gain_text = (gain_text or "").strip()
    readnoise_text = (readnoise_text or "").strip()
    if not gain_text:
        gain = None
    elif gain_text.lower() == "header":
        gain = "header"
    else:
        gain = number(gain_text, "Gain (e-/ADU; or 'header', or blank)")
    readnoise = number(readnoise_text, "Read noise (e-; or blank)") if readnoise_text else None
    return dict(dark_scale=dark_scale, cosmics=bool(cosmics), gain=gain,
                readnoise=readnoise)


def checklist_items(match):
    """``[(step, applied, why), ...]`` for bias, dark and flat of a match.

    ``applied`` is True when calibrating with this match applies the step:
    a bias step is applied by a master bias or by a dark that still holds
    the bias.  ``why`` is the core's reason (`~ginga_ccdcal.match.Choice`).

    Parameters
    ----------
    match : `~ginga_ccdcal.match.MatchResult`
    """
    items = []
    for choice in (match.bias, match.dark, match.flat):
        if choice.role == "bias" and not choice and match.bias_in_dark:
            items.append(("bias", True, "included in the dark (dark not bias-subtracted)"))
            continue
        name = f"{choice.master.name}: " if choice else ""
        items.append((choice.role, bool(choice), name + choice.reason))
    return items


def checklist_text(match):
    """``'bias ✓  dark ✓  flat ✗'`` for a match (None: ``'no masters'``)."""
    if match is None:
        return "no masters"
    return "  ".join(f"{step} {TICK if ok else CROSS}"
                     for step, ok, _ in checklist_items(match))


#: What can be said of a raw frame once calibrating it was tried.
FRAME_STATES = ("calibrated", "partly calibrated", "not calibrated", "failed")


def state_text(state, why=""):
    """A frame state as a table cell: ``'failed: truncated FITS'``."""
    return f"{state}: {why}" if why else state


def match_state(match):
    """``(state, why)`` of a light calibrated with ``match`` (written).

    Every step applied: ``'calibrated'``; some: ``'partly calibrated'``
    naming the steps not applied; none: ``'not calibrated'``.
    """
    return _missing_state(match.missing)


def _missing_state(missing):
    if not missing:
        return "calibrated", ""
    why = "no master " + ", ".join(missing)
    if len(missing) == 3:
        return "not calibrated", why
    return "partly calibrated", why


def failure_state(match, message):
    """``(state, why)`` of a light whose calibration raised ``message``.

    ``'not calibrated'`` when no master at all fits it (the core refuses to
    write such a frame), else ``'failed'``.
    """
    from .calibrate import not_calibrated_reason
    reason = not_calibrated_reason(match) if match is not None else None
    return ("not calibrated", reason) if reason else ("failed", message)


def watch_banner(result):
    """What a viewer should write over a watched light's result, or None.

    A light that was not calibrated (or failed): ``'NOT calibrated: ...'``;
    one calibrated with steps missing: the watcher's own
    `~ginga_ccdcal.watch.WatchResult.banner` (``'partly calibrated: flat NOT
    applied (no master flat for filter V)'``).
    """
    light = result.frame is not None and result.frame.frametype == "light"
    if result.status in ("problem", "uncalibrated") and light:
        return f"NOT calibrated: {result.problem}"
    return result.banner


def match_banner(match):
    """``'partly calibrated: flat NOT applied (no master flat for filter V)'``
    for a light calibrated with ``match``; None when every step is applied."""
    if not match.missing:
        return None
    how = "NOT calibrated" if len(match.missing) == 3 else "partly calibrated"
    return how + ": " + "; ".join(
        f"{role} NOT applied ({getattr(match, role).reason})" for role in match.missing)


def watch_state(result):
    """``(state, why)`` of the raw frame of a `~ginga_ccdcal.watch.WatchResult`, or None.

    None for results that say nothing about calibrating a light
    (calibration frames, ignored files, outputs already there).
    """
    if result.status == "problem":
        return failure_state(result.match, result.problem or "")
    if result.status == "uncalibrated":
        return "not calibrated", result.problem or ""
    if result.status != "calibrated":
        return None
    # The watcher fills ``missing`` from the match; a result made by hand
    # may carry only the match.
    missing = result.missing or (result.match.missing if result.match is not None else [])
    return _missing_state(missing)
