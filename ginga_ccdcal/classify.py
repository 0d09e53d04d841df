"""Frame types, exposure and filter from the many header styles cameras write.

Camera software disagrees on keyword names (IMAGETYP, OBSTYPE, FRAMETYP,
FRAME...) and on their values ('Bias Frame', 'zero', 'BIAS', 'Light Frame',
'object', 'SCIENCE'...).  This module maps them onto four types.  One function, `decide_type`, says
what a frame is: the user's word first (a file chosen in the browser, a
``--type`` glob), then the header (read through the user's spellings), and
the pixels only where the header says nothing or its file name contradicts
it; every type not taken plainly from the header comes with a sentence
saying why, and how sure it is.
"""

import fnmatch
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from .errors import CcdcalError

__all__ = ["FRAME_TYPES", "TYPE_KEYWORDS", "EXPTIME_KEYWORDS",
           "FILTER_KEYWORDS", "normalise_type", "type_from_header",
           "exptime_from_header", "filter_from_header", "filter_match",
           "temperature_from_header", "binning_from_header",
           "guess_type_from_data", "PixelStats", "measure_pixels",
           "type_from_name", "file_type_for", "TypeDecision", "decide_type",
           "load_aliases", "save_aliases", "add_file_types",
           "default_aliases_path", "header_number", "VocabularyError",
           "MAX_VOCABULARY_BYTES"]

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


# -- evidence from the pixels ------------------------------------------------------

#: Below this median level (ADU) a smooth frame is a bias or a dark: a flat
#: is exposed to thousands of ADU, far above any bias or dark level.
FLAT_MIN_LEVEL = 5000.0
#: A frame with no type in its header is called a flat from its pixels
#: alone only above this level (no file name to back the guess).
FLAT_GUESS_LEVEL = 10000.0
# Detection threshold for sources, in pixel noise.
_SOURCE_SIGMA = 5.0
# A point source fits in this many pixels and is at most this elongated;
# anything bigger or longer (arc lines, trails, bleed columns) is a structure.
_POINT_MAX_SIZE = 25
_POINT_MAX_ASPECT = 3.0
# "Smooth": the small-scale roughness is no more than this times the noise
# of neighbouring pixels.
_SMOOTH = 1.5


@dataclass(frozen=True)
class PixelStats:
    """What a frame's pixels show, as an observer would judge them by eye.

    Attributes
    ----------
    level : float
        Median, ADU.
    noise : float
        Pixel-to-pixel noise (from differences of neighbouring pixels,
        which cancel any smooth illumination), ADU.
    spread : float
        Robust standard deviation of the whole frame, ADU: about the noise
        for a bias or dark, much more for a vignetted flat.
    roughness : float
        Robust standard deviation after removing the light on scales over
        9 pixels, ADU: about the noise for a flat, far more for an arc.
    point_sources : int
        Compact sources well above the noise (stars).
    structures : int
        Bright features that are not point-like: lines, trails, bleeds.
    """

    level: float
    noise: float
    spread: float
    roughness: float
    point_sources: int
    structures: int

    @property
    def smooth(self):
        """No small-scale structure beyond the noise, no sources."""
        return (self.roughness <= _SMOOTH * self.noise and not self.point_sources
                and not self.structures)

    @property
    def even(self):
        """Smooth and level all over, as a bias or dark is."""
        return self.smooth and self.spread <= _SMOOTH * self.noise

    def describe(self):
        """Short words for notes: ``'level 20000 ADU, smooth, no stars'``."""
        bits = [f"level {self.level:.0f} ADU"]
        if self.structures:
            bits.append(f"{self.structures} bright feature(s) that are not stars "
                        "(lines or trails)")
        if self.point_sources:
            bits.append(f"{self.point_sources} star(s)")
        if not self.structures and not self.point_sources:
            bits.append("smooth, no stars" if self.smooth else "not smooth, no stars")
        return ", ".join(bits)


def measure_pixels(data, read_noise_adu=None):
    """`PixelStats` of a 2-D image.

    Parameters
    ----------
    data : 2-D array
    read_noise_adu : float, optional
        The noise to judge sources by; measured from the frame if not given.

    Returns
    -------
    PixelStats or None
        None if no pixel is finite.
    """
    from astropy.stats import mad_std
    from scipy import ndimage

    image = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(image)
    if not finite.any():
        return None
    # A quarter of the pixels gives the median to well under the noise.
    sample = image[::2, ::2]
    level = float(np.median(sample[np.isfinite(sample)])) if finite[::2, ::2].any() \
        else float(np.median(image[finite]))
    image = np.where(finite, image, np.float32(level))
    if read_noise_adu is None:
        # Neighbouring pixels' differences cancel smooth illumination,
        # leaving the per-pixel noise times sqrt 2.
        read_noise_adu = mad_std(np.diff(image[::2, :], axis=1)) / np.sqrt(2)
    noise = max(float(read_noise_adu), 1e-3)
    excess = image - ndimage.uniform_filter(image, size=9, mode="nearest")
    high = excess > _SOURCE_SIGMA * noise
    # A source has a core: most of a 3 x 3 box above the threshold.  Hot
    # pixels and cosmic rays (1-3 pixels) never do.
    core = high & (ndimage.uniform_filter(high.astype(np.float32), size=3,
                                          mode="constant") * 9 >= 5)
    points, structures = _count_sources(high, core)
    return PixelStats(level=level, noise=noise,
                      spread=float(mad_std(image[::2, ::2])),
                      roughness=float(mad_std(excess[::2, ::2])),
                      point_sources=points, structures=structures)


def _count_sources(high, core):
    """(point sources, other structures) among the groups of high pixels with a core."""
    from scipy import ndimage

    if not core.any():
        return 0, 0
    labels, _ = ndimage.label(high)
    points = structures = 0
    boxes = ndimage.find_objects(labels)
    for label in np.unique(labels[core]):
        rows, cols = boxes[label - 1]
        height, width = rows.stop - rows.start, cols.stop - cols.start
        if max(height, width) <= _POINT_MAX_SIZE and \
                max(height, width) <= _POINT_MAX_ASPECT * min(height, width):
            points += 1
        else:
            structures += 1
    return points, structures


def _pixels_say(stats, exptime):
    """What the pixels alone say: (type or 'unknown', confident, reason)."""
    if stats is None:
        return "unknown", False, "no finite pixels"
    described = stats.describe()
    if stats.structures and stats.structures >= stats.point_sources:
        return "unknown", False, described
    if stats.point_sources:
        return "light", True, described
    if exptime == 0 and stats.level < FLAT_MIN_LEVEL:
        # No light, no time for dark current: whatever pattern it has.
        return "bias", True, described + ", 0 s"
    if stats.roughness > _SMOOTH * stats.noise:
        return "unknown", False, described
    if stats.level >= FLAT_GUESS_LEVEL or (stats.level >= FLAT_MIN_LEVEL
                                           and stats.spread > 3 * stats.noise):
        return "flat", True, described
    if stats.even and stats.level < FLAT_MIN_LEVEL:
        if exptime is None:
            return "bias", False, described + ", no exposure time"
        kind = "bias" if exptime < 1 else "dark"
        return kind, True, described + f", {exptime:g} s"
    return "unknown", False, described


def _pixels_agree(stats, kind, exptime):
    """Do the pixels bear out ``kind`` (a file name's word)?  (bool, reason)"""
    if stats is None:
        return False, "no finite pixels"
    described = stats.describe()
    if stats.point_sources or stats.structures:
        return False, described
    if kind == "flat":
        if stats.level < FLAT_MIN_LEVEL:
            return False, described + ", too faint for a flat"
        return stats.smooth, described
    if stats.level >= FLAT_MIN_LEVEL:
        return False, described + f", too bright for a {kind}"
    if not stats.even:
        return False, described + ", uneven"
    if kind == "bias" and exptime is not None and exptime >= 1:
        return False, described + f", {exptime:g} s exposure"
    return True, described


def guess_type_from_data(data, exptime=None, read_noise_adu=None):
    """Guess a frame's type from its pixels alone.

    The rules are the ones an observer uses by eye: a frame with stars
    (compact sources well above the noise) is a light; a bright, smooth
    frame is a flat; a frame no rougher than its noise and not bright is a
    bias (short) or a dark (long); bright lines or trails with no stars (an
    arc lamp, a satellite on nothing) fit no type and are 'unknown'.

    Parameters
    ----------
    data : 2-D array
    exptime : float, optional
    read_noise_adu : float, optional
        If unknown, estimated from the difference of neighbouring columns.

    Returns
    -------
    str
        One of `FRAME_TYPES`.
    """
    return _pixels_say(measure_pixels(data, read_noise_adu), exptime)[0]


# -- the one decision ------------------------------------------------------------

_CALIBRATION_TYPES = ("bias", "dark", "flat")


def _words(text):
    """Lower-case words of a text; camel case splits (``DarkFrame`` -> dark, frame)."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", str(text))]


def type_from_name(path):
    """The calibration type a file name spells out, or None.

    Only whole words count (``flat-R-001.fits``, ``Dark_Frame_07.fit``,
    ``2024-03-10_FLAT_R_0001.fits``), so ``darksky-m31.fits`` says nothing;
    a dark for flats (``flat-dark-01``) is a dark.
    """
    stem = os.path.basename(os.fspath(path))
    found = {_TYPE_WORDS[w] for w in _words(stem) if w in _TYPE_WORDS}
    found &= set(_CALIBRATION_TYPES)
    if "dark" in found:
        return "dark"
    return found.pop() if len(found) == 1 else None


def file_type_for(path, file_types):
    """The user's type for ``path`` from glob patterns, as (type, pattern) or None.

    ``file_types`` maps patterns to types, e.g. ``{'flat-*': 'flat'}``
    (the ``files`` mapping of the vocabulary file).  A pattern matches the
    file name, or, if it holds a ``/``, the end of the path; case is
    ignored (``flat-*`` matches ``Flat-001.fit``).  The longest matching
    pattern wins, being the most specific.
    """
    if not file_types:
        return None
    name = os.path.basename(os.fspath(path)).lower()
    full = os.fspath(path).replace(os.sep, "/").lower()
    hits = []
    for pattern, kind in file_types.items():
        wanted = pattern.lower()
        if "/" in wanted:
            matched = fnmatch.fnmatchcase(full, wanted) or \
                fnmatch.fnmatchcase(full, "*/" + wanted.lstrip("/"))
        else:
            matched = fnmatch.fnmatchcase(name, wanted)
        if matched:
            hits.append((len(pattern), pattern, kind))
    if not hits:
        return None
    _, pattern, kind = max(hits)
    return kind, pattern


@dataclass(frozen=True)
class TypeDecision:
    """A frame's type, where it came from, how sure, and why.

    Attributes
    ----------
    frametype : str
        One of `FRAME_TYPES`.
    source : str
        The header keyword (``'IMAGETYP'``...) when the header decided;
        ``'user'`` (a file chosen in the browser or a ``--type`` glob);
        ``'evidence'`` (the header contradicted by file name and pixels);
        ``'guess'`` (no type in the header; pixels, with the name if it
        has a type word); ``'unknown'`` (nothing says).
    confidence : str
        ``'certain'`` (header or user), ``'high'`` (file name and pixels
        agree), ``'low'`` (pixels alone) or ``'none'`` (unknown).
    note : str
        A sentence for the user, e.g. ``'header says light; file name and
        pixels say flat (level 20000 ADU, smooth, no stars)'``; empty when
        the header's type stands unchallenged.
    """

    frametype: str
    source: str
    confidence: str
    note: str = ""


def decide_type(header, path, *, aliases=None, override=None, pixels=None,
                exptime=None, guess=True):
    """The one rule for what a frame is.

    In order: the user's choice for this file (``override``), the user's
    glob (``aliases['files']``), the header's type keyword read through the
    user's spellings (``aliases['type']``).  The pixels are read only when
    the header has no type (if ``guess``) or the file name names another
    calibration type than the header: a flat saved as 'Light Frame' and
    named ``flat-001.fits`` is a flat if its pixels are smooth, bright and
    starless; ``flat-field-target.fits`` with stars stays a light.  A frame
    whose evidence disagrees or fits no type is 'unknown' (kept out of
    masters) and says why.

    Parameters
    ----------
    header : astropy.io.fits.Header
    path : str
        The file, for its name and the globs.
    aliases : dict, optional
        ``{'type': {...}, 'files': {...}}`` (see `load_aliases`).
    override : str, optional
        The type the user chose for this very file.
    pixels : callable, optional
        Returns the 2-D image; called at most once, only when needed.
    exptime : float, optional
        Exposure (defaults to the header's).
    guess : bool
        Read the pixels of a frame with no type in its header.

    Returns
    -------
    TypeDecision
    """
    aliases = aliases or {}
    if exptime is None:
        exptime = exptime_from_header(header)
    header_type, keyword = type_from_header(header, aliases.get("type"))
    if override:
        return _user_decision(override, header_type, "set by you for this file")
    chosen = file_type_for(path, aliases.get("files"))
    if chosen:
        kind, pattern = chosen
        return _user_decision(kind, header_type, f"set by you for files '{pattern}'")
    named = type_from_name(path)
    if header_type != "unknown":
        if named is None or named == header_type or header_type != "light":
            return TypeDecision(header_type, keyword, "certain")
        return _contradicted(header_type, keyword, named, pixels, exptime)
    if not guess or pixels is None:
        return TypeDecision("unknown", "unknown", "none",
                            "no frame type in the header; pixels not read")
    return _from_evidence(named, pixels, exptime)


def _user_decision(kind, header_type, why):
    if header_type == kind:
        return TypeDecision(kind, "user", "certain")  # nothing to explain
    note = why if header_type == "unknown" else f"header says {header_type}; {why}: {kind}"
    return TypeDecision(kind, "user", "certain", note)


def _contradicted(header_type, keyword, named, pixels, exptime):
    """A light whose file name says bias, dark or flat: the pixels settle it.

    Unreadable pixels raise (`FrameError` from ``pixels``): such a file is
    no usable frame of any type.
    """
    if pixels is None:
        return TypeDecision(header_type, keyword, "certain",
                            f"file name says {named}, pixels not read: kept as "
                            f"{header_type} ({keyword})")
    stats = measure_pixels(pixels())
    agree, described = _pixels_agree(stats, named, exptime)
    if agree:
        return TypeDecision(named, "evidence", "high",
                            f"header says {header_type}; file name and pixels say "
                            f"{named} ({described})")
    return TypeDecision(header_type, keyword, "certain",
                        f"file name says {named} but the pixels do not ({described}): "
                        f"kept as {header_type} ({keyword})")


def _from_evidence(named, pixels, exptime):
    """No type in the header: file name and pixels, or 'unknown'."""
    stats = measure_pixels(pixels())
    if named is not None:
        agree, described = _pixels_agree(stats, named, exptime)
        if agree:
            return TypeDecision(named, "guess", "high",
                                f"no frame type in the header; file name and pixels "
                                f"say {named} ({described})")
        return TypeDecision("unknown", "unknown", "none",
                            f"no frame type in the header; file name says {named} but "
                            f"the pixels do not ({described}): left unknown, not used "
                            "in masters")
    kind, confident, described = _pixels_say(stats, exptime)
    if kind == "unknown":
        return TypeDecision("unknown", "unknown", "none",
                            f"no frame type in the header and the pixels fit no type "
                            f"({described}): left unknown, not used in masters")
    sure = "a guess from the pixels alone" if confident else \
        "an uncertain guess from the pixels alone"
    return TypeDecision(kind, "guess", "low",
                        f"no frame type in the header; pixels say {kind} "
                        f"({described}) - {sure}")


# -- filters ------------------------------------------------------------------------

# Header values that mean "no filter": one way to say it, None.
_NO_FILTER = {"", "none", "(none)", "n/a", "na", "null", "-", "--"}


def _filter_letters(name):
    """``name`` without spaces; None for a missing filter ('', 'None', 'N/A'...)."""
    if name is None or str(name).strip().lower() in _NO_FILTER:
        return None
    return "".join(str(name).split())


def filter_match(wanted, have):
    """How filter name ``have`` matches ``wanted``: ``'exact'``, ``'case'`` or None.

    Spaces never count (``' R '`` is ``'R'``, ``'H alpha'`` is
    ``'Halpha'``); case does: ``'R'`` (Johnson) and ``'r'`` (SDSS) are
    different filters, so a case-only match is ``'case'``, for the caller
    to use only when there is no exact one, and with a warning.  Two
    missing filters (None, blank, 'None', 'N/A'...) match exactly; a
    missing and a named one not at all.

    Examples
    --------
    >>> filter_match('R', 'R '), filter_match('R', 'r'), filter_match('R', 'V')
    ('exact', 'case', None)
    """
    a, b = _filter_letters(wanted), _filter_letters(have)
    if a is None or b is None:
        return "exact" if a is None and b is None else None
    if a == b:
        return "exact"
    if a.lower() == b.lower():
        return "case"
    return None


def _case_matters(name):
    """One-letter band names differ by case (UBVRI, ugriz)."""
    return len(re.sub(r"[^A-Za-z0-9]", "", name)) <= 1


def _alias_for(name, aliases):
    """The user's name for filter ``name``: exact spelling first, then any case."""
    if name in aliases:
        return aliases[name]
    stripped = {spelling.strip(): ours for spelling, ours in aliases.items()}
    if name in stripped:
        return stripped[name]
    if _case_matters(name):
        return None
    folded = [ours for spelling, ours in stripped.items()
              if spelling.lower() == name.lower() and not _case_matters(spelling)]
    return folded[0] if folded else None


def filter_from_header(header, aliases=None):
    """Filter name (stripped) from FILTER, FILTNAM, FILTER1..., or None.

    ``aliases`` maps the user's spellings to one name, e.g.
    ``{'Halpha': 'Ha'}``: an exact spelling first, then the same letters
    in any case (``'HALPHA'``) - but never for one-letter bands, where
    case is the filter (``'R'`` is Johnson, ``'r'`` SDSS).  Values that
    mean no filter (blank, 'None', '(none)', 'N/A') give None.
    """
    for key in FILTER_KEYWORDS:
        value = header.get(key)
        if value is None:
            continue
        name = str(value).strip()
        if name.lower() in _NO_FILTER:
            continue
        if aliases:
            ours = _alias_for(name, aliases)
            if ours is not None:
                return ours
        return name
    return None


# -- the user's vocabulary file ------------------------------------------------------

#: A vocabulary file larger than this is refused (it is a few lines).
MAX_VOCABULARY_BYTES = 1 << 20
_VOCABULARY_SECTIONS = ("type", "filter", "files")


class VocabularyError(CcdcalError):
    """The user's vocabulary (aliases) file cannot be used; the message names
    the file and the entry that is wrong."""


def default_aliases_path():
    """Where the user's spellings live: beside Ginga's own settings.

    ``$GINGA_HOME/ccdcal_aliases.json`` (``~/.ginga`` by default), so the
    CCD Browser plugin and the command line share them.
    """
    home = os.environ.get("GINGA_HOME") or os.path.join(os.path.expanduser("~"), ".ginga")
    return os.path.join(home, "ccdcal_aliases.json")


def _check_vocabulary(raw, where):
    """``raw`` (parsed JSON) as ``{'type': {...}, 'filter': {...}, 'files': {...}}``.

    Raises `VocabularyError` naming the first wrong entry.
    """
    if not isinstance(raw, dict):
        raise VocabularyError(f"{where}: must be a JSON object with 'type', 'filter' "
                              "and/or 'files' mappings")
    for section in raw:
        if section not in _VOCABULARY_SECTIONS:
            raise VocabularyError(f"{where}: unknown section '{section}'; use 'type', "
                                  "'filter' or 'files'")
    clean = {}
    for section in _VOCABULARY_SECTIONS:
        entries = raw.get(section, {})
        if not isinstance(entries, dict):
            raise VocabularyError(f"{where}: '{section}' must map names to names, "
                                  f"not {_json_kind(entries)}")
        for key, value in entries.items():
            if not str(key).strip():
                raise VocabularyError(f"{where}: '{section}' has an empty name")
            if not isinstance(value, str) or not value.strip():
                raise VocabularyError(f"{where}: '{section}' entry '{key}' must be a "
                                      f"name, not {_json_kind(value)}")
            if section != "filter" and value not in FRAME_TYPES:
                raise VocabularyError(f"{where}: '{section}' entry '{key}': unknown frame "
                                      f"type(s) {value}; use one of {', '.join(FRAME_TYPES)}")
        if entries or section != "files":
            clean[section] = {str(k): v.strip() for k, v in entries.items()}
    return clean


def _json_kind(value):
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "an empty name", bool: "true/false",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _read_vocabulary(path):
    """The parsed JSON of ``path``, read up to `MAX_VOCABULARY_BYTES` and no more."""
    import json
    try:
        with open(path, "rb") as stream:
            text = stream.read(MAX_VOCABULARY_BYTES + 1)
    except OSError as exc:
        raise VocabularyError(f"{path}: cannot read the vocabulary file "
                              f"({exc.strerror or exc})") from None
    if len(text) > MAX_VOCABULARY_BYTES:
        raise VocabularyError(f"{path}: too big for a vocabulary file (over "
                              f"{MAX_VOCABULARY_BYTES // 2**20} MiB)")
    try:
        return json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        reason = exc if isinstance(exc, ValueError) else "nested too deeply"
        raise VocabularyError(f"{path}: not a JSON vocabulary file ({reason})") from None


def load_aliases(path):
    """Read the user's vocabulary: spellings and file types, in a small JSON file.

    The file maps header values to ours, for frame types and filters, and
    file-name globs to frame types (``--type flat='flat-*'``)::

        {"type": {"calib-z": "bias", "sky": "flat"},
         "filter": {"Halpha": "Ha", "H-alpha": "Ha", "O[III]": "OIII"},
         "files": {"flat-*": "flat"}}

    Returns
    -------
    dict
        ``{'type': {...}, 'filter': {...}}``, and ``'files': {...}`` when
        the file has any globs.

    Raises
    ------
    VocabularyError
        Unreadable, over `MAX_VOCABULARY_BYTES`, not JSON, or an entry of
        the wrong shape (the message names it).
    """
    return _check_vocabulary(_read_vocabulary(os.fspath(path)), os.fspath(path))


def save_aliases(aliases, path=None):
    """Write the vocabulary as JSON (atomically); returns the path written.

    Sections missing from ``aliases`` are kept from the file already there,
    so saving the browser's spellings does not drop the ``--type`` globs.
    """
    import json
    import tempfile
    path = os.fspath(path or default_aliases_path())
    given = {k: v for k, v in dict(aliases).items() if v is not None}
    clean = _check_vocabulary(given, "vocabulary")
    missing = [s for s in _VOCABULARY_SECTIONS if s not in given]
    if missing and os.path.exists(path):
        old = load_aliases(path)
        clean.update({s: old[s] for s in missing if s in old})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(clean, stream, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def add_file_types(file_types, path=None):
    """Add ``{glob: type}`` to the vocabulary file's ``files`` and save it.

    What ``--type flat='flat-*'`` does; the browser and later commands read
    the same file.  Returns the whole vocabulary now in force.
    """
    path = os.fspath(path or default_aliases_path())
    current = load_aliases(path) if os.path.exists(path) else {"type": {}, "filter": {}}
    current["files"] = {**current.get("files", {}), **file_types}
    try:
        save_aliases(current, path)
    except OSError as exc:
        raise VocabularyError(f"{path}: cannot save the vocabulary file "
                              f"({exc.strerror or exc})") from None
    return current
