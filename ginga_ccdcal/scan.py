"""Scanning a folder of raw frames into a table of header values.

Only headers are read (pixels just for the rare frame whose header has no
type, or whose file name names another type than its header), so a folder
of thousands of frames scans in seconds.  A rescan given the previous
result re-reads only files that are new or changed, which is what a
browser refresh and the watch mode need.
"""

import os
from dataclasses import dataclass, field

from . import classify
from .errors import FrameError
from .fitsfile import is_fits_name, read_header, read_image
from .progress import check, report

__all__ = ["Frame", "Problem", "ScanResult", "scan_folder", "scan_files",
           "frame_from_file", "is_product", "PRODUCT_KEYWORD"]

#: Every file this package writes carries this keyword (our version), so
#: a scan never mistakes a master or a calibrated frame for a raw one.
PRODUCT_KEYWORD = "CCDCALV"

# Frame attributes that `Frame.value` serves before looking in the header.
_DERIVED = ("frametype", "exptime", "filter", "ccd_temp", "binning", "shape",
            "type_source", "type_note", "type_confidence", "name")


@dataclass
class Frame:
    """One raw frame: where it is, what it is, and the header it came with.

    Attributes
    ----------
    path : str
    header : astropy.io.fits.Header
        Header of the image HDU (HDU ``hdu``).
    hdu : int
    shape : tuple
        Image shape (rows, columns).
    frametype : str
        'bias', 'dark', 'flat', 'light' or 'unknown'.
    type_source : str
        The keyword the type came from (e.g. ``'IMAGETYP'``), ``'guess'``
        when the header has none and the pixels (with the file name) gave
        it, ``'evidence'`` when file name and pixels overruled the header,
        ``'user'`` when the user set it (file or glob), ``'unknown'``.
    type_note : str
        Why the type is what it is, when not plainly the header's, as a
        sentence for every surface: ``'header says light; file name and
        pixels say flat (level 20000 ADU, smooth, no stars)'``.  Empty when
        the header's type stands unchallenged.
    type_confidence : str
        ``'certain'`` (header, user), ``'high'`` (file name and pixels
        agree), ``'low'`` (pixels alone), ``'none'`` (unknown).
    exptime, filter, ccd_temp : float, str, float or None
    binning : (int, int)
    mtime, size : float, int
        File modification time and size, used to notice changes.
    """

    path: str
    header: object
    hdu: int
    shape: tuple
    frametype: str
    type_source: str
    exptime: float = None
    filter: str = None
    ccd_temp: float = None
    binning: tuple = (1, 1)
    mtime: float = 0.0
    size: int = 0
    type_note: str = ""
    type_confidence: str = "certain"
    # What the type was decided from, short of pixels: a rescan re-reads
    # the file when the user's choices for it change.
    type_inputs: tuple = field(default=None, repr=False, compare=False)

    @property
    def name(self):
        return os.path.basename(self.path)

    @property
    def guessed(self):
        return self.type_source == "guess"

    def value(self, key):
        """A derived attribute (``'frametype'``, ``'exptime'``...) or header value.

        Header keywords are looked up case-insensitively; a missing one
        gives None.
        """
        lowered = key.lower()
        if lowered in _DERIVED:
            return getattr(self, lowered)
        return self.header.get(key.upper())


@dataclass
class Problem:
    """A file the scan could not use, and why (one line for the user)."""

    path: str
    message: str

    def __str__(self):
        return f"{self.path}: {self.message}"


@dataclass
class ScanResult:
    """What a scan found: usable frames, problem files, and our own products."""

    folder: str
    frames: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    products: list = field(default_factory=list)

    def of_type(self, frametype):
        """Frames of one type, in path order."""
        return [f for f in self.frames if f.frametype == frametype]

    def counts(self):
        """Number of frames of each type, e.g. ``{'bias': 10, ...}``."""
        counts = {}
        for f in self.frames:
            counts[f.frametype] = counts.get(f.frametype, 0) + 1
        return counts

    def type_notes(self, guessed=True):
        """One line per frame whose type is not plainly its header's, or unknown.

        ``'night/flat-001.fits: flat - header says light; file name and
        pixels say flat (...)'``, in path order: what every front end shows
        so the user can check (and settle it with ``--type`` or Set type).
        ``guessed=False`` leaves out the frames `Frame.guessed` marks, for
        a caller that lists those already.
        """
        return [f"{f.path}: {f.frametype} - {f.type_note or 'no frame type'}"
                for f in sorted(self.frames, key=lambda f: f.path)
                if (f.type_note or f.frametype == "unknown")
                and (guessed or not f.guessed)]

    def table(self, keys=("frametype", "type_source", "exptime", "filter",
                          "ccd_temp")):
        """The scan as an `astropy.table.Table` (one row per frame)."""
        from astropy.table import Table
        rows = [[f.path] + [f.value(k) for k in keys] for f in self.frames]
        return Table(rows=rows or None, names=("file",) + tuple(keys))


def is_product(header):
    """True for a header this package wrote (master or calibrated frame)."""
    return PRODUCT_KEYWORD in header


def frame_from_file(path, *, overrides=None, aliases=None, guess=True):
    """Read one file's header into a `Frame`.

    Parameters
    ----------
    path : str
    overrides : dict, optional
        ``{path: frametype}`` set by the user; wins over everything.
    aliases : dict, optional
        The user's vocabulary: ``{'type': {'calib-z': 'bias'},
        'filter': {'Halpha': 'Ha'}, 'files': {'flat-*': 'flat'}}`` (see
        `classify.load_aliases`).
    guess : bool
        Read the pixels of a frame whose header has no type.  (A frame
        whose file name contradicts its header's type is always checked:
        see `classify.decide_type`, the one rule every caller goes through.)

    Raises
    ------
    FrameError
        The file is not a usable frame.
    """
    stat = os.stat(path)
    info = read_header(path)
    header = info.header
    exptime = classify.exptime_from_header(header)
    aliases = aliases or {}
    decision = classify.decide_type(
        header, path, aliases=aliases, override=(overrides or {}).get(path),
        pixels=lambda: read_image(path)[0], exptime=exptime, guess=guess)
    return Frame(path=path, header=header, hdu=info.hdu, shape=tuple(info.shape),
                 frametype=decision.frametype, type_source=decision.source,
                 exptime=exptime,
                 filter=classify.filter_from_header(header, aliases.get("filter")),
                 ccd_temp=classify.temperature_from_header(header),
                 binning=classify.binning_from_header(header),
                 mtime=stat.st_mtime, size=stat.st_size, type_note=decision.note,
                 type_confidence=decision.confidence,
                 type_inputs=_type_inputs(path, overrides, aliases))


def _type_inputs(path, overrides, aliases):
    """The user's choices that, with the file itself, decide ``path``'s type."""
    aliases = aliases or {}
    return ((overrides or {}).get(path),
            tuple(sorted((aliases.get("type") or {}).items())),
            tuple(sorted((aliases.get("files") or {}).items())))


def _list_fits(folder, recursive):
    found = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(root, f) for f in files if is_fits_name(f))
    else:
        found = [os.path.join(folder, f) for f in os.listdir(folder)
                 if is_fits_name(f) and os.path.isfile(os.path.join(folder, f))]
    return sorted(found)


def scan_files(paths, *, folder="", previous=None, overrides=None,
               aliases=None, guess=True, progress=None, cancel=None):
    """Scan an explicit list of files; see `scan_folder` for the arguments."""
    known = {}
    if previous is not None:
        known = {f.path: f for f in previous.frames}
    result = ScanResult(folder=str(folder))
    total = len(paths)
    for i, path in enumerate(paths):
        check(cancel)
        old = known.get(path)
        try:
            stat = os.stat(path)
            if (old is not None and old.mtime == stat.st_mtime
                    and old.size == stat.st_size
                    and old.type_inputs == _type_inputs(path, overrides, aliases)):
                result.frames.append(old)
            else:
                frame = frame_from_file(path, overrides=overrides,
                                        aliases=aliases, guess=guess)
                if is_product(frame.header):
                    result.products.append(path)
                else:
                    result.frames.append(frame)
        except FrameError as exc:
            result.problems.append(Problem(path, exc.problem))
        except OSError as exc:
            result.problems.append(Problem(path, f"cannot read ({exc.strerror or exc})"))
        report(progress, i + 1, total, os.path.basename(path))
    return result


def scan_folder(folder, *, recursive=True, previous=None, overrides=None,
                aliases=None, guess=True, progress=None, cancel=None):
    """Read the headers of every FITS frame under ``folder``.

    Parameters
    ----------
    folder : str or path-like
    recursive : bool
        Descend into sub-folders (hidden ones are skipped).
    previous : ScanResult, optional
        An earlier scan of the same folder: files whose size and
        modification time are unchanged are taken from it unread.
    overrides : dict, optional
        ``{path: frametype}`` chosen by the user.
    aliases : dict, optional
        The user's vocabulary (spellings and file-type globs), see
        `frame_from_file`.
    guess : bool
        Guess missing types from the pixels (marked ``type_source='guess'``).
    progress, cancel
        See `ginga_ccdcal.progress`.

    Returns
    -------
    ScanResult
        Frames that could be read, problems (file and reason) for those
        that could not, and our own products (skipped).

    Raises
    ------
    FrameError
        ``folder`` does not exist or is not a folder.

    Examples
    --------
    >>> result = scan_folder('night/')                     # doctest: +SKIP
    >>> result.counts()                                    # doctest: +SKIP
    {'bias': 10, 'dark': 20, 'flat': 10, 'light': 38}
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FrameError(folder, "no such folder")
    paths = _list_fits(folder, recursive)
    return scan_files(paths, folder=folder, previous=previous,
                      overrides=overrides, aliases=aliases, guess=guess,
                      progress=progress, cancel=cancel)
