"""Writing output FITS files so that nothing is ever lost or half-written.

A file appears under its final name only once it is complete (written to a
temporary file in the same folder, flushed, then renamed), an existing
output is kept unless the caller asks to replace it, and a raw frame can
never be the target.
"""

import os
import tempfile

import numpy as np
from astropy.io import fits

from .errors import CcdcalError

__all__ = ["OutputExists", "write_fits", "ensure_folder", "remove_stale_temps",
           "TEMP_SUFFIX"]

#: Suffix of the temporary files `write_fits` renames into place.
TEMP_SUFFIX = ".ccdcal-tmp"


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
    hdu = fits.HDUList([fits.PrimaryHDU(data=np.asarray(data), header=header),
                        *extensions])
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as stream:
            hdu.writeto(stream)
            stream.flush()
            if fsync:
                os.fsync(stream.fileno())
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, path)
        else:
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
    except OSError as exc:
        raise CcdcalError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_stale_temps(folder, older_than=600.0):
    """Delete temporary files a killed writer left in ``folder``.

    Only our own hidden ``.*.ccdcal-tmp`` files older than ``older_than``
    seconds are removed (a younger one may belong to a writer still at
    work).  Returns the paths removed.
    """
    import time
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    limit = time.time() - older_than
    for name in names:
        if name.startswith(".") and name.endswith(TEMP_SUFFIX):
            path = os.path.join(folder, name)
            try:
                if os.path.getmtime(path) < limit:
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                pass
    return removed
