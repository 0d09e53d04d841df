"""Writing output FITS files so that nothing is ever lost or half-written.

A file appears under its final name only once it is complete (written to a
temporary file in the same folder, flushed, then renamed), an existing
output is kept unless the caller asks to replace it, and a raw frame can
never be the target.

Each temporary file carries its writer's process id in its name
(``.<name>.pid<PID>.<random>.ccdcal-tmp``) and is locked while written,
so `remove_stale_temps` can tell the leftovers of a killed run from files
a live writer still owns.
"""

import os
import re
import tempfile
import time

import numpy as np
from astropy.io import fits

from .errors import CcdcalError
from . import provenance
from .fitsfile import SANITISED_KEYWORD, sanitise_header

try:
    import fcntl
except ImportError:  # Windows: the process id alone decides
    fcntl = None

__all__ = ["OutputExists", "write_fits", "ensure_folder", "remove_stale_temps",
           "TEMP_SUFFIX", "temp_owner"]

#: Suffix of the temporary files `write_fits` renames into place.
TEMP_SUFFIX = ".ccdcal-tmp"
_OWNED_TEMP = re.compile(r"^\..*\.pid(\d+)\.[^.]+" + re.escape(TEMP_SUFFIX) + "$")


class OutputExists(CcdcalError):
    """The output file is already there and overwriting was not asked for."""

    def __init__(self, path):
        self.path = str(path)
        super().__init__(f"{self.path}: already exists (use overwrite to replace it)")


def ensure_folder(folder):
    """Create ``folder`` (and parents); a clear error if that is impossible."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise CcdcalError(f"{folder}: cannot create output folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise CcdcalError(f"{folder}: output folder is not writable")


def write_fits(path, data, header=None, *, overwrite=False, protect=(), fsync=False,
               extensions=()):
    """Write ``data`` and ``header`` to ``path`` atomically.

    Parameters
    ----------
    path : str
    data : numpy.ndarray
    header : astropy.io.fits.Header, optional
    overwrite : bool
        Replace an existing file at ``path``.  Without it an existing file
        raises `OutputExists`.
    protect : iterable of str
        Paths that must never be written (the raw frames); a match raises
        `CcdcalError` whatever ``overwrite`` says.
    extensions : sequence of astropy.io.fits.ImageHDU
        Written after the primary HDU (e.g. the uncertainty).
    fsync : bool
        Force the data to disk before the rename.  The rename alone already
        guarantees that a killed process never leaves a partial file under
        the final name; ``fsync`` adds safety against power loss at ~0.1 s
        per 64 MB.  Products can be remade from the raw frames, and readers
        here (resume, watch) check that an output is complete, so it is off
        by default.

    Raises
    ------
    OutputExists, CcdcalError
        The latter with the operating system's reason (disk full,
        read-only folder...); no partial file is left behind.
    """
    path = os.path.abspath(os.fspath(path))
    for raw in protect:
        if os.path.exists(raw) and os.path.exists(path) and os.path.samefile(raw, path):
            raise CcdcalError(f"{path}: refusing to write over a raw frame")
    if os.path.exists(path) and not overwrite:
        raise OutputExists(path)
    folder = os.path.dirname(path)
    ensure_folder(folder)
    hdu = fits.HDUList([fits.PrimaryHDU(data=np.asarray(data), header=_clean(header)),
                        *(_clean_extension(e) for e in extensions)])
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)[:100]}.pid{os.getpid()}.",
                                   suffix=TEMP_SUFFIX, dir=folder)
        with os.fdopen(fd, "wb") as stream:
            _lock(stream)
            hdu.writeto(_Stream(stream, tmp))
            stream.flush()
            if fsync:
                os.fsync(stream.fileno())
        os.chmod(tmp, 0o644)
        _publish(tmp, path, overwrite)
    except OSError as exc:
        raise CcdcalError(f"{path}: cannot write ({_reason(exc)})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _publish(tmp, path, overwrite):
    """Give the finished temporary file its final name."""
    if overwrite:
        os.replace(tmp, path)
        return
    # link() fails if another writer got there first: never clobber.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExists(path) from None
    except OSError:
        # Filesystems without hard links: a checked rename.
        if os.path.exists(path):
            raise OutputExists(path) from None
        os.replace(tmp, path)


def _clean(header):
    """A copy of ``header`` that astropy can write, saying in HISTORY what
    `sanitise_header` escaped (when it was read or now)."""
    if header is None:
        return None
    header = header.copy()
    sanitise_header(header)
    notes = header.get(SANITISED_KEYWORD)
    if notes:
        header.remove(SANITISED_KEYWORD)
        provenance.add_history(header, f"header sanitised: {notes}")
    return header


def _clean_extension(hdu):
    hdu.header = _clean(hdu.header)
    return hdu


#: Bytes handed to the operating system per write() (see `_Stream.write`).
_WRITE_PIECE = 1 << 20


class _Stream:
    """The temporary file as astropy should see it when writing.

    A plain stream, not a file: astropy then writes the pixels with
    ``write()``, where an operating-system error keeps its errno (numpy's
    ``tofile`` turns a full disk or a file-size limit into "N requested
    and M written"); and a name that is a path, which astropy's free-space
    check reads when a write fails (an ``os.fdopen`` stream's name is a
    number, and the check then fails with an AttributeError of its own).
    """

    def __init__(self, stream, name):
        self._stream, self.name, self.mode = stream, name, "wb"

    def write(self, data):
        # Megabyte by megabyte: one write() of a whole 64 MB image took
        # 5-10 times longer on the test machine than the same bytes in
        # pieces (bench/bench_watch.py); pieces also keep astropy's single
        # call for the pixels from holding one long system call.
        view = memoryview(data)
        if view.nbytes <= _WRITE_PIECE or not view.c_contiguous:
            return self._stream.write(data)
        view = view.cast("B")
        for start in range(0, view.nbytes, _WRITE_PIECE):
            self._stream.write(view[start:start + _WRITE_PIECE])
        return view.nbytes

    def flush(self):
        self._stream.flush()

    def tell(self):
        return self._stream.tell()

    @property
    def closed(self):
        return self._stream.closed


def _reason(exc):
    """The operating system's words for a failed write.

    astropy re-raises a failed write as a new OSError without the errno
    (prefixed by its free-space estimate), so the chain is searched for
    the original.
    """
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def _lock(stream):
    """Lock the temporary file for as long as this process has it open."""
    if fcntl is not None:
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # no locks here (some network file systems): the pid decides


def _locked(path):
    """True if a live process holds the lock on ``path``."""
    if fcntl is None:
        return False
    try:
        with open(path, "rb") as stream:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _alive(pid):
    if os.name != "posix":
        return True  # os.kill would end it: assume alive, age decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def temp_owner(name):
    """Process id written into a temporary file's name by `write_fits`,
    or None (not ours, or made by a version that did not record it)."""
    match = _OWNED_TEMP.match(name)
    return int(match.group(1)) if match else None


def remove_stale_temps(folder, older_than=600.0):
    """Delete the temporary files killed writers left under ``folder``.

    Every sub-folder is searched.  Only our own hidden ``*.ccdcal-tmp``
    files are considered, and only those no live process owns: a file
    locked by its writer is kept; one whose writer's process id (in its
    name) is gone is removed at once; one whose process id is alive but
    unlocked (the id was reused) or that carries no id (written by an
    older version) is removed once it is ``older_than`` seconds old.

    Returns
    -------
    list of str
        The paths removed.
    """
    removed = []
    limit = time.time() - older_than
    for root, _, names in os.walk(folder):
        for name in names:
            if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                continue
            path = os.path.join(root, name)
            try:
                if _stale(path, temp_owner(name), limit):
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                pass  # gone already, or not ours to remove
    return removed


def _stale(path, pid, limit):
    if _locked(path):
        return False
    if pid is not None and not _alive(pid):
        return True
    return os.path.getmtime(path) < limit
