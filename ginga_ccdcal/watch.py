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
    the camera renames them).  A file is complete when it has stopped
    changing, never from its size alone (copy tools and some camera
    programs create the file at full size and fill it afterwards):

    * on Linux with the native observer, a file created while watched
      (creating a file opens it), or changed by a writer seen opening it,
      is held by that writer until it is closed after writing, however
      long it sits unchanged (up to `OPEN_WRITER_TIMEOUT`, in case the
      close was lost).  Its creation alone says so: the writer's "opened"
      may be reported late (a busy machine).  Readers' opens and closes
      (a viewer) never end the writer's hold;
    * a file reported closed after writing, or renamed into the folder
      (from inside or outside it), is complete at once;
    * otherwise (polling, other systems, files found by a scan, also in
      a folder that just appeared, writers that opened the file before it
      was watched) once its size and modification time have not changed
      for ``settle`` seconds.

    A complete file is read once its header parses and the data it
    announces are all there (`ginga_ccdcal.fitsfile.read_header`).  One
    that will not parse is reported as a problem, once, ``settle`` seconds
    after it stopped changing; if it changes later it is looked at again.

Exactly once, and only while right
    Files are remembered by path, size and modification time, so nothing
    is done twice.  A light whose calibrated output already exists is
    skipped (status ``'exists'``) only if that output is still right
    (`ginga_ccdcal.products.check_light_product`: the raw file is the one
    it was made from, and it used the masters that would be chosen now);
    otherwise it is calibrated again and the result says why (``redone``).
    Restarting the watcher resumes where it stopped.  A full rescan every
    `RESCAN_INTERVAL` seconds catches events the operating system dropped.

Nothing quietly uncalibrated
    When the masters folder lacks masters that the calibration frames in
    the watched folder could make, they are built first (as ``reduce``
    does).  A light that no master bias, dark or flat fits is not written:
    its status is ``'uncalibrated'``.  A light calibrated without some
    step says which in its result (``missing``, ``banner``).

Live masters
    With ``rebuild_masters``, a master is rebuilt when the set of raw
    frames it was made from differs from the frames now present that
    belong to it (`ginga_ccdcal.products.check_masters`), once no new
    calibration frame has arrived for ``burst_quiet`` seconds (a burst of
    flats makes one rebuild, not ten); the darks and flats made with a
    rebuilt bias, and the flats made with a rebuilt dark, are rebuilt too.
    A light arriving while masters are due is calibrated after a rebuild
    with the frames there so far; the burst's later frames rebuild again.

Threads
    Callbacks run in the worker thread, one result at a time and in the
    order the frames were completed; a GUI must pass them on to its own
    thread (Ginga: ``fv.gui_do``).
"""

import logging
import os
import queue
import stat
import sys
import threading
import time
from dataclasses import dataclass, field

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

if sys.platform.startswith("linux"):
    # Its "full events" report a file renamed in from outside the folder as
    # moved (a finished file), not as created (a file a writer holds).
    from watchdog.observers.inotify import InotifyObserver
else:
    InotifyObserver = None

from . import buffers
from .calibrate import calibrate_and_write, not_calibrated_reason, output_path
from .errors import CcdcalError, FrameError, NotCalibrated
from .fitsfile import is_fits_name
from .masters import MASTER_KINDS, build_masters, load_masters
from .match import match_light
from .products import check_light_product, check_masters, masters_lacking
from .safe_write import OutputExists, ensure_folder
from .scan import frame_from_file, is_product, scan_folder

__all__ = ["WatchResult", "FolderWatcher", "STATUSES", "RESCAN_INTERVAL"]

log = logging.getLogger(__name__)

#: What a `WatchResult` can say about a file.
STATUSES = ("calibrated", "uncalibrated", "exists", "calibration", "problem", "ignored")

#: Seconds between full rescans in native mode (a safety net for lost events).
RESCAN_INTERVAL = 30.0

#: Seconds a file its writer still holds open may stay unchanged before it
#: is taken as complete anyway (the close event may have been lost).
OPEN_WRITER_TIMEOUT = 60.0

# Problems that mean "not all written yet" rather than "not FITS".
_UNFINISHED = ("truncated", "empty file")

# Event types that mean "the writer is done with this name": the file was
# closed after writing, or renamed into place.
_DONE_EVENTS = ("closed", "moved")
_CHANGE_EVENTS = ("created", "modified")
_OPEN_EVENTS = ("opened", "closed_no_write")


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
        ``'calibrated'`` (a light, written to ``output``; see ``missing``),
        ``'uncalibrated'`` (a light no master bias, dark or flat fits: not
        written, see ``problem``), ``'exists'`` (a light whose output was
        already there and still right: skipped), ``'calibration'`` (a bias,
        dark or flat arrived), ``'problem'`` (unreadable, or the
        calibration failed; see ``problem``) or ``'ignored'`` (a file this
        package wrote, or one whose type cannot be told).
    frame : `~ginga_ccdcal.scan.Frame` or None
    output : str or None
        Calibrated file (``'calibrated'`` and ``'exists'``).
    missing : list of str
        For ``'calibrated'`` lights: the steps NOT applied (``'bias'``,
        ``'dark'``, ``'flat'``), each explained in `banner`.
    redone : str or None
        For ``'calibrated'`` lights whose earlier output was no longer
        right (raw file changed, masters rebuilt...): why it was replaced.
    ccd : astropy.nddata.CCDData or None
        The calibrated frame (``'calibrated'`` only).
    match : `~ginga_ccdcal.match.MatchResult` or None
    lines : list of str
        For lights, which master was used for each step and why; for
        calibration frames, which masters are now older than new frames.
    problem : str or None
        What is wrong (``'problem'``), why the file was ignored, or why a
        light was not calibrated (``'uncalibrated'``).
    warnings : list of str
        Things the observer should know although the frame was used: its
        type was guessed from the pixels, a master is far off in
        temperature, pixels are NaN or saturated...
    stale : list of `~ginga_ccdcal.masters.MasterFrame`
        Masters of this calibration frame's kind and setup that were made
        without it (`ginga_ccdcal.products.masters_lacking`).
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
    missing: list = field(default_factory=list)
    redone: str = None
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

    @property
    def banner(self):
        """What a viewer should say over this calibrated frame, or None.

        ``'partly calibrated: flat NOT applied (no master flat for filter
        V)'`` when steps are missing; None when every step was applied.
        """
        if self.status == "uncalibrated":
            return f"NOT calibrated: {self.problem}"
        if not self.missing:
            return None
        return "partly calibrated: " + "; ".join(
            f"{role} NOT applied ({getattr(self.match, role).reason})"
            if self.match is not None else f"{role} NOT applied"
            for role in self.missing)

    def summary(self):
        """One line for a log or a terminal."""
        if self.status == "calibrated":
            verb = "recalibrated" if self.redone else "calibrated"
            text = f"{self.name}: {verb} -> {self.output} ({self.latency:.2f} s)"
            if self.redone:
                text += f", because {self.redone}"
            if self.missing:
                text += "; NOT applied: " + ", ".join(self.missing)
            return "; ".join([text] + self.warnings)
        if self.status == "uncalibrated":
            return f"{self.name}: NOT calibrated, nothing written: {self.problem}"
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
                # "older now": made before this frame, and without it.
                text += "; older now: " + ", ".join(m.name for m in self.stale)
            return "; ".join([text] + self.warnings)
        if self.status == "ignored":
            return f"{self.name}: ignored ({self.problem})"
        return f"{self.path}: {self.problem}"


@dataclass
class _Pending:
    """A file seen but not yet complete: ``sig`` and when it last changed
    (``changed_at``, `time.monotonic`)."""

    sig: tuple
    changed_at: float


@dataclass
class _Events:
    """What the observer said about one file, in order.

    ``opens``: opened and not yet closed, by anyone (readers too: the
    system does not say who), its creator counted from "created" on;
    ``creating``: created, and the creator's own "opened" (which follows,
    maybe late) not heard yet, so it is not counted twice; ``created``:
    created while watched and not closed after writing since: held by its
    writer whatever the counts say (watchdog drops an event equal to the
    one still queued before it, so readers' opens and closes do not
    always pair up); ``writing``: a
    writer holds it: created, or changed while open (Linux reports opens
    and closes; an open from before the folder was watched is not seen,
    and such a file is judged by time); ``changed``: created or modified
    since the last close after writing; ``closed``: closed after writing
    (or renamed into place) since.
    """

    opens: int = 0
    creating: bool = False
    created: bool = False
    writing: bool = False
    changed: bool = False
    closed: bool = False

    def note(self, kind):
        if kind == "created":
            # open(name, "w") creates and opens in one call: the creator
            # holds the file from now on, even if the observer's thread has
            # not passed its "opened" on yet (a busy machine).
            self.opens += 1
            self.creating = self.created = True
            self.changed, self.closed, self.writing = True, False, True
        elif kind == "opened":
            if self.creating:
                self.creating = False   # the creator's: counted at "created"
            else:
                self.opens += 1
        elif kind == "closed_no_write":
            # A reader (a writer's close says "closed"): nobody left open
            # means the writer, if any, was never seen opening it.  Never
            # ends a creator's hold (a file created by a hard link or
            # without write access is so waited for OPEN_WRITER_TIMEOUT).
            self.opens = max(0, self.opens - 1)
            self.writing = self.writing and (self.opens > 0 or self.created)
        elif kind in _CHANGE_EVENTS:
            self.changed, self.closed = True, False
            self.writing = self.writing or self.opens > 0
        elif kind in _DONE_EVENTS:
            self.opens = max(0, self.opens - 1) if kind == "closed" else 0
            self.closed, self.writing, self.changed = True, False, False
            self.created = self.creating = False


@dataclass
class _Job:
    path: str
    sig: tuple
    t_complete: float
    frame: object = None
    problem: str = None
    #: ``'file'``, or ``'prepare'``: build missing masters before the first file.
    kind: str = "file"


class _Handler(FileSystemEventHandler):
    """Passes watchdog's events to the watcher (runs in watchdog's thread)."""

    def __init__(self, watcher):
        super().__init__()
        self._watcher = watcher

    def on_any_event(self, event):
        kind = event.event_type
        # Full events: a rename from outside the folder has no source, one
        # to outside no destination (older watchdog: None, newer: "").
        src = os.fsdecode(event.src_path or "")
        dest = os.fsdecode(getattr(event, "dest_path", None) or "")
        if event.is_directory:
            if kind in ("created", "moved") and (dest or src):
                # A folder that arrives with files in it: look inside.
                self._watcher._touch_tree(dest or src, walked=True)
            return
        if kind == "moved":
            if src:
                self._watcher._touch(src, "deleted")
            if dest:
                self._watcher._touch(dest, "moved")
        elif kind in _DONE_EVENTS + _CHANGE_EVENTS + _OPEN_EVENTS + ("deleted",):
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
        Seconds between polls.
    settle : float
        Seconds a file must stay unchanged (size and modification time) to
        count as complete when no "closed" event says so (polling, files
        found by a scan); a complete file that does not parse is reported
        as a problem this long after it stopped changing.
    burst_quiet : float
        Live masters: seconds without a new calibration frame before the
        masters are rebuilt (a burst of frames makes one rebuild).
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
        masters whose inputs differ from the frames present (and build
        missing ones) in ``masters_dir``, with the masters made from a
        rebuilt one; once ``burst_quiet`` seconds pass without a new
        calibration frame, or before the next light is calibrated.  Lights
        calibrated after that use the new master, and the result's
        ``lines`` name each master with its version.  Without it, only
        masters that are missing altogether are built, at the start.
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
    redone : int
        How many of the ``'calibrated'`` lights replaced an earlier output
        that was no longer right (each result's ``redone`` says why).
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
                 settle=2.0, recursive=True, existing=True, calibration=None,
                 aliases=None, rebuild_masters=False, master_options=None,
                 burst_quiet=2.0):
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
        self.burst_quiet = float(burst_quiet)
        self.recursive = bool(recursive)
        self.existing = bool(existing)
        self.calibration = calibration
        self.aliases = aliases
        self.counts = dict.fromkeys(STATUSES, 0)
        self.redone = 0
        if rebuild_masters and self.masters_dir is None:
            raise CcdcalError("live masters need a masters folder (masters_dir)")
        self.rebuild_masters = bool(rebuild_masters)
        self.master_options = master_options
        self._masters_dirty = False
        self._last_calibration = 0.0   # monotonic time the last one arrived
        self._offered = set()          # (path, mtime) of frames given to the builder
        self._scan = None
        self._close_events = False     # does the observer report closes?

        self._given_masters = list(masters or [])
        self._masters = list(self._given_masters)
        self._masters_sig = None
        # Our outputs may live inside the raw folder: never inputs.
        self._excluded = [d + os.sep for d in (self.out_dir, self.masters_dir) if d]

        self._lock = threading.RLock()
        self._dirty = {}          # path -> last event type, from any thread
        self._pending = {}        # path -> _Pending (checker thread only)
        self._events = {}         # path -> _Events, what the observer said
        # Files found in a folder as it appeared: watchdog reports them
        # "created" too (after the folder), which says nothing of a writer.
        self._walked = set()
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
        if self.masters_dir is not None:
            # First job of the worker: masters the folder's calibration
            # frames can make, before any light is calibrated.
            with self._lock:
                self._inflight += 1
            self._queue.put(_Job(None, None, time.monotonic(), kind="prepare"))
        elif not self._masters:
            self._event("no masters given: lights will NOT be calibrated (nor written)")
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
                idle = (not self._dirty and not self._pending and self._inflight == 0
                        and not (self.rebuild_masters and self._masters_dirty))
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
                observer = (InotifyObserver(generate_full_events=True)
                            if InotifyObserver is not None else Observer())
                observer.schedule(_Handler(self), self.raw_dir, recursive=self.recursive)
                observer.start()
            except OSError as exc:
                # E.g. the inotify watch limit: polling still works.
                self._event(f"cannot watch {self.raw_dir} natively "
                            f"({exc.strerror or exc}); polling instead")
            else:
                self._observer, self.mode = observer, "native"
                # inotify reports "closed after writing"; other systems do not.
                self._close_events = sys.platform.startswith("linux")
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
        a rescan never hides a real event; every event is noted in order in
        the file's `_Events`.  Opening and closing without writing change
        nothing to look at.
        """
        path = os.path.abspath(path)
        if not self._candidate(path):
            return
        with self._lock:
            if kind == "deleted":
                # Whatever was said of the old file is not about a new one.
                self._events.pop(path, None)
                self._walked.discard(path)
            elif kind == "created" and path in self._walked:
                self._walked.discard(path)
                kind = "modified"   # found already there, not seen created
            if kind not in ("scan", "deleted"):
                events = self._events.setdefault(path, _Events())
                events.note(kind)
                if events == _Events():
                    del self._events[path]   # e.g. opened and closed by a reader
            if kind in _OPEN_EVENTS:
                return
            if not (kind == "scan" and path in self._dirty):
                self._dirty[path] = kind
        self._wake.set()

    def _touch_tree(self, top, walked=False):
        """Look at every file under ``top``; ``walked``: a folder that just
        appeared (its files are reported "created" next)."""
        for path in self._walk(top):
            if walked:
                with self._lock:
                    self._walked.add(os.path.abspath(path))
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
                    self._events.pop(path, None)
                    continue
                if self._done.get(path) == sig:
                    continue
                entry = self._pending.get(path)
                if entry is None or entry.sig != sig:
                    fresh = entry is None
                    entry = self._pending[path] = _Pending(sig, now)
                    if fresh and kind == "scan" and path not in self._events:
                        # Found, not seen written: unchanged since its mtime.
                        entry.changed_at -= max(0.0, time.time() - sig[1] / 1e9)

    def _file_events(self, path):
        with self._lock:
            return self._events.get(path) or _Events()

    def _ready(self, entry, events, now):
        """Whether a pending file has stopped changing (see the module help)."""
        quiet = now - entry.changed_at
        if events.closed:
            # Closed (or renamed into place) and unchanged since: done.  No
            # extra wait, so a closed frame is calibrated at once.
            return True
        if self._close_events and events.writing:
            # Its writer still has it open: a close will come.
            return quiet >= max(self.settle, OPEN_WRITER_TIMEOUT)
        return quiet >= self.settle

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
            events = self._file_events(path)
            if sig != entry.sig:
                # Changed after any close we heard of: that close is old news.
                entry.sig, entry.changed_at, events.closed = sig, now, False
                continue
            if not self._ready(entry, events, now):
                continue
            quiet = now - entry.changed_at
            try:
                frame = frame_from_file(path, aliases=self.aliases, guess=False)
            except (FrameError, OSError) as exc:
                problem = exc.problem if isinstance(exc, FrameError) else \
                    f"cannot read ({exc.strerror or exc})"
                # A file cut short that was seen being written, with no word
                # that its writer is done, gets longer; anything else
                # (closed, or found already there) is reported after `settle`.
                unfinished = (problem.startswith(_UNFINISHED) and events.changed
                              and not events.closed)
                if quiet >= (max(self.settle, OPEN_WRITER_TIMEOUT) if unfinished
                             else self.settle):
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
            self._events.pop(path, None)
            self._walked.discard(path)

    def _enqueue(self, path, sig, job):
        with self._lock:
            self._pending.pop(path, None)
            self._events.pop(path, None)
            self._done[path] = sig
            self._inflight += 1
        self._queue.put(job)

    # -- the worker thread: calibrate and report --------------------------------

    def _work_loop(self):
        while True:
            try:
                # With masters due, wake up to rebuild them once it is quiet.
                job = self._queue.get(timeout=min(self.burst_quiet, 0.25)
                                      if self._masters_dirty else None)
            except queue.Empty:
                if not self._stopping.is_set():
                    self._guarded(self._rebuild_if_quiet, "rebuilding the masters")
                continue
            if job is None or self._stopping.is_set():
                if job is not None:
                    # Not done: let the next start see the file again.
                    with self._lock:
                        self._done.pop(job.path, None)
                        self._inflight -= 1
                    continue
                return
            if job.kind == "prepare":
                self._guarded(self._prepare_masters, "preparing the masters")
                with self._lock:
                    self._inflight -= 1
                continue
            try:
                result = self._process(job)
            except Exception as exc:  # a bug must not stop the night
                log.exception("watch: %s failed", job.path)
                result = self._result(job, "problem", problem=f"unexpected error: {exc!r}")
            self.counts[result.status] += 1
            self.redone += bool(result.redone)
            try:
                if self.on_result is not None:
                    self.on_result(result)
            except Exception:
                log.exception("watch: on_result callback failed for %s", job.path)
            finally:
                with self._lock:
                    self._inflight -= 1
            if result.status == "calibrated" and self._queue.empty():
                # Time to spare before the next light: have its memory
                # ready, so it is not fetched while the observer waits.
                self._guarded(lambda: buffers.prepare(result.frame.shape, "float32"),
                              "preparing memory for the next light")

    def _guarded(self, work, what):
        try:
            work()
        except Exception as exc:  # a bug must not stop the night
            log.exception("watch: %s failed", what)
            self._event(f"{what} failed: {exc!r}")

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
                # The classification's own reason (`Frame.type_note`), so
                # every front end says the same about this frame.
                why = frame.type_note or "no type keyword, no usable pixels"
                return self._result(job, "ignored", t_start, frame=frame,
                                    problem=f"frame type unknown ({why})")
        warnings = []
        if frame.guessed:
            warnings.append(f"no usable IMAGETYP/OBSTYPE/FRAMETYP, type guessed as "
                            f"'{frame.frametype}' from the pixels")
        if frame.frametype in MASTER_KINDS:
            return self._calibration_frame(job, frame, t_start, warnings)
        return self._light(job, frame, t_start, warnings)

    def _calibration_frame(self, job, frame, t_start, warnings):
        """A bias, dark or flat arrived: say which masters lack it (and rebuild)."""
        known = [f.path for f in self._scan.frames] if self._scan is not None else []
        stale = masters_lacking(frame, self._reload_masters(), known)
        lines = [f"{m.name} was made without this {frame.frametype} frame"
                 for m in stale]
        if self.rebuild_masters:
            self._masters_dirty = True
            self._last_calibration = time.monotonic()
            # Wait out the burst: if nothing else comes, rebuild now, so the
            # caller hears of the new masters with this frame.
            deadline = time.monotonic() + 4 * self.burst_quiet + 1.0
            while time.monotonic() < deadline and not self._stopping.is_set():
                if not self._queue.empty():
                    break  # more work: the burst goes on
                if self._quiet():
                    lines += self._rebuild()
                    break
                time.sleep(min(0.05, self.burst_quiet / 4))
        return self._result(job, "calibration", t_start, frame=frame,
                            stale=stale, lines=lines, warnings=warnings)

    def _light(self, job, frame, t_start, warnings):
        """Calibrate a light, unless its output is still right."""
        target = output_path(frame, self.out_dir, self.raw_dir)
        if self._masters_dirty:
            warnings.extend(self._rebuild())
        match = match_light(frame, self._reload_masters())
        lines = match.describe()
        try:
            verdict = check_light_product(target, frame, match)
        except CcdcalError as exc:
            return self._problem(job, exc, t_start, frame=frame, match=match, lines=lines)
        if verdict.keep:
            return self._result(job, "exists", t_start, frame=frame, output=target,
                                match=match, lines=lines)
        strict = self.calibration is not None and self.calibration.strict
        reason = None if strict else not_calibrated_reason(match)
        if reason:
            # Nothing to apply: never a raw copy under the calibrated name.
            return self._result(job, "uncalibrated", t_start, frame=frame, match=match,
                                lines=lines, warnings=warnings, problem=reason)
        warnings.extend(match.warnings)
        notes = []
        try:
            path, ccd = calibrate_and_write(frame, match, self.out_dir, self.calibration,
                                            raw_root=self.raw_dir,
                                            overwrite=verdict.exists, notes=notes)
        except OutputExists:
            return self._result(job, "exists", t_start, frame=frame, output=target,
                                match=match, lines=lines)
        except NotCalibrated as exc:
            return self._result(job, "uncalibrated", t_start, frame=frame, match=match,
                                lines=lines, warnings=warnings,
                                problem=str(exc).replace(f"{job.path}: ", "", 1))
        except CcdcalError as exc:
            return self._problem(job, exc, t_start, frame=frame, match=match,
                                 lines=lines, warnings=warnings)
        if verdict.exists:
            log.info("watch: %s recalibrated, replacing %s: %s", job.path, path,
                     verdict.reason)
        return self._result(job, "calibrated", t_start, frame=frame, output=path,
                            ccd=ccd, match=match, lines=lines, missing=match.missing,
                            redone=verdict.reason if verdict.exists else None,
                            warnings=warnings + notes)

    def _problem(self, job, exc, t_start, **fields):
        text = str(exc)
        # The core's messages start with the path; ours adds it back.
        prefix = job.path + ": "
        return self._result(job, "problem", t_start, problem=text[len(prefix):]
                            if text.startswith(prefix) else text, **fields)

    # -- masters ------------------------------------------------------------------

    def _quiet(self):
        """No calibration frame for `burst_quiet` s, none queued or being written."""
        with self._lock:
            busy = bool(self._dirty or self._pending) or not self._queue.empty()
        return (not busy
                and time.monotonic() - self._last_calibration >= self.burst_quiet)

    def _rebuild_if_quiet(self):
        """Live masters due and the burst over: rebuild (worker thread, idle)."""
        if self._masters_dirty and self.rebuild_masters and self._quiet():
            self._rebuild()

    def _calibration_frames(self):
        """The raw folder's frames now (rescanned; unchanged files not re-read)."""
        scan = scan_folder(self.raw_dir, previous=self._scan, aliases=self.aliases,
                           recursive=self.recursive)
        self._scan = scan
        return [f for f in scan.frames
                if not any(f.path.startswith(d) for d in self._excluded)]

    def _prepare_masters(self):
        """Before the first file: build the masters the folder's frames allow.

        Like ``reduce``: masters missing altogether are built (existing
        ones are kept; with live masters, outdated ones are rebuilt too).
        Then say plainly if lights will go uncalibrated.
        """
        try:
            frames = self._calibration_frames()
        except CcdcalError as exc:
            self._event(f"cannot scan {self.raw_dir}: {exc}")
            return
        masters = self._reload_masters()
        check = check_masters(masters, frames, raw_root=self.raw_dir)
        if check.unaccounted or (self.rebuild_masters and check.outdated):
            self._build(frames, check if self.rebuild_masters else None,
                        "masters built before watching")
        self._warn_uncalibrated(frames)
        # Calibration imports astropy.nddata on first use (half a second):
        # now, not while the first light waits.
        import astropy.nddata  # noqa: F401

    def _warn_uncalibrated(self, frames):
        masters = self._reload_masters()
        if not masters:
            self._event(f"no masters in {self.masters_dir}: lights will NOT be "
                        "calibrated (nor written) until masters appear there")
            return
        lights = [f for f in frames if f.frametype == "light"]
        bare = [f for f in lights if not_calibrated_reason(match_light(f, masters))]
        if bare:
            self._event(f"{len(bare)} of the {len(lights)} lights here have no master "
                        "bias, dark or flat that fits: they will NOT be calibrated")

    def _rebuild(self):
        """Rebuild outdated masters and build missing ones (worker thread).

        Returns lines about what was done, for the result that triggered it.
        """
        self._masters_dirty = False
        try:
            frames = self._calibration_frames()
        except CcdcalError as exc:
            return [f"masters not rebuilt: {exc}"]
        check = check_masters(self._reload_masters(), frames, raw_root=self.raw_dir,
                              seen=self._offered)
        if not check:
            return []
        return self._build(frames, check, "master rebuilt")

    def _build(self, frames, check, what):
        """Run the master builder; ``check`` names the masters to replace."""
        why = {} if check is None else dict(check.outdated)
        try:
            report = build_masters(frames, self.masters_dir, self.master_options,
                                   overwrite=set(why))
        except CcdcalError as exc:
            self._event(f"masters not rebuilt: {exc}")
            return [f"masters not rebuilt: {exc}"]
        # Offered as they are now: they do not make a master outdated again.
        self._offered = {(os.path.abspath(f.path), f.mtime) for f in frames
                         if f.frametype in MASTER_KINDS}
        self._reload_masters(force=True)
        made = [m for m in report.masters if m is not None and m not in report.kept]
        lines = [f"{what}: {m.name} ({m.version})"
                 + (f", because {why[m.path]}" if m.path in why else "") for m in made]
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
