"""What goes into output headers so every product says how it was made.

Keywords written (all products carry ``CCDCALV``):

========  ==============================================================
CCDCALV   ginga_ccdcal version that wrote the file
IMAGETYP  'MASTER BIAS' / 'MASTER DARK' / 'MASTER FLAT' for masters
MSTRTYPE  bias / dark / flat (masters)
NCOMBINE  number of frames combined (masters)
COMBMETH  average / median / sum, CLIPPED T/F, CLIPLO, CLIPHI (masters)
NREJECT   pixels rejected by sigma clipping (clipped masters)
DATE-BEG  DATE-OBS of the first input frame (masters; DATE-END the last)
DATE-AVG  mean mid-exposure time of the inputs (masters; MJD-AVG too)
CCDTMIN   lowest input CCD temperature (masters; CCDTMAX the highest,
          CCD-TEMP their mean)
BIASSUB   T if the bias was subtracted (darks; flats: from every flat)
DARKSUB   T if a dark was subtracted (flats: from every flat)
NDARKSUB  number of flats a dark was subtracted from (flats)
FLATNORM  statistic the flat was normalised by: mean or median (flats)
NLOWFLAT  pixels of a master flat at or below zero, or undefined
CALSTAT   steps applied to a light: O overscan, T trim, B bias, D dark,
          F flat, C cosmic rays cleaned
BIASFILE  master bias used, BIASSUM its checksum (same for DARK, FLAT)
DARKSCL   factor the master dark was scaled by
DARKFIT   T if that factor was fitted to the light
CRCLEAN   pixels cleaned of cosmic rays
CALMISS   steps that could not be applied (no master), e.g. 'bias,dark'
FLATLOW   pixels where the flat was at or near zero (set to 0, masked)
========  ==============================================================

Sentences (which files went in, why a master was chosen) go to HISTORY.
Files are named relative to their folder (the raw folder, the masters
folder), never by the machine's absolute path: products move between
machines, and a path can say more about its owner than it should.

`steps_done` is the one place that decides which calibration steps a
frame's header says were already done (by the camera software, IRAF,
ccdproc or by us), so that no step is done twice.
"""

import datetime
import hashlib
import os

from . import __version__
from .fitsfile import printable
from .scan import PRODUCT_KEYWORD

__all__ = ["file_checksum", "stamp", "add_history", "record_master",
           "record_sources", "relative_name", "steps_done", "camera_pedestal",
           "remove_pedestal_cards", "PEDESTAL_KEYWORDS"]

_checksums = {}


def file_checksum(path):
    """SHA-1 of a file's bytes (hex, first 16 characters), cached by mtime."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    if key not in _checksums:
        digest = hashlib.sha1()
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        _checksums[key] = digest.hexdigest()[:16]
    return _checksums[key]


def stamp(header, what):
    """Mark ``header`` as a product of this package and say what it is."""
    header[PRODUCT_KEYWORD] = (__version__, "ginga_ccdcal version")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    header["CCDCALDT"] = (now, "UTC time ginga_ccdcal wrote this file")
    add_history(header, f"{what} by ginga_ccdcal {__version__} at {now}")


def add_history(header, text):
    """Add a HISTORY line prefixed with our name (long text wraps).

    Characters a FITS header cannot hold (a file name with an accent, a
    tab from a hostile header) are escaped visibly (`fitsfile.printable`).
    """
    header.add_history(f"ccdcal: {printable(text)}")


def relative_name(path, root=None):
    """``path`` as a header should name it: relative to ``root``.

    Parameters
    ----------
    path : str or path-like
    root : str or path-like, optional
        The folder the name is relative to (the raw folder, the masters
        folder).  Without one, or when ``path`` is not below it, the file
        name alone: a header never carries the machine's absolute path.

    Returns
    -------
    str
        With '/' between folders whatever the system.

    Examples
    --------
    >>> relative_name("/data/night1/sub/a.fit", "/data/night1")
    'sub/a.fit'
    >>> relative_name("/data/night1/a.fit")
    'a.fit'
    """
    path = os.path.abspath(os.fspath(path))
    if root is not None:
        rel = os.path.relpath(path, os.path.abspath(os.fspath(root)))
        if not rel.startswith(os.pardir):
            return rel.replace(os.sep, "/")
    return os.path.basename(path)


def record_master(header, role, path, scale=None, reason=None):
    """Record the master used for ``role`` ('bias', 'dark' or 'flat').

    The master is named by its file name (masters live side by side in one
    folder), with its checksum to tell versions apart.
    """
    tag = role.upper()[:4]
    name = relative_name(path)
    header[f"{tag}FILE"] = (name, f"master {role} used")
    header[f"{tag}SUM"] = (file_checksum(path), f"SHA-1 (16 hex) of master {role}")
    if scale is not None:
        header[f"{tag}SCL"] = (float(scale), f"factor master {role} was scaled by")
    add_history(header, f"{role}: {name}")
    if reason:
        add_history(header, f"{role} chosen because {reason}")


def record_sources(header, paths, root=None):
    """Record the raw frames a master was combined from.

    Parameters
    ----------
    header : astropy.io.fits.Header
    paths : list of str
    root : str, optional
        The raw folder the names are relative to; by default the folder
        the inputs have in common, so sub-folders still tell them apart.
    """
    header["NCOMBINE"] = (len(paths), "number of frames combined")
    if root is None and paths:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(os.fspath(p)))
                                   for p in paths])
    for path in paths:
        add_history(header, f"input {relative_name(path, root)}")


# -- steps already done ---------------------------------------------------------

#: HISTORY lines camera software writes when it subtracted a dark itself
#: (CCDSoft, SBIG CCDOps; matched without regard to case).
_DARK_HISTORY = ("auto-dark subtraction", "dark subtraction")
#: Keywords that say a step was done: IRAF's ccdproc (ZEROCOR, DARKCOR,
#: FLATCOR) and astropy ccdproc's own (subbias, subdark, flatcor).
_STEP_KEYWORDS = {"bias": (("ZEROCOR", "IRAF"), ("SUBBIAS", "ccdproc")),
                  "dark": (("DARKCOR", "IRAF"), ("SUBDARK", "ccdproc")),
                  "flat": (("FLATCOR", "IRAF/ccdproc"),)}
#: CALSTAT letters (MaxIm DL writes 'BDF'; so do we, with O, T and C).
_CALSTAT_LETTERS = {"bias": "B", "dark": "D", "flat": "F"}
_DONE_BY = {"bias": "subtracted", "dark": "subtracted", "flat": "divided"}


def steps_done(header):
    """Which calibration steps ``header`` says were already done, and why.

    The one rule for "is this step done already?": calibration skips
    these steps, and the match explanation and the output header say why.

    Evidence read: CCDSoft's ``HISTORY Auto-Dark Subtraction`` or
    ``Dark Subtraction``; the ``CALSTAT`` letters of MaxIm DL and of this
    package (B, D, F); IRAF's ``ZEROCOR``, ``DARKCOR``, ``FLATCOR``;
    astropy ccdproc's ``SUBBIAS``, ``SUBDARK``, ``FLATCOR``.

    A dark subtracted without a separate bias subtraction also removed the
    bias: camera software subtracts a whole dark frame, which contains the
    bias (CCDSoft's auto-dark takes one just before the light).  A careful
    observer would not subtract the bias again from such a frame, so the
    bias counts as done, with that reason.

    Parameters
    ----------
    header : astropy.io.fits.Header or None

    Returns
    -------
    dict
        ``{role: reason}`` for 'bias', 'dark', 'flat'; the reason is one
        sentence, e.g. ``"already subtracted by the camera software
        (HISTORY 'Auto-Dark Subtraction')"``.

    Examples
    --------
    >>> from astropy.io import fits
    >>> steps_done(fits.Header([("HISTORY", "Auto-Dark Subtraction")]))["dark"]
    "already subtracted by the camera software (HISTORY 'Auto-Dark Subtraction')"
    """
    if header is None:
        return {}
    done = {}

    def mark(role, source):
        done.setdefault(role, f"already {_DONE_BY[role]} by {source}")

    for line in header.get("HISTORY", []) if "HISTORY" in header else []:
        text = str(line).strip()
        if text.lower().startswith(_DARK_HISTORY):
            mark("dark", f"the camera software (HISTORY '{text}')")
    calstat = header.get("CALSTAT")
    if isinstance(calstat, str):
        for role, letter in _CALSTAT_LETTERS.items():
            if letter in calstat.upper():
                mark(role, f"the camera software (CALSTAT = '{calstat.strip()}')")
    for role, keys in _STEP_KEYWORDS.items():
        for key, software in keys:
            if key in header:
                mark(role, f"{software} ({key} in the header)")
    if "dark" in done and "bias" not in done:
        done["bias"] = ("removed with the dark, " + done["dark"]
                        + ": a dark subtracted without a separate bias contains the bias")
    return done


def camera_pedestal(header):
    """The pedestal camera software added after subtracting a dark, or None.

    The one rule for camera pedestals.  SBIG's CCDOps and CCDSoft add a
    constant (usually 100 ADU) to a dark-subtracted frame so that no
    pixel goes negative, and write ``PEDESTAL = -100`` ("correction to
    add for zero-based ADU").  Some CCDSoft set-ups write the amount
    added instead, as ``BIAS = 100`` ("pedestal added to dark-subtracted
    images"); it reads as a correction of -100.  ``PEDESTAL``, when
    present, wins.  It must come off before the flat: a constant divided
    by the flat is no longer a constant.

    Only a frame whose header says a bias or dark was already subtracted
    (`steps_done`) is trusted to carry one: on a raw frame the camera
    added nothing, and ``BIAS`` there is a label, not pixels to remove.

    Returns
    -------
    float or None
        The value to add to the pixels (negative), None if there is none.

    Examples
    --------
    >>> from astropy.io import fits
    >>> header = fits.Header([("BIAS", 100), ("HISTORY", "Auto-Dark Subtraction")])
    >>> camera_pedestal(header)
    -100.0
    """
    if header is None or not {"bias", "dark"} & set(steps_done(header)):
        return None
    if "PEDESTAL" in header:
        correction = _number(header["PEDESTAL"])
    else:
        added = _number(header.get("BIAS"))
        correction = None if added is None else -added
    return correction or None


#: The cards that carry a camera pedestal (`camera_pedestal`).
PEDESTAL_KEYWORDS = ("PEDESTAL", "BIAS")


def remove_pedestal_cards(header):
    """Remove the pedestal cards once the pedestal is taken off the pixels,
    so that no later reader takes it off again."""
    for key in PEDESTAL_KEYWORDS:
        header.remove(key, ignore_missing=True, remove_all=True)


def _number(value):
    """``value`` as a float if it is a (non-boolean) number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
