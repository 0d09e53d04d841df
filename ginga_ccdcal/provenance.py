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
========  ==============================================================

Sentences (which files went in, why a master was chosen) go to HISTORY.
"""

import datetime
import hashlib
import os

from . import __version__
from .scan import PRODUCT_KEYWORD

__all__ = ["file_checksum", "stamp", "add_history", "record_master",
           "record_sources"]

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
    """Add a HISTORY line prefixed with our name (long text wraps)."""
    header.add_history(f"ccdcal: {text}")


def record_master(header, role, path, scale=None, reason=None):
    """Record the master used for ``role`` ('bias', 'dark' or 'flat')."""
    tag = role.upper()[:4]
    header[f"{tag}FILE"] = (os.path.basename(path), f"master {role} used")
    header[f"{tag}SUM"] = (file_checksum(path), f"SHA-1 (16 hex) of master {role}")
    if scale is not None:
        header[f"{tag}SCL"] = (float(scale), f"factor master {role} was scaled by")
    add_history(header, f"{role}: {path}")
    if reason:
        add_history(header, f"{role} chosen because {reason}")


def record_sources(header, paths):
    """Record the raw frames a master was combined from."""
    header["NCOMBINE"] = (len(paths), "number of frames combined")
    for path in paths:
        add_history(header, f"input {path}")
