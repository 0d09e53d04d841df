"""Large arrays reused from one frame to the next.

Calibrating a 4096 x 4096 light needs a 64 MB float32 image.  Fresh memory
of that size comes from the operating system page by page (glibc maps
every allocation above 32 MB anew and returns it on free), and touching
it for the first time costs as much as the arithmetic itself: in watch
mode, where a light arrives every few seconds, it was a third of the
latency.  A `BufferPool` keeps a few such arrays and hands one out again
once nothing refers to it any more.

Whether anything still refers to an array is read from its reference
count: every numpy view of a pooled array, at any depth, keeps the pooled
array itself as its ``base``, so a displayed image, a `CCDData` or a slice
of either all count.  A buffer is handed out again only when the pool's
own reference is the last one, so nobody ever sees its pixels change.
"""

import sys
import threading

import numpy as np

__all__ = ["BufferPool", "take", "prepare"]


class BufferPool:
    """At most ``keep`` arrays, reused when nobody holds them.

    Parameters
    ----------
    keep : int
        Arrays kept at most.  A request that no free array fits evicts a
        free array of another shape or, if all are in use, gets fresh
        memory that is not kept (so the pool never grows beyond ``keep``).
    """

    def __init__(self, keep=3):
        self.keep = keep
        self._arrays = []
        self._lock = threading.Lock()

    def take(self, shape, dtype):
        """An uninitialised array of ``shape`` and ``dtype``.

        Its content is whatever it held before: fill every element.
        """
        shape, dtype = tuple(shape), np.dtype(dtype)
        with self._lock:
            i = self._find_free(shape, dtype)
            if i is not None:
                return self._arrays[i]
            array = np.empty(shape, dtype)
            self._keep(array)
            return array

    def prepare(self, shape, dtype):
        """Have a free array of ``shape`` and ``dtype`` ready, its memory touched.

        For a caller with time to spare before the next `take` (watch mode
        between frames): the next frame then neither waits for fresh
        memory nor depends on its caller having let go of the last one.
        """
        shape, dtype = tuple(shape), np.dtype(dtype)
        with self._lock:
            if self._find_free(shape, dtype) is not None:
                return
        array = np.empty(shape, dtype)
        array.fill(0)  # touches every page now, not when the light arrives
        with self._lock:
            self._keep(array)

    def _find_free(self, shape, dtype):
        for i in range(len(self._arrays)):
            if self._arrays[i].shape == shape and self._arrays[i].dtype == dtype \
                    and self._free(i):
                return i
        return None

    def _free(self, i):
        # The list's reference and getrefcount's own argument: nobody else.
        return sys.getrefcount(self._arrays[i]) == 2

    def _keep(self, array):
        """Keep ``array``; when full, forget first an array still in use
        (its holders keep it alive), then a free one of another shape."""
        if len(self._arrays) >= self.keep:
            in_use = [i for i in range(len(self._arrays)) if not self._free(i)]
            other = [i for i in range(len(self._arrays))
                     if (self._arrays[i].shape, self._arrays[i].dtype)
                     != (array.shape, array.dtype)]
            self._arrays.pop((in_use or other or [0])[0])
        self._arrays.append(array)

    def clear(self):
        """Forget every array (those in use stay valid for their holders)."""
        with self._lock:
            self._arrays.clear()


#: The pool calibration draws from: the light being calibrated, the one
#: its caller still shows, and the raw pixels as read.
_POOL = BufferPool(keep=3)


def take(shape, dtype):
    """An array from the package's shared `BufferPool` (see `BufferPool.take`)."""
    return _POOL.take(shape, dtype)


def prepare(shape, dtype):
    """`BufferPool.prepare` on the package's shared pool."""
    _POOL.prepare(shape, dtype)
