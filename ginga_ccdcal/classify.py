"""Frame types, exposure and filter from the many header styles cameras write.

Camera software disagrees on keyword names (IMAGETYP, OBSTYPE, FRAMETYP,
FRAME...) and on their values ('Bias Frame', 'zero', 'BIAS', 'Light Frame',
'object', 'SCIENCE'...).  This module maps them onto four types, and when
the header says nothing useful, guesses from the pixels and says it guessed.
"""

import math
import re

import numpy as np

__all__ = ["FRAME_TYPES", "TYPE_KEYWORDS", "EXPTIME_KEYWORDS",
           "FILTER_KEYWORDS", "normalise_type", "type_from_header",
           "exptime_from_header", "filter_from_header", "temperature_from_header",
           "binning_from_header", "guess_type_from_data", "load_aliases",
           "save_aliases", "default_aliases_path", "header_number"]

#: The types every frame ends up as ('unknown' when nothing tells).
FRAME_TYPES = ("bias", "dark", "flat", "light", "unknown")

#: Keywords that carry the frame type, in the order we trust them.
TYPE_KEYWORDS = ("IMAGETYP", "OBSTYPE", "FRAMETYP", "FRAME", "IMGTYPE",
                 "EXPTYPE")
EXPTIME_KEYWORDS = ("EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME", "EXPOSED")
FILTER_KEYWORDS = ("FILTER", "FILTNAM", "FILTER1", "FILTNAME", "FILT-NAM",
                   "INSFILTE")
TEMPERATURE_KEYWORDS = ("CCD-TEMP", "CCDTEMP", "CCD_TEMP", "DET-TEMP",
                        "DETTEMP", "TEMPERAT")

# Words in a type value, matched after lower-casing and splitting off
# punctuation, so 'Bias Frame', 'BIAS', 'zero', 'Master Bias' all hit.
_TYPE_WORDS = {
    "bias": "bias", "zero": "bias", "offset": "bias",
    "dark": "dark", "darks": "dark", "thermal": "dark",
    "flat": "flat", "flats": "flat", "skyflat": "flat", "domeflat": "flat",
    "twflat": "flat", "twilight": "flat", "flatfield": "flat", "dflat": "flat",
    "sflat": "flat", "lampflat": "flat",
    "light": "light", "object": "light", "science": "light", "sci": "light",
    "target": "light", "obj": "light", "lights": "light", "exposure": "light",
}


def normalise_type(value, aliases=None):
    """Map a header's frame-type value onto one of `FRAME_TYPES`.

    Parameters
    ----------
    value : str
        The raw header value, e.g. ``'Dark Frame'`` or ``'SKYFLAT'``.
    aliases : dict, optional
        The user's own spellings, ``{'calib-z': 'bias'}``, checked first
        (case-insensitive).

    Returns
    -------
    str
        ``'bias'``, ``'dark'``, ``'flat'``, ``'light'`` or ``'unknown'``.

    Examples
    --------
    >>> normalise_type('Bias Frame'), normalise_type('object')
    ('bias', 'light')
    """
    text = str(value).strip().lower()
    if aliases:
        for key, kind in aliases.items():
            if key.strip().lower() == text:
                return kind
    words = re.split(r"[^a-z]+", text)
    found = [_TYPE_WORDS[w] for w in words if w in _TYPE_WORDS]
    # 'Dark Flat' / 'Flat Dark' is a dark taken for the flats: a dark.
    if "dark" in found:
        return "dark"
    if found:
        return found[0]
    # Joined spellings without separators: 'DARKFLAT', 'SKYFLATS', 'BIASFRAME'
    for word, kind in (("dark", "dark"), ("bias", "bias"), ("zero", "bias"),
                       ("flat", "flat"), ("light", "light"),
                       ("object", "light"), ("science", "light")):
        if word in text:
            return kind
    return "unknown"


def type_from_header(header, aliases=None):
    """Frame type and the keyword it came from.

    Returns
    -------
    (str, str or None)
        The type and the keyword that gave it; ``('unknown', None)`` if no
        keyword holds a recognisable value.
    """
    for key in TYPE_KEYWORDS:
        if key in header:
            kind = normalise_type(header[key], aliases)
            if kind != "unknown":
                return kind, key
    return "unknown", None


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def header_number(header, keys):
    """The first positive number among ``keys`` in ``header``, or None.

    For physical settings (gain, read noise, saturation level) where zero,
    negative, text and logical values all mean "not given".
    """
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def exptime_from_header(header):
    """Exposure time in seconds from EXPTIME, EXPOSURE..., or None."""
    for key in EXPTIME_KEYWORDS:
        if key in header:
            value = _number(header[key])
            if value is not None and value >= 0:
                return value
    return None


def filter_from_header(header, aliases=None):
    """Filter name (stripped) from FILTER, FILTNAM, FILTER1..., or None.

    ``aliases`` maps the user's spellings to one name, e.g.
    ``{'Halpha': 'Ha'}`` (case-insensitive).
    """
    for key in FILTER_KEYWORDS:
        value = header.get(key)
        if value is None:
            continue
        name = str(value).strip()
        if not name:
            continue
        if aliases:
            for spelling, canonical in aliases.items():
                if spelling.strip().lower() == name.lower():
                    return canonical
        return name
    return None


def temperature_from_header(header):
    """Sensor temperature in degrees C, or None."""
    for key in TEMPERATURE_KEYWORDS:
        if key in header:
            value = _number(header[key])
            if value is not None:
                return value
    return None


def binning_from_header(header):
    """(x, y) binning from XBINNING/YBINNING or CCDSUM; (1, 1) if absent."""
    x, y = _number(header.get("XBINNING")), _number(header.get("YBINNING"))
    if x and y:
        return int(x), int(y)
    ccdsum = header.get("CCDSUM")
    if ccdsum:
        parts = str(ccdsum).split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
    return 1, 1


def guess_type_from_data(data, exptime=None, read_noise_adu=None):
    """Guess a frame's type from its pixels when the header does not say.

    The rules are the ones an observer uses by eye: a zero-length exposure
    is a bias; a frame with stars (extended sources well above the noise)
    is a light; a frame no rougher than its noise and not bright is a bias
    (short) or a dark (long); a bright, smooth frame is a flat.  A guess is
    only a guess: the scan marks it, and the user can set the type.

    Parameters
    ----------
    data : 2-D array
    exptime : float, optional
    read_noise_adu : float, optional
        If unknown, estimated from the difference of neighbouring columns.

    Returns
    -------
    str
        One of ``'bias'``, ``'dark'``, ``'flat'``, ``'light'``.
    """
    image = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(image)
    if not finite.any():
        return "unknown"
    if exptime is not None and exptime == 0:
        return "bias"
    level = float(np.median(image[finite]))
    filled = np.where(finite, image, level)
    if read_noise_adu is None:
        # Pixel-to-pixel differences cancel smooth illumination, leaving
        # the per-pixel noise (times sqrt 2).
        diff = np.diff(filled[::2, :], axis=1)
        read_noise_adu = 1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2)
    noise = max(float(read_noise_adu), 1e-3)
    # Stars are extended: several neighbouring pixels well above their
    # surroundings.  Hot pixels and cosmic rays are single pixels or
    # short tracks, and vignetting is not sharp at all.
    from scipy.ndimage import uniform_filter
    excess = filled - uniform_filter(filled, size=9, mode="nearest")
    high = (excess > 5 * noise).astype(np.float32)
    extended = (uniform_filter(high, size=3, mode="constant") * 9 >= 5) & (high > 0)
    if np.count_nonzero(extended) > 1e-4 * image.size:
        return "light"
    sample = filled[::2, ::2].ravel()
    mad = 1.4826 * float(np.median(np.abs(sample - level)))
    # Bright frames (flats) are far above any bias or dark level a 16-bit
    # camera has; below that, a frame as smooth as its noise is a dark.
    if level < 10000 and mad <= 1.5 * noise:
        return "bias" if not exptime or exptime < 1 else "dark"
    return "flat"


def default_aliases_path():
    """Where the user's spellings live: beside Ginga's own settings.

    ``$GINGA_HOME/ccdcal_aliases.json`` (``~/.ginga`` by default), so the
    CCD Browser plugin and the command line share them.
    """
    import os
    home = os.environ.get("GINGA_HOME") or os.path.join(os.path.expanduser("~"), ".ginga")
    return os.path.join(home, "ccdcal_aliases.json")


def save_aliases(aliases, path=None):
    """Write ``{'type': {...}, 'filter': {...}}`` as JSON (atomically).

    Returns the path written.
    """
    import json
    import os
    import tempfile
    path = path or default_aliases_path()
    clean = {"type": dict(aliases.get("type", {})), "filter": dict(aliases.get("filter", {}))}
    bad = sorted(v for v in clean["type"].values() if v not in FRAME_TYPES)
    if bad:
        from .errors import CcdcalError
        raise CcdcalError(f"unknown frame type(s) {', '.join(bad)}; use one of "
                          f"{', '.join(FRAME_TYPES[:4])}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w") as stream:
        json.dump(clean, stream, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def load_aliases(path):
    """Read the user's own spellings from a small JSON file.

    The file maps header values to ours, for frame types and filters::

        {"type": {"calib-z": "bias", "sky": "flat"},
         "filter": {"Halpha": "Ha", "H-alpha": "Ha", "O[III]": "OIII"}}

    Returns
    -------
    dict
        ``{'type': {...}, 'filter': {...}}``.

    Raises
    ------
    CcdcalError
        Unreadable file, or a type that is not one of `FRAME_TYPES`.
    """
    import json

    from .errors import CcdcalError
    try:
        with open(path) as stream:
            raw = json.load(stream)
    except (OSError, ValueError) as exc:
        raise CcdcalError(f"{path}: cannot read aliases ({exc})") from None
    if not isinstance(raw, dict) or not set(raw) <= {"type", "filter"}:
        raise CcdcalError(f"{path}: aliases must be a JSON object with 'type' "
                          "and/or 'filter' mappings")
    aliases = {"type": dict(raw.get("type", {})), "filter": dict(raw.get("filter", {}))}
    bad = sorted(v for v in aliases["type"].values() if v not in FRAME_TYPES)
    if bad:
        raise CcdcalError(f"{path}: unknown frame type(s) {', '.join(bad)}; "
                          f"use one of {', '.join(FRAME_TYPES[:4])}")
    return aliases
