"""Quick-look watch mode: calibrate each new light as the camera writes it.

At the telescope a frame lands in the camera's folder every few seconds.
A `FolderWatcher` notices it (watchdog's native observer, or polling for
network drives), waits until the file is complete, and hands it to a
worker thread that calibrates lights with the current masters and reports
calibration frames, so the caller can show the result (the plugin) or
print a line (the command line)::

    with FolderWatcher("raw/", "reduced/", masters_dir="reduced/masters",
                       on_result=lambda r: print(r.summary())) as watcher:
        watcher.wait()          # until stop() or Ctrl-C

When is a file complete?
    Only FITS names are considered (temporary names such as ``*.tmp``,
    ``*.part``, ``name~`` and hidden ``.name`` files are left alone until
    the camera renames them).  A file is read once its header parses and
    the data it announces are all there (`ginga_ccdcal.fitsfile.read_header`)
    and either the writer closed it (native observer) or its size and
    modification time have not changed for one ``poll_interval``.  A file
    that stays unreadable for ``settle`` seconds without changing is
    reported as a problem, once.

Exactly once
    Files are remembered by path, size and modification time, so nothing
    is done twice, and a light whose calibrated output already exists is
    skipped (reported with status ``'exists'``): restarting the watcher
    resumes where it stopped.  A full rescan every `RESCAN_INTERVAL`
    seconds catches events the operating system dropped.

Threads
    Callbacks run in the worker thread, one result at a time and in the
    order the frames were completed; a GUI must pass them on to its own
    thread (Ginga: ``fv.gui_do``).
"""

import logging
import os
import queue
import stat
import threading
import time
from dataclasses import dataclass, field

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from .calibrate import calibrate_and_write, output_path
from .errors import CcdcalError, FrameError
from .fitsfile import is_complete, is_fits_name
from .masters import MASTER_KINDS, build_masters, load_masters, stale_masters
from .match import match_light
from .safe_write import OutputExists, ensure_folder
from .scan import frame_from_file, is_product, scan_folder

__all__ = ["WatchResult", "FolderWatcher", "STATUSES", "RESCAN_INTERVAL"]

log = logging.getLogger(__name__)

#: What a `WatchResult` can say about a file.
STATUSES = ("calibrated", "exists", "calibration", "problem", "ignored")

#: Seconds between full rescans in native mode (a safety net for lost events).
RESCAN_INTERVAL = 30.0

# Event types that mean "the writer is done with this name": the file was
# closed after writing, or renamed into place.
_DONE_EVENTS = ("closed", "moved")
_CHANGE_EVENTS = ("created", "modified")


@dataclass
class WatchResult:
    """What the watcher did with one file, passed to ``on_result``.

    Attributes
    ----------
    path : str
        The raw file (absolute).
    name : str
        ``path`` relative to the watched folder, for messages.
    status : str
        ``'calibrated'`` (a light, written to ``output``), ``'exists'`` (a
        light whose output was already there: skipped), ``'calibration'``
        (a bias, dark or flat arrived), ``'problem'`` (unreadable, or the
        calibration failed; see ``problem``) or ``'ignored'`` (a file this
        package wrote, or one whose type cannot be told).
    frame : `~ginga_ccdcal.scan.Frame` or None
    output : str or None
        Calibrated file (``'calibrated'`` and ``'exists'``).
    ccd : astropy.nddata.CCDData or None
        The calibrated frame (``'calibrated'`` only).
    match : `~ginga_ccdcal.match.MatchResult` or None
    lines : list of str
        For lights, which master was used for each step and why; for
        calibration frames, which masters are now older than new frames.
    problem : str or None
        What is wrong (``'problem'``) or why the file was ignored.
    warnings : list of str
        Things the observer should know although the frame was used: its
        type was guessed from the pixels, a master is far off in
        temperature, pixels are NaN or saturated...
    stale : list of `~ginga_ccdcal.masters.MasterFrame`
        Masters of the same kind and setup older than this calibration frame.
    t_complete, t_start, t_ready : float
        `time.monotonic` when the file was found complete, when the worker
        took it, and when the result was ready (file written).
    """

    path: str
    name: str
    status: str
    frame: object = None
    output: str = None
    ccd: object = None
    match: object = None
    lines: list = field(default_factory=list)
    problem: str = None
    warnings: list = field(default_factory=list)
    stale: list = field(default_factory=list)
    t_complete: float = 0.0
    t_start: float = 0.0
    t_ready: float = 0.0

    @property
    def latency(self):
        """Seconds from "file complete" to "result ready"."""
        return self.t_ready - self.t_complete

    @property
    def queued(self):
        """Seconds the frame waited for the worker (another was being done)."""
        return self.t_start - self.t_complete

    def summary(self):
        """One line for a log or a terminal."""
        if self.status == "calibrated":
            text = f"{self.name}: calibrated -> {self.output} ({self.latency:.2f} s)"
            if self.match is not None and self.match.missing:
                text += "; NOT applied: " + ", ".join(self.match.missing)
            return "; ".join([text] + self.warnings)
        if self.status == "exists":
            return f"{self.name}: already calibrated ({self.output}), skipped"
        if self.status == "calibration":
            frame = self.frame
            what = frame.frametype
            if frame.frametype == "dark" and frame.exptime is not None:
                what += f" {frame.exptime:g} s"
            if frame.frametype == "flat" and frame.filter:
                what += f" {frame.filter}"
            text = f"{self.name}: new {what} frame"
            if self.stale:
                text += "; older now: " + ", ".join(m.name for m in self.stale)
            return "; ".join([text] + self.warnings)
        if self.status == "ignored":
            return f"{self.name}: ignored ({self.problem})"
        return f"{self.path}: {self.problem}"


@dataclass
class _Pending:
    """A file seen but not yet complete."""

    sig: tuple
    changed_at: float
    done_event: bool = False


@dataclass
class _Job:
    path: str
    sig: tuple
    t_complete: float
    frame: object = None
    problem: str = None


class _Handler(FileSystemEventHandler):
    """Passes watchdog's events to the watcher (runs in watchdog's thread)."""

    def __init__(self, watcher):
        super().__init__()
        self._watcher = watcher

    def on_any_event(self, event):
        kind = event.event_type
        src = os.fsdecode(event.src_path)
        if event.is_directory:
            if kind in ("created", "moved"):
                # A folder that arrives with files in it: look inside.
                self._watcher._touch_tree(os.fsdecode(getattr(event, "dest_path", "") or src))
            return
        if kind == "moved":
            self._watcher._touch(src, "deleted")
            self._watcher._touch(os.fsdecode(event.dest_path), "moved")
        elif kind in _DONE_EVENTS + _CHANGE_EVENTS + ("deleted",):
            self._watcher._touch(src, kind)


class FolderWatcher:
    """Watch a folder of raw frames and calibrate each new light.

    Parameters
    ----------
    raw_dir : str or path-like
        The camera's folder.  Never written to.
    out_dir : str or path-like
        Calibrated lights go here, with the raw names and sub-folders
        (`ginga_ccdcal.calibrate.output_path`).  Created if missing.
    masters_dir : str or path-like, optional
        Folder of masters made by this package; reloaded whenever its
        content changes, so masters rebuilt elsewhere are used from the
        next light on.
    masters : list of `~ginga_ccdcal.masters.MasterFrame`, optional
        Masters to use (together with those in ``masters_dir``).
    on_result : callable, optional
        ``on_result(WatchResult)``, called in the worker thread for every
        file handled.
    on_event : callable, optional
        ``on_event(text)`` for messages about the watcher itself (what it
        watches, masters reloaded, fallback to polling); called from
        `start`'s thread or the worker thread.
    poll : bool
        Poll the folder every ``poll_interval`` seconds instead of using
        the operating system's notifications (network drives).
    poll_interval : float
        Seconds between polls; also how long a file must stay unchanged to
        count as complete when no "closed" event says so.  Polling thus
        adds one to two intervals to the latency (a file may be
        preallocated by a network copy, so its size alone proves nothing).
    settle : float
        Seconds a file may stay unreadable and unchanged before it is
        reported as a problem.
    recursive : bool
        Watch sub-folders too (hidden ones are skipped).
    existing : bool
        Handle the frames already in the folder at `start` (resume);
        otherwise only new or changed files are.
    calibration : `~ginga_ccdcal.calibrate.CalibrationOptions`, optional
        How each light is calibrated; with ``strict`` a light lacking a
        master is a problem, not written.
    rebuild_masters : bool
        Live masters: when new bias, dark or flat frames arrive, rebuild the
        masters they make stale (and build missing ones) in ``masters_dir``
        before the next light is calibrated, or as soon as the queue is
        empty.  Lights calibrated after that use the new master, and the
        result's ``lines`` name each master with its version.  A rebuilt
        dark does not by itself rebuild the flats made with the old one.
    master_options : `~ginga_ccdcal.masters.MasterOptions`, optional
        How live masters are combined.
    aliases : dict, optional
        The user's type and filter spellings (`ginga_ccdcal.classify.load_aliases`).

    Attributes
    ----------
    mode : str or None
        ``'native'`` or ``'poll'`` once started (native watching falls back
        to polling if the system refuses it).
    counts : dict
        Number of results of each status in `STATUSES` so far.
    masters : list of `~ginga_ccdcal.masters.MasterFrame`
        What the next light is matched against.
    running : bool

    Raises
    ------
    FrameError
        ``raw_dir`` is not a folder.
    CcdcalError
        ``out_dir`` is ``raw_dir``.

    Examples
    --------
    >>> watcher = FolderWatcher('raw', 'out', masters_dir='out/masters',
    ...                         on_result=print)            # doctest: +SKIP
    >>> watcher.start()                                     # doctest: +SKIP
    >>> watcher.stop()                                      # doctest: +SKIP
    """

    def __init__(self, raw_dir, out_dir, *, masters_dir=None, masters=None,
                 on_result=None, on_event=None, poll=False, poll_interval=0.5,
                 settle=30.0, recursive=True, existing=True, calibration=None,
                 aliases=None, rebuild_masters=False, master_options=None):
        self.raw_dir = os.path.abspath(os.fspath(raw_dir))
        if not os.path.isdir(self.raw_dir):
            raise FrameError(self.raw_dir, "no such folder")
        self.out_dir = os.path.abspath(os.fspath(out_dir))
        if self.out_dir == self.raw_dir:
            raise CcdcalError(f"{self.out_dir}: the output folder must differ "
                              "from the raw folder")
        self.masters_dir = (os.path.abspath(os.fspath(masters_dir))
                            if masters_dir else None)
        self.on_result = on_result
        self.on_event = on_event
        self.poll = bool(poll)
        self.poll_interval = float(poll_interval)
        self.settle = float(settle)
        self.recursive = bool(recursive)
        self.existing = bool(existing)
        self.calibration = calibration
        self.aliases = aliases
        self.counts = dict.fromkeys(STATUSES, 0)
        if rebuild_masters and self.masters_dir is None:
            raise CcdcalError("live masters need a masters folder (masters_dir)")
        self.rebuild_masters = bool(rebuild_masters)
        self.master_options = master_options
        self._masters_dirty = False
        self._scan = None

        self._given_masters = list(masters or [])
        self._masters = list(self._given_masters)
        self._masters_sig = None
        # Our outputs may live inside the raw folder: never inputs.
        self._excluded = [d + os.sep for d in (self.out_dir, self.masters_dir) if d]

        self._lock = threading.RLock()
        self._dirty = {}          # path -> last event type, from any thread
        self._pending = {}        # path -> _Pending (checker thread only)
        self._done = {}           # path -> signature handled (checker thread only)
        self._queue = queue.Queue()
        self._inflight = 0        # jobs queued or being worked on
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._observer = None
        self._threads = []
        self.mode = None

    # -- public ---------------------------------------------------------------

    def start(self):
        """Start watching (observer, checker and worker threads).

        Raises
        ------
        CcdcalError
            The output folder cannot be created or written.
        """
        if self._threads:
            raise RuntimeError("this watcher was already started")
        ensure_folder(self.out_dir)
        self._reload_masters(force=True)
        self._start_observer()
        # Files already there: after the observer, so nothing written in
        # between is missed (a file seen twice is deduplicated).
        if self.existing:
            self._touch_tree(self.raw_dir)
        else:
            for path in self._walk(self.raw_dir):
                sig = _signature(path)
                if sig is not None:
                    self._done[path] = sig
        for target, name in ((self._check_loop, "ccdcal-watch-check"),
                             (self._work_loop, "ccdcal-watch-worker")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout=None):
        """Stop watching and join the threads.

        The frame being calibrated is finished; frames still queued are
        left for the next start (they are not marked done).  Safe to call
        twice, and from a callback.
        """
        self._stopping.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            if self._observer.is_alive():
                self._observer.join(timeout)
        self._queue.put(None)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current and thread.is_alive():
                thread.join(timeout)
        self._stopped.set()

    @property
    def running(self):
        """True between `start` and `stop`."""
        return bool(self._threads) and not self._stopping.is_set()

    def wait(self, timeout=None):
        """Block until `stop` is called (from another thread) or ``timeout``.

        Meant for the command line: Ctrl-C interrupts it.  Returns True if
        the watcher was stopped.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopped.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return False
            self._stopped.wait(left)
        return True

    def wait_idle(self, timeout=None):
        """Wait until every file seen so far has been handled.

        Files whose events have not reached the watcher yet are not
        counted.  Returns True if idle, False on ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                idle = not self._dirty and not self._pending and self._inflight == 0
            if idle:
                return True
            if self._stopping.is_set():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    @property
    def masters(self):
        """The masters the next light will be matched against."""
        return list(self._masters)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- discovering files ------------------------------------------------------

    def _start_observer(self):
        if not self.poll:
            try:
                observer = Observer()
                observer.schedule(_Handler(self), self.raw_dir, recursive=self.recursive)
                observer.start()
            except OSError as exc:
                # E.g. the inotify watch limit: polling still works.
                self._event(f"cannot watch {self.raw_dir} natively "
                            f"({exc.strerror or exc}); polling instead")
            else:
                self._observer, self.mode = observer, "native"
                self._event(f"watching {self.raw_dir}")
                return
        observer = PollingObserver(timeout=self.poll_interval)
        observer.schedule(_Handler(self), self.raw_dir, recursive=self.recursive)
        observer.start()
        self._observer, self.mode = observer, "poll"
        self._event(f"watching {self.raw_dir} (polling every {self.poll_interval:g} s)")

    def _candidate(self, path):
        """A FITS name inside the watched tree, not hidden, not our output."""
        if not is_fits_name(os.path.basename(path)):
            return False
        if any(path.startswith(d) for d in self._excluded):
            return False
        rel = os.path.relpath(path, self.raw_dir)
        parts = rel.split(os.sep)
        if parts[0] == ".." or any(p.startswith(".") for p in parts):
            return False
        return self.recursive or len(parts) == 1

    def _walk(self, top):
        if not os.path.isdir(top):
            return
        for root, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and not any(os.path.join(root, d) + os.sep == x
                                         for x in self._excluded))
            for name in sorted(files):
                path = os.path.join(root, name)
                if self._candidate(path):
                    yield path
            if not self.recursive:
                break

    def _touch(self, path, kind):
        """Note an event for ``path`` (any thread).

        Events between two checks are merged: the latest wins, except that
        a rescan never hides a real event.
        """
        path = os.path.abspath(path)
        if not self._candidate(path):
            return
        with self._lock:
            if not (kind == "scan" and path in self._dirty):
                self._dirty[path] = kind
        self._wake.set()

    def _touch_tree(self, top):
        for path in self._walk(top):
            self._touch(path, "scan")

    # -- the checker thread: is a file complete? -------------------------------

    def _check_loop(self):
        next_rescan = time.monotonic() + RESCAN_INTERVAL
        while not self._stopping.is_set():
            with self._lock:
                pending = bool(self._pending)
            # With files pending, look again soon; else sleep until an event.
            timeout = self.poll_interval / 2 if pending else RESCAN_INTERVAL
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                if self.mode == "native" and time.monotonic() >= next_rescan:
                    next_rescan = time.monotonic() + RESCAN_INTERVAL
                    self._touch_tree(self.raw_dir)
                self._take_events()
                self._check_pending()
            except Exception:  # never let the watcher die silently
                log.exception("watch: checking files failed")

    def _take_events(self):
        # Under the lock throughout, so `wait_idle` never sees a file that
        # has left ``_dirty`` but not yet reached ``_pending``.
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            now = time.monotonic()
            for path, kind in dirty.items():
                sig = _signature(path)
                if sig is None:
                    # Deleted or renamed away before it was complete.
                    self._pending.pop(path, None)
                    continue
                if self._done.get(path) == sig:
                    continue
                entry = self._pending.get(path)
                if entry is None or entry.sig != sig:
                    entry = self._pending[path] = _Pending(sig, now)
                if kind in _DONE_EVENTS:
                    entry.done_event = True
                elif kind != "scan":
                    entry.done_event = False

    def _check_pending(self):
        now = time.monotonic()
        with self._lock:
            items = sorted(self._pending.items())
        for path, entry in items:
            if self._stopping.is_set():
                return
            sig = _signature(path)
            if sig is None:
                self._forget(path)
                continue
            if sig != entry.sig:
                entry.sig, entry.changed_at, entry.done_event = sig, now, False
                continue
            quiet = now - entry.changed_at
            if not (entry.done_event or quiet >= self.poll_interval):
                continue
            try:
                frame = frame_from_file(path, aliases=self.aliases, guess=False)
            except (FrameError, OSError) as exc:
                # Still being written, most likely: wait, up to `settle`.
                if quiet >= self.settle:
                    problem = exc.problem if isinstance(exc, FrameError) else \
                        f"cannot read ({exc.strerror or exc})"
                    self._enqueue(path, sig, _Job(
                        path, sig, time.monotonic(),
                        problem=f"{problem} (unchanged for {quiet:.0f} s)"))
                continue
            if _signature(path) != sig:
                continue  # changed while we read it: next round
            self._enqueue(path, sig, _Job(path, sig, time.monotonic(), frame=frame))

    def _forget(self, path):
        with self._lock:
            self._pending.pop(path, None)

    def _enqueue(self, path, sig, job):
        with self._lock:
            self._pending.pop(path, None)
            self._done[path] = sig
            self._inflight += 1
        self._queue.put(job)

    # -- the worker thread: calibrate and report --------------------------------

    def _work_loop(self):
        while True:
            job = self._queue.get()
            if job is None or self._stopping.is_set():
                if job is not None:
                    # Not done: let the next start see the file again.
                    with self._lock:
                        self._done.pop(job.path, None)
                        self._inflight -= 1
                    continue
                return
            try:
                result = self._process(job)
            except Exception as exc:  # a bug must not stop the night
                log.exception("watch: %s failed", job.path)
                result = self._result(job, "problem", problem=f"unexpected error: {exc!r}")
            self.counts[result.status] += 1
            try:
                if self.on_result is not None:
                    self.on_result(result)
            except Exception:
                log.exception("watch: on_result callback failed for %s", job.path)
            finally:
                with self._lock:
                    self._inflight -= 1

    def _result(self, job, status, t_start=None, **fields):
        return WatchResult(path=job.path, name=os.path.relpath(job.path, self.raw_dir),
                           status=status, t_complete=job.t_complete,
                           t_start=t_start or time.monotonic(), t_ready=time.monotonic(),
                           **fields)

    def _process(self, job):
        t_start = time.monotonic()
        if job.problem is not None:
            return self._result(job, "problem", t_start, problem=job.problem)
        frame = job.frame
        if is_product(frame.header):
            return self._result(job, "ignored", t_start, frame=frame,
                                problem="written by ginga_ccdcal, not a raw frame")
        if frame.frametype == "unknown":
            try:
                frame = frame_from_file(job.path, aliases=self.aliases, guess=True)
            except (FrameError, OSError) as exc:
                return self._result(job, "problem", t_start, problem=str(exc))
            if frame.frametype == "unknown":
                return self._result(job, "ignored", t_start, frame=frame,
                                    problem="frame type unknown (no type keyword, "
                                            "no usable pixels)")
        warnings = []
        if frame.guessed:
            warnings.append(f"no usable IMAGETYP/OBSTYPE/FRAMETYP, type guessed as "
                            f"'{frame.frametype}' from the pixels")
        if frame.frametype in MASTER_KINDS:
            stale = [m for m, _ in stale_masters(self._reload_masters(), [frame])]
            lines = [f"{m.name} is older than this {frame.frametype} frame"
                     for m in stale]
            if self.rebuild_masters:
                self._masters_dirty = True
                if self._queue.empty():
                    lines += self._rebuild()
            return self._result(job, "calibration", t_start, frame=frame,
                                stale=stale, lines=lines, warnings=warnings)
        target = output_path(frame, self.out_dir, self.raw_dir)
        exists = os.path.exists(target)
        if exists and is_complete(target):
            return self._result(job, "exists", t_start, frame=frame, output=target)
        if self._masters_dirty:
            warnings.extend(self._rebuild())
        match = match_light(frame, self._reload_masters())
        lines = match.describe()
        warnings.extend(match.warnings)
        notes = []
        try:
            # An output cut short (power lost after the rename) is redone.
            path, ccd = calibrate_and_write(frame, match, self.out_dir, self.calibration,
                                            raw_root=self.raw_dir, overwrite=exists,
                                            notes=notes)
        except OutputExists:
            return self._result(job, "exists", t_start, frame=frame, output=target,
                                match=match, lines=lines)
        except CcdcalError as exc:
            text = str(exc)
            # The core's messages start with the path; ours adds it back.
            prefix = job.path + ": "
            return self._result(job, "problem", t_start, frame=frame, match=match,
                                lines=lines, warnings=warnings,
                                problem=text[len(prefix):]
                                if text.startswith(prefix) else text)
        return self._result(job, "calibrated", t_start, frame=frame, output=path,
                            ccd=ccd, match=match, lines=lines,
                            warnings=warnings + notes)

    # -- masters ------------------------------------------------------------------

    def _rebuild(self):
        """Rebuild stale masters and build missing ones (worker thread).

        Returns lines about what was done, for the result that triggered it.
        """
        self._masters_dirty = False
        scan = scan_folder(self.raw_dir, previous=self._scan, aliases=self.aliases,
                           recursive=self.recursive)
        self._scan = scan
        frames = [f for f in scan.frames
                  if not any(f.path.startswith(d) for d in self._excluded)]
        stale = {m.path for m, _ in stale_masters(self._reload_masters(), frames)}
        try:
            report = build_masters(frames, self.masters_dir, self.master_options,
                                   overwrite=stale)
        except CcdcalError as exc:
            self._event(f"masters not rebuilt: {exc}")
            return [f"masters not rebuilt: {exc}"]
        self._reload_masters(force=True)
        made = [m for m in report.masters if m is not None and m not in report.kept]
        lines = [f"master rebuilt: {m.name} ({m.version})" for m in made]
        for line in lines + [f"master problem: {p}" for p in report.problems]:
            self._event(line)
        return lines

    def _reload_masters(self, force=False):
        """The current masters, re-read if the masters folder changed."""
        if self.masters_dir is None:
            return self._masters
        sig = _folder_signature(self.masters_dir)
        if force or sig != self._masters_sig:
            loaded = load_masters(self.masters_dir)
            given = {m.path for m in self._given_masters}
            self._masters = self._given_masters + [m for m in loaded if m.path not in given]
            self._masters_sig = sig
            names = "; ".join(m.describe() for m in loaded) or "none"
            self._event(f"masters from {self.masters_dir}: {names}")
        return self._masters

    def _event(self, text):
        log.info("watch: %s", text)
        if self.on_event is not None:
            try:
                self.on_event(text)
            except Exception:
                log.exception("watch: on_event callback failed")


def _signature(path):
    """(size, mtime in ns) of a regular file, or None if it is not one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


def _folder_signature(folder):
    """What changes when a master in ``folder`` is added, rebuilt or removed."""
    try:
        entries = os.scandir(folder)
    except OSError:
        return ()
    with entries:
        found = []
        for entry in entries:
            if entry.name.startswith(".") or not is_fits_name(entry.name):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            found.append((entry.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))
