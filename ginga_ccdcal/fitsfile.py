"""Reading FITS frames: find the image, read its header fast, explain failures.

Cameras write plain FITS, multi-extension files whose image is in HDU 1,
tile-compressed ``.fz`` and gzipped files.  Everything here answers with a
:class:`~ginga_ccdcal.errors.FrameError` naming the problem instead of an
astropy traceback.
"""

import gzip
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from .errors import FrameError

__all__ = ["FITS_SUFFIXES", "is_fits_name", "HeaderInfo", "LazyHeader",
           "read_header", "read_image", "is_complete"]

#: File names the scanner treats as FITS frames (case-insensitive).
FITS_SUFFIXES = (".fit", ".fits", ".fts", ".fit.gz", ".fits.gz", ".fts.gz",
                 ".fit.fz", ".fits.fz", ".fts.fz", ".fz")

_BLOCK = 2880
_CARD = 80


def is_fits_name(name):
    """True if ``name`` ends like a FITS file we read."""
    return name.lower().endswith(FITS_SUFFIXES)


@dataclass
class HeaderInfo:
    """The header of a frame's image HDU and where that image lives.

    ``header`` is an `astropy.io.fits.Header` or, for plain files read the
    quick way, a `LazyHeader` that behaves as one.
    """

    header: object
    hdu: int
    shape: tuple


_STRING = re.compile(r"'((?:[^']|'')*)'")
_INT = re.compile(r"[+-]?\d+$")


def _card_values(text):
    """Values of the simple cards of a header text, parsed the quick way.

    Returns ``(values, hard)``: a dict of keyword -> value for cards whose
    value is a plain string, logical, integer or real, and the set of
    keywords whose cards need astropy's full parser (long strings with
    CONTINUE, complex numbers, anything unusual).  COMMENT, HISTORY and
    HIERARCH cards are left to astropy as well.
    """
    values, hard = {}, set()
    for start in range(0, len(text), _CARD):
        card = text[start:start + _CARD]
        key = card[:8].rstrip()
        if key == "END":
            break
        if key in ("HIERARCH", "CONTINUE") or key != key.upper() or (
                "=" in card[:10] and card[8:10] != "= "):
            hard.add(key)  # not standard: astropy knows the dialects
            continue
        if card[8:10] != "= " or key in values:
            continue
        field = card[10:].lstrip()
        if field.startswith("'"):
            match = _STRING.match(field)
            value = match.group(1).replace("''", "'").rstrip() if match else None
            if value is None or value.endswith("&"):
                hard.add(key)
                continue
        else:
            token = field.split("/", 1)[0].strip()
            if token == "T":
                value = True
            elif token == "F":
                value = False
            elif _INT.match(token):
                value = int(token)
            else:
                try:
                    value = float(token.replace("D", "E"))
                except ValueError:
                    hard.add(key)
                    continue
        values[key] = value
    return values, hard


class LazyHeader:
    """A FITS header whose common keyword look-ups skip astropy's parser.

    Scanning a night needs a dozen values from each of thousands of
    headers; parsing every card into an `astropy.io.fits.Header` costs
    most of the scan.  Look-ups (``h[key]``, ``h.get``, ``key in h``) of
    plain cards are served from a quick parse; anything else (``copy()``,
    ``cards``, ``remove``, iteration, unusual cards) builds the full
    astropy header on first use and delegates to it, so the object behaves
    as the header it stands for.
    """

    def __init__(self, text):
        self._text = text
        self._values, self._hard = _card_values(text)
        self._header = None

    def astropy(self):
        """The full `astropy.io.fits.Header` (parsed once, then kept)."""
        if self._header is None:
            self._header = fits.Header.fromstring(self._text)
        return self._header

    def _answers(self, key):
        """True if the quick parse alone can say whether/what ``key`` is."""
        return (isinstance(key, str) and not self._hard
                and key.upper() not in ("COMMENT", "HISTORY", ""))

    def __getitem__(self, key):
        if self._answers(key) and key.upper() in self._values:
            return self._values[key.upper()]
        return self.astropy()[key]

    def get(self, key, default=None):
        if self._answers(key):
            # The quick parse saw every plain card: absent means absent.
            return self._values.get(key.upper(), default)
        return self.astropy().get(key, default)

    def __contains__(self, key):
        if self._answers(key):
            return key.upper() in self._values
        return key in self.astropy()

    def __iter__(self):
        return iter(self.astropy())

    def __len__(self):
        return len(self.astropy())

    def copy(self):
        return self.astropy().copy()

    def tostring(self, *args, **kwargs):
        return self.astropy().tostring(*args, **kwargs)

    def __reduce__(self):
        # Pickled (to a cluster worker) and copied as the header text: an
        # object being rebuilt has no _header yet for __getattr__ to use.
        return (LazyHeader, (self._text,))

    def __getattr__(self, name):
        # Everything else a Header has (cards, comments, remove, keys...).
        return getattr(self.astropy(), name)

    def __repr__(self):
        return repr(self.astropy())


def _data_bytes(header):
    """Bytes of data (padded to whole blocks) that ``header`` announces."""
    naxis = header.get("NAXIS", 0)
    if not naxis:
        return 0
    n = abs(header.get("BITPIX", 8)) // 8
    for i in range(1, naxis + 1):
        n *= header.get(f"NAXIS{i}", 0)
    n = header.get("GCOUNT", 1) * (header.get("PCOUNT", 0) + n)
    return -(-n // _BLOCK) * _BLOCK


def _image_shape(header, compressed=False):
    prefix = "ZNAXIS" if compressed else "NAXIS"
    naxis = header.get(prefix, 0)
    # FITS lists the fastest axis first; numpy wants it last.
    return tuple(int(header.get(f"{prefix}{i}", 0)) for i in range(naxis, 0, -1))


def _check_image_shape(path, shape):
    if len(shape) == 3 and shape[0] == 1:
        return shape[1:]
    if len(shape) != 2:
        raise FrameError(path, f"not a 2-D image (data shape {shape})")
    return shape


def _read_primary_header_fast(path, size):
    """Parse the primary header block by block; None if it is not simple."""
    with open(path, "rb") as f:
        blocks = []
        while True:
            block = f.read(_BLOCK)
            if len(block) < _BLOCK:
                if not blocks and not block:
                    raise FrameError(path, "empty file (0 bytes)")
                raise FrameError(path, "truncated FITS (header ends early); "
                                 "is the file still being written?")
            if not blocks and not block.startswith(b"SIMPLE  ="):
                raise FrameError(path, "not a FITS file (no SIMPLE card)")
            blocks.append(block)
            # END sits at the start of a card in the last block.
            cards = [block[i:i + 8] for i in range(0, _BLOCK, _CARD)]
            if b"END     " in cards:
                break
    raw = b"".join(blocks)
    try:
        header = LazyHeader(raw.decode("ascii", "replace"))
    except Exception as exc:
        raise FrameError(path, f"unreadable FITS header ({exc})") from None
    expected = len(raw) + _data_bytes(header)
    if header.get("NAXIS", 0) == 0:
        return None  # image lives in an extension: let astropy walk it
    if size < expected:
        raise FrameError(path, f"truncated FITS ({size} of {expected} bytes); "
                         "is the file still being written?")
    return HeaderInfo(header, 0, _check_image_shape(path, _image_shape(header)))


def _open(path, **kwargs):
    with warnings.catch_warnings():
        # astropy warns about fixable cards in real camera headers; we
        # only want hard failures here.
        warnings.simplefilter("ignore")
        try:
            return fits.open(path, **kwargs)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise FrameError(path, _describe(exc)) from None
        except Exception as exc:
            raise FrameError(path, f"unreadable FITS ({exc})") from None


def _describe(exc):
    text = str(exc)
    if "Empty or corrupt" in text or "SIMPLE" in text:
        return "not a FITS file (or corrupt first block)"
    if "truncated" in text.lower() or "end of file" in text.lower():
        return "truncated FITS; is the file still being written?"
    return f"unreadable FITS ({text})"


def _first_image_hdu(path, hdul):
    for i, hdu in enumerate(hdul):
        if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            if hdu.header.get("NAXIS", 0) and (
                    not isinstance(hdu, fits.PrimaryHDU) or i == 0):
                if isinstance(hdu, fits.CompImageHDU) or hdu.header.get("NAXIS", 0) >= 2:
                    return i, hdu
    raise FrameError(path, "no image in the file (no HDU with 2-D data)")


def read_header(path):
    """Read the header of the frame's image without reading its pixels.

    Plain FITS files are parsed straight from their header blocks, which is
    several times faster than opening them with astropy; compressed and
    multi-extension files go through :func:`astropy.io.fits.open`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    HeaderInfo

    Raises
    ------
    FrameError
        Empty, truncated, not FITS, or no 2-D image.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise FrameError(path, f"cannot read ({exc.strerror})") from None
    if size == 0:
        raise FrameError(path, "empty file (0 bytes); is it still being written?")
    lower = path.lower()
    if not lower.endswith((".gz", ".fz")):
        info = _read_primary_header_fast(path, size)
        if info is not None:
            return info
    with _open(path, memmap=False, lazy_load_hdus=True) as hdul:
        try:
            index, hdu = _first_image_hdu(path, hdul)
            header = hdu.header.copy()
            shape = hdu.shape
        except FrameError:
            raise
        except Exception as exc:
            raise FrameError(path, _describe(exc)) from None
    return HeaderInfo(header, index, _check_image_shape(path, tuple(shape)))


def is_complete(path):
    """True if ``path`` is a whole FITS file: its header parses and every
    data byte it announces is there (not cut short by a crash or a writer
    still at work)."""
    try:
        read_header(path)
    except FrameError:
        return False
    return True


def read_image(path, dtype=None):
    """Read a frame's 2-D image and header.

    Parameters
    ----------
    path : str or path-like
    dtype : numpy dtype, optional
        Convert the pixels to this type (e.g. ``np.float32``); by default
        they come back as astropy scales them (uint16 for BZERO=32768).

    Returns
    -------
    data : numpy.ndarray
    header : astropy.io.fits.Header
    hdu : int
        Index of the HDU the image came from.

    Raises
    ------
    FrameError
    """
    path = os.fspath(path)
    info = read_header(path)  # cheap, and catches truncation before numpy does
    with _open(path, memmap=False) as hdul:
        hdu = hdul[info.hdu]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = hdu.data
        except Exception as exc:
            raise FrameError(path, _describe(exc)) from None
        if data is None:
            raise FrameError(path, "no image data")
        data = np.asarray(data)
        if data.ndim == 3 and data.shape[0] == 1:
            data = data[0]
        if data.ndim != 2:
            raise FrameError(path, f"not a 2-D image (data shape {data.shape})")
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        return data, hdu.header.copy(), info.hdu
