"""Reading FITS frames: find the image, read its header fast, explain failures.

Cameras write plain FITS, multi-extension files whose image is in HDU 1,
tile-compressed ``.fz`` and gzipped files.  Everything here answers with a
:class:`~ginga_ccdcal.errors.FrameError` naming the problem instead of an
astropy traceback.
"""

import gzip
import math
import os
import re
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from . import buffers
from .errors import FrameError

__all__ = ["FITS_SUFFIXES", "is_fits_name", "HeaderInfo", "LazyHeader",
           "read_header", "read_image", "pixel_type", "is_complete", "printable",
           "sanitise_header", "SANITISED_KEYWORD", "MAX_AXES"]

#: File names the scanner treats as FITS frames (case-insensitive).
FITS_SUFFIXES = (".fit", ".fits", ".fts", ".fit.gz", ".fits.gz", ".fts.gz",
                 ".fit.fz", ".fits.fz", ".fts.fz", ".fz")

_BLOCK = 2880
_CARD = 80
#: The FITS standard allows at most 999 axes (NAXIS1 ... NAXIS999).
MAX_AXES = 999
#: BITPIX values the FITS standard defines.
_BITPIX = (8, 16, 32, 64, -32, -64)
_GZIP_MAGIC = b"\x1f\x8b"


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
    #: Where the pixels start in the file, for a plain (not compressed)
    #: file whose image is the primary HDU; None otherwise.
    data_offset: int = None


_STRING = re.compile(r"'((?:[^']|'')*)'")
_INT = re.compile(r"[+-]?\d+$")
_PRINTABLE = re.compile(r"[ -~]*\Z")


def _card_values(text):
    """Values of the simple cards of a header text, parsed the quick way.

    Returns ``(values, hard)``: a dict of keyword -> value for cards whose
    value is a plain string, logical, integer or real, and the set of
    keywords whose cards need astropy's full parser (long strings with
    CONTINUE, complex numbers, anything unusual).  COMMENT, HISTORY and
    HIERARCH cards are left to astropy as well.
    """
    values, hard = {}, set()
    clean = _PRINTABLE.match(text) is not None  # one test for the usual header
    for start in range(0, len(text), _CARD):
        card = text[start:start + _CARD]
        key = card[:8].rstrip()
        if key == "END":
            break
        if key in ("HIERARCH", "CONTINUE") or key != key.upper() or (
                "=" in card[:10] and card[8:10] != "= ") or (
                not clean and not _PRINTABLE.match(card)):
            # Not standard (astropy knows the dialects) or not printable
            # ASCII (`sanitise_header` escapes it in the astropy header).
            hard.add(key)
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
        """The full `astropy.io.fits.Header` (parsed once, then kept).

        Cards astropy cannot parse or write (control characters, bytes
        outside ASCII) are escaped by `sanitise_header`, which says so in
        HISTORY.
        """
        if self._header is None:
            header = fits.Header.fromstring(self._text)
            if self._hard:
                sanitise_header(header)
            self._header = header
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


def _header_int(path, header, key, default, low=0, high=None):
    """``header[key]`` as an int in ``[low, high]``, or a `FrameError`
    naming the file and the keyword (a header is hostile input)."""
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(path, f"bad header: {key} = {value!r} is not an integer")
    if value < low or (high is not None and value > high):
        limit = f"{low}..{high}" if high is not None else f">= {low}"
        raise FrameError(path, f"bad header: {key} = {value} is out of range ({limit})")
    return value


def _image_layout(path, header):
    """Validated ``(bitpix, shape)`` of the array ``header`` declares.

    ``shape`` is in numpy order (FITS lists the fastest axis first, numpy
    last).  Raises `FrameError` for a BITPIX the standard does not
    define, more than `MAX_AXES` axes, or an axis length that is not a
    non-negative integer.
    """
    naxis = _header_int(path, header, "NAXIS", 0, 0, MAX_AXES)
    bitpix = header.get("BITPIX", 8)
    if isinstance(bitpix, bool) or bitpix not in _BITPIX:
        raise FrameError(path, f"bad header: BITPIX = {bitpix!r} is not one of "
                         + ", ".join(map(str, _BITPIX)))
    axes = [_header_int(path, header, f"NAXIS{i}", 0) for i in range(1, naxis + 1)]
    return bitpix, tuple(reversed(axes))


def _data_bytes(path, header):
    """Bytes of data (padded to whole blocks) that ``header`` announces."""
    bitpix, shape = _image_layout(path, header)
    if not shape:
        return 0
    n = abs(bitpix) // 8 * math.prod(shape)
    n = _header_int(path, header, "GCOUNT", 1) * (_header_int(path, header, "PCOUNT", 0) + n)
    return -(-n // _BLOCK) * _BLOCK


def decompressed_budget():
    """Bytes a compressed frame may take once read: the memory budget of
    `ginga_ccdcal.combine.default_mem_limit` (one budget for the package)."""
    from .combine import default_mem_limit  # combine imports this module
    return default_mem_limit()


def _check_budget(path, bitpix, shape):
    """Refuse a compressed image whose pixels would not fit the memory budget.

    Calibration holds the decompressed pixels and a float32 copy of them,
    so that is what is counted; a few hundred bytes of gzip can declare
    gigabytes.
    """
    need = math.prod(shape) * (abs(bitpix) // 8 + 4)
    budget = decompressed_budget()
    if need > budget:
        size = " x ".join(str(n) for n in reversed(shape))
        raise FrameError(path, f"compressed file declares a {size} image "
                         f"({need / 2**20:.0f} MiB to calibrate), more than the "
                         f"memory budget of {budget / 2**20:.0f} MiB; not decompressed")


def _check_image_shape(path, shape):
    if len(shape) == 3 and shape[0] == 1:
        return shape[1:]
    if len(shape) != 2:
        raise FrameError(path, f"not a 2-D image (data shape {shape})")
    return shape


def _read_header_blocks(path, stream):
    """The primary header's bytes, block by block up to the END card."""
    blocks = []
    while True:
        block = stream.read(_BLOCK)
        if not blocks and not block:
            raise FrameError(path, "empty file (0 bytes)")
        if not blocks and not block.startswith(b"SIMPLE  ="):
            # Said first: a short text file is not FITS, not a truncated one.
            raise FrameError(path, "not a FITS file (no SIMPLE card)")
        if len(block) < _BLOCK:
            raise FrameError(path, "truncated FITS (header ends early); "
                             "is the file still being written?")
        blocks.append(block)
        # END sits at the start of a card in the last block.
        cards = [block[i:i + 8] for i in range(0, _BLOCK, _CARD)]
        if b"END     " in cards:
            return b"".join(blocks)


def _read_primary_header_fast(path, size):
    """Parse the primary header block by block; None if it is not simple.

    The header's own claims are checked before anything trusts them: axis
    counts and lengths, BITPIX, and (for gzip) the declared size against
    the memory budget and the size of the decompressed stream.
    """
    try:
        with open(path, "rb") as stream:
            gzipped = stream.read(2) == _GZIP_MAGIC  # as astropy decides
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            raw = _read_header_blocks(path, stream)
    except (OSError, EOFError, zlib.error) as exc:
        if not gzipped:
            raise FrameError(path, f"cannot read ({exc.strerror or exc})") from None
        raise FrameError(path, f"unreadable gzip ({exc})") from None
    # latin-1 keeps every byte as one character (and the cards 80 wide), so
    # a byte outside ASCII reaches `sanitise_header` to be escaped visibly.
    header = LazyHeader(raw.decode("latin-1"))
    expected = len(raw) + _data_bytes(path, header)
    bitpix, shape = _image_layout(path, header)
    if not shape:
        return None  # image lives in an extension: let astropy walk it
    if gzipped:
        _check_budget(path, bitpix, shape)
        size = _gzip_size(path, expected)
    if size < expected:
        raise FrameError(path, f"truncated FITS ({size} of {expected} bytes"
                         + (" once decompressed" if gzipped else "")
                         + "); is the file still being written?")
    return HeaderInfo(header, 0, _check_image_shape(path, shape),
                      None if gzipped else len(raw))


def _gzip_size(path, expected):
    """Bytes the gzip file ``path`` decompresses to, as far as ``expected``.

    The gzip trailer holds the size modulo 2**32; when it agrees with
    ``expected`` that is the answer, otherwise (a cut or multi-member
    file) the stream is counted in chunks, in constant memory.
    """
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        if int.from_bytes(f.read(4), "little") == expected % 2**32:
            return expected
    n = 0
    try:
        with gzip.open(path, "rb") as stream:
            while n < expected:
                chunk = stream.read(min(1 << 20, expected - n))
                if not chunk:
                    break
                n += len(chunk)
    except (OSError, EOFError, zlib.error):
        pass  # cut short: n is what could be read
    return n


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
    if not path.lower().endswith(".fz"):
        info = _read_primary_header_fast(path, size)
        if info is not None:
            return info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _open(path, memmap=False, lazy_load_hdus=True) as hdul:
            try:
                index, hdu = _first_image_hdu(path, hdul)
                header = hdu.header.copy()
                shape = tuple(hdu.shape)
            except FrameError:
                raise
            except Exception as exc:
                raise FrameError(path, _describe(exc)) from None
    if isinstance(hdu, fits.CompImageHDU):
        _check_budget(path, header.get("BITPIX"), shape)
    sanitise_header(header, _astropy_notes(caught))
    return HeaderInfo(header, index, _check_image_shape(path, shape))


def _astropy_notes(caught):
    """What astropy changed silently while reading (from its warnings)."""
    for warning in caught:
        if "non-ASCII" in str(warning.message):
            return ["bytes outside ASCII were read as '?' (astropy)"]
    return []


def is_complete(path):
    """True if ``path`` is a whole FITS file: its header parses and every
    data byte it announces is there (not cut short by a crash or a writer
    still at work)."""
    try:
        read_header(path)
    except FrameError:
        return False
    return True


def read_image(path, dtype=None, *, reuse=False):
    """Read a frame's 2-D image and header.

    Parameters
    ----------
    path : str or path-like
    dtype : numpy dtype, optional
        Convert the pixels to this type (e.g. ``np.float32``); by default
        they come back as astropy scales them (uint16 for BZERO=32768).
    reuse : bool
        Take the float32 array from the shared `ginga_ccdcal.buffers`
        pool instead of fresh memory (for a caller that calibrates one
        frame after another).

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
    # The header read_header gave: the same cards as astropy's, but
    # sanitised, and with bytes outside ASCII escaped, not made '?'.
    header = info.header.copy()
    if dtype is not None and np.dtype(dtype) == np.float32:
        data = _read_plain_float32(path, info, reuse)
        if data is not None:
            return data, header, info.hdu
    with _open(path, memmap=False) as hdul:
        hdu = hdul[info.hdu]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = hdu.data
        except Exception as exc:
            raise FrameError(path, _describe(exc) if str(exc) else
                             f"unreadable FITS data ({type(exc).__name__})") from None
        if data is None:
            raise FrameError(path, "no image data")
        data = np.asarray(data)
        if data.ndim == 3 and data.shape[0] == 1:
            data = data[0]
        if data.ndim != 2:
            raise FrameError(path, f"not a 2-D image (data shape {data.shape})")
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        return data, header, info.hdu


#: File pixel types whose every value float32 holds exactly (with an
#: integer BZERO): read straight into float32 by `_read_plain_float32`.
_EXACT_IN_FLOAT32 = {8: np.dtype("u1"), 16: np.dtype(">i2"), -32: np.dtype(">f4")}


def _read_plain_float32(path, info, reuse):
    """The image of a plain file as float32, in one pass from its bytes.

    astropy reads the file into one array and scales it into another
    (int16 to uint16 for BZERO = 32768) before the caller converts it
    to float32: three fresh arrays where one does.  None when the file
    is not that simple (compressed, image in an extension, BLANK, a
    non-integer BSCALE or BZERO, 32- or 64-bit pixels): astropy then
    reads it, with the same values.
    """
    header = info.header
    stored = _EXACT_IN_FLOAT32.get(header.get("BITPIX"))
    bscale, bzero = header.get("BSCALE", 1), header.get("BZERO", 0)
    if (info.data_offset is None or stored is None or "BLANK" in header
            or bscale != 1 or not isinstance(bzero, (int, float))
            or bzero != int(bzero) or abs(bzero) > 2**23):
        return None
    raw = buffers.take(info.shape, stored)
    try:
        with open(path, "rb", buffering=0) as stream:
            stream.seek(info.data_offset)
            view, got = memoryview(raw.reshape(-1).view(np.uint8)), 0
            while got < raw.nbytes:
                n = stream.readinto(view[got:])
                if not n:
                    raise FrameError(path, "truncated FITS (data ends early); "
                                     "is the file still being written?")
                got += n
            del view
    except OSError as exc:
        raise FrameError(path, f"cannot read ({exc.strerror or exc})") from None
    data = buffers.take(info.shape, np.float32) if reuse \
        else np.empty(info.shape, np.float32)
    # int16 + 32768 is exact in float32, as are 8-bit and float pixels.
    np.add(raw, np.float32(bzero), out=data, dtype=np.float32, casting="unsafe")
    return data


def pixel_type(header):
    """The numpy type of a frame's pixels as its header declares them.

    What astropy gives for them: the stored integer type, or its unsigned
    (signed for 8 bits) twin when BZERO shifts it by half its range
    (uint16 for BITPIX = 16 with BZERO = 32768), else float once BSCALE or
    BZERO scale it or BLANK marks pixels (astropy makes those NaN).  A
    frame read straight into float32 still saturates at this type's
    largest value.
    """
    bitpix = header.get("BITPIX", 16)
    bscale, bzero = header.get("BSCALE", 1), header.get("BZERO", 0)
    if bitpix < 0:
        return np.dtype(f"f{-bitpix // 8}")
    stored = np.dtype(("u" if bitpix == 8 else "i") + str(bitpix // 8))
    if bscale != 1 or "BLANK" in header:
        return np.dtype("f4" if bitpix <= 16 else "f8")
    if bzero == 0:
        return stored
    if bzero == (-128 if bitpix == 8 else 2 ** (bitpix - 1)):
        return np.dtype(("i" if bitpix == 8 else "u") + str(bitpix // 8))
    return np.dtype("f4" if bitpix <= 16 else "f8")


# -- header text that astropy cannot write -------------------------------------

_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char):
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text):
    """``text`` with every character outside printable ASCII escaped visibly.

    A tab becomes ``\\t``, a newline ``\\n``, DEL ``\\x7f``, an é ``\\xe9``:
    safe in a FITS header, in a one-line message and in the scan tree,
    and never silently turned into ``?``.

    Examples
    --------
    >>> printable("caf\\xe9\\tM13")
    'caf\\\\xe9\\\\tM13'
    """
    text = str(text)
    if _PRINTABLE.match(text):
        return text
    return "".join(c if " " <= c <= "~" else _escape(c) for c in text)


def _raw_value(image):
    """(value text, comment text, quoted?) of a card astropy cannot parse."""
    field = image.split("=", 1)[1] if "=" in image[:10] or image.startswith("HIERARCH") \
        else image[10:]
    field = field.lstrip()
    if field.startswith("'"):
        match = _STRING.match(field)
        if match:
            rest = field[match.end():]
            comment = rest.split("/", 1)[1] if "/" in rest else ""
            return match.group(1).replace("''", "'").rstrip(), comment.strip(), True
    value, _, comment = field.partition("/")
    return value.strip(), comment.strip(), False


def _writable(card):
    try:
        card.verify("exception")
    except (fits.VerifyError, ValueError):
        return False
    return True


def _rewrite_card(card):
    """A writable copy of ``card`` (or None) and a note saying what changed."""
    # astropy keeps the card's text as read in ``_image``; its public
    # ``image`` would first try (and fail) to re-format it.
    image = getattr(card, "_image", None) or ""
    shown = printable(image.rstrip() or card.keyword)
    key = card.keyword
    if not key.isascii() or not _PRINTABLE.match(key):
        return None, f"card {shown} dropped (keyword not ASCII)"
    if key in ("COMMENT", "HISTORY", ""):
        text = image[8:].rstrip() if image else str(card.value)
        value, comment, note = printable(text), None, f"{key or 'blank'} card escaped"
    else:
        try:
            value, comment = card.value, card.comment
            note = f"{key} rewritten"
        except (fits.VerifyError, ValueError):
            text, comment, quoted = _raw_value(image)
            value = printable(text)
            note = (f"{key} value escaped" if quoted or value != text else
                    f"{key} value {value} is not a FITS value, kept as text")
        if isinstance(value, str):
            value = printable(value)
        comment = printable(comment or "")
    try:
        fixed = fits.Card(key, value, comment) if comment is not None else fits.Card(key, value)
    except (ValueError, fits.VerifyError):
        return None, f"card {shown} dropped (not valid FITS)"
    if not _writable(fixed):
        return None, f"card {shown} dropped (not valid FITS)"
    return fixed, note


#: Keyword in which `sanitise_header` leaves its notes for `safe_write.write_fits`,
#: which turns them into a HISTORY line (the keyword itself never reaches a
#: product; unlike HISTORY, it survives code that drops the raw HISTORY).
SANITISED_KEYWORD = "CCDSANIT"


def sanitise_header(header, notes=()):
    """Make every card of ``header`` writable, escaping rather than losing.

    Cards astropy would refuse to write (control characters such as tab,
    newline or DEL, bytes outside ASCII, values that are not FITS values)
    are rewritten in place: text is escaped with `printable`, an
    unparsable value is kept as text, and a card whose keyword is not
    ASCII is dropped (its text, escaped, goes into the note).  The notes
    are kept in `SANITISED_KEYWORD`; `ginga_ccdcal.safe_write.write_fits`
    records them in HISTORY (``ccdcal: header sanitised: ...``).

    Parameters
    ----------
    header : astropy.io.fits.Header
        Changed in place.
    notes : sequence of str
        Changes already made elsewhere (e.g. by astropy while reading),
        recorded with the others.

    Returns
    -------
    list of str
        This call's notes (empty if the header was fine).
    """
    notes = list(notes)
    cards, changed = [], False
    for card in header.cards:
        if _writable(card):
            cards.append(card)
            continue
        changed = True
        fixed, note = _rewrite_card(card)
        notes.append(note)
        if fixed is not None:
            cards.append(fixed)
    if changed:
        header.clear()
        header.extend(cards, strip=False, unique=False)
    if notes:
        earlier = header.get(SANITISED_KEYWORD)
        # No comment: the notes may be long (CONTINUE cards).
        header[SANITISED_KEYWORD] = "; ".join(([earlier] if earlier else []) + notes)
    return notes
