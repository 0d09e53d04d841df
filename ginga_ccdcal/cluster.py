"""Many nights in one call, in this process or on a dask.distributed cluster.

``ginga-ccdcal reduce NIGHT [NIGHT ...] --out OUT [--scheduler ADDRESS|local:N]``
runs here.  With several nights, each night's products go to
``OUT/<night folder name>/`` with masters of its own.

On a cluster, each night is split into tasks the scheduler balances over
its workers::

    plan (scan) -> master bias -> master darks -> master flats -> one task per light

Every task calls the core function `~ginga_ccdcal.reduce.reduce_night`
calls in one process (`~ginga_ccdcal.reduce.plan_night`,
`~ginga_ccdcal.masters.build_master_bias`, ``build_master_darks``,
``build_master_flats``, `~ginga_ccdcal.reduce.calibrate_light`) with the
same options, so the products are the same.  This process drives the
stages: each stage's small report comes back here and the next stage gets
it as a plain value, so a worker lost later never makes the scheduler
rebuild a master that lights were already calibrated with.  Tasks of a
worker that dies are rerun elsewhere by the scheduler; the atomic writes
(`ginga_ccdcal.safe_write`) mean no half-written file ever carries a
product's name, and a light found complete is not redone.

The workers read the raw frames and write the products themselves: the
raw and output folders must be on a filesystem every worker sees at the
same path as this process (`check_shared_folders` verifies it at start).

dask is imported only here, and only when a cluster is asked for (the
``cluster`` extra: ``pip install 'ginga-ccdcal[cluster]'``).
"""

import os
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace

from .errors import Cancelled, CcdcalError, FrameError
from .masters import (MasterOptions, MasterReport, build_master_bias,
                      build_master_darks, build_master_flats)
from .progress import check, report
from .reduce import (CalibrationReport, NightReport, available_masters,
                     calibrate_light, outdated_masters, plan_night, reduce_night,
                     same_output_problems)
from .safe_write import ensure_folder

__all__ = ["NightJob", "NightOutcome", "night_jobs", "reduce_nights",
           "reduce_nights_on_client", "connect", "describe_cluster",
           "check_shared_folders", "LOCAL_PREFIX"]

#: ``--scheduler local:N`` starts a local cluster of N worker processes.
LOCAL_PREFIX = "local:"

_EXTRA_HINT = "pip install 'ginga-ccdcal[cluster]'"
_SHARED_HINT = ("every worker must see the raw and output folders at the same "
                "path as this machine (a shared filesystem; see 'Reducing on a "
                "cluster' in the performance docs)")

#: The dask setting that puts MALLOC_TRIM_THRESHOLD_ into worker processes.
_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"

# Scheduling priorities: a night's scan and masters unblock its lights, so
# they go ahead of lights already queued (higher runs first).
_PRIORITY = {"scan": 2, "bias": 1, "darks": 1, "flats": 1, "light": 0}


@dataclass
class NightJob:
    """One night to reduce: its raw folder and where its products go."""

    raw_dir: str
    out_dir: str
    masters_dir: str = None

    @property
    def name(self):
        """The night's folder name (its products' folder with several nights)."""
        return os.path.basename(os.path.normpath(self.raw_dir))

    def absolute(self):
        """The same job with absolute paths (workers do not share our cwd)."""
        masters = os.path.abspath(self.masters_dir) if self.masters_dir else None
        return replace(self, raw_dir=os.path.abspath(self.raw_dir),
                       out_dir=os.path.abspath(self.out_dir), masters_dir=masters)


@dataclass
class NightOutcome:
    """What became of a night: its report, or why it could not be reduced."""

    job: NightJob
    report: NightReport = None
    error: str = None


def night_jobs(nights, out_dir, masters_dir=None):
    """Where each night's products go.

    Parameters
    ----------
    nights : list of str
        Raw folders, one per night.
    out_dir : str
        With one night, its products go here (as `reduce_night` does);
        with several, to ``out_dir/<night folder name>/``.
    masters_dir : str, optional
        With one night, its masters folder; with several, the parent of
        one masters folder per night.  Default: each night's
        ``<products>/masters``.

    Returns
    -------
    list of NightJob

    Raises
    ------
    CcdcalError
        Two nights share a folder name (their products would mix), or a
        night is not a folder.
    """
    nights = [os.fspath(n) for n in nights]
    for night in nights:
        if not os.path.isdir(night):
            raise FrameError(night, "no such folder")
    if len(nights) == 1:
        return [NightJob(nights[0], os.fspath(out_dir), masters_dir)]
    jobs, seen = [], {}
    for night in nights:
        job = NightJob(night, "")
        if job.name in seen:
            raise CcdcalError(f"{seen[job.name]} and {night} share the folder name "
                              f"'{job.name}', so their products would mix in "
                              f"{os.path.join(out_dir, job.name)}; rename one, or "
                              "reduce them in separate calls")
        seen[job.name] = night
        jobs.append(NightJob(night, os.path.join(out_dir, job.name),
                             os.path.join(masters_dir, job.name) if masters_dir else None))
    return jobs


def reduce_nights(jobs, *, scheduler=None, say=None, options=None, calibration=None,
                  overwrite=False, aliases=None, progress=None, cancel=None):
    """Reduce several nights, here or on a dask.distributed cluster.

    Parameters
    ----------
    jobs : list of NightJob
        See `night_jobs`.
    scheduler : str, optional
        ``'tcp://host:8786'`` (an existing scheduler), ``'local:N'`` (start
        a local cluster of N worker processes), or None: in this process,
        one night after the other.
    say : callable, optional
        Receives one-line notes about the cluster (its address, the
        dashboard).
    options, calibration, overwrite, aliases, progress, cancel
        As for `reduce_night`.  ``progress`` counts nights here, tasks on a
        cluster.

    Returns
    -------
    list of NightOutcome
        In the order of ``jobs``.  A night that fails (no usable frame, an
        unreadable calibration frame...) has its ``error``; the others are
        reduced all the same.
    """
    kwargs = dict(options=options, calibration=calibration, overwrite=overwrite,
                  aliases=aliases, progress=progress, cancel=cancel)
    if scheduler is None:
        return _reduce_here(jobs, **kwargs)
    jobs = [job.absolute() for job in jobs]
    with connect(scheduler) as client:
        check_shared_folders(client, jobs)
        if say is not None:
            say(describe_cluster(client))
        return reduce_nights_on_client(client, jobs, **kwargs)


def _reduce_here(jobs, *, progress=None, cancel=None, **kwargs):
    outcomes = []
    for k, job in enumerate(jobs):
        def night_progress(done, total, message="", k=k, name=job.name):
            report(progress, k + (done / total if total else 0), len(jobs),
                   f"{name}: {message}")
        try:
            night = reduce_night(job.raw_dir, job.out_dir, masters_dir=job.masters_dir,
                                 progress=night_progress, cancel=cancel, **kwargs)
            outcomes.append(NightOutcome(job, night))
        except Cancelled:
            raise
        except CcdcalError as exc:
            outcomes.append(NightOutcome(job, error=str(exc)))
    return outcomes


def _distributed():
    """The distributed package, or a one-line error naming the extra."""
    try:
        import distributed
    except ImportError as exc:
        raise CcdcalError(f"running on a cluster needs dask.distributed ({exc}): "
                          f"{_EXTRA_HINT}") from None
    return distributed


def _local_workers(scheduler):
    """N of ``'local:N'``, or None for a scheduler address."""
    if not scheduler.startswith(LOCAL_PREFIX):
        return None
    count = scheduler[len(LOCAL_PREFIX):]
    if not count.isdigit() or int(count) < 1:
        raise CcdcalError(f"--scheduler {scheduler}: use local:N with N >= 1 "
                          "worker processes, or a scheduler address such as "
                          "tcp://host:8786")
    return int(count)


@contextmanager
def connect(scheduler, timeout=20):
    """A `distributed.Client` for ``scheduler``, closed (with any cluster
    it started) on leaving the block.

    ``'local:N'`` starts a `distributed.LocalCluster` of N worker
    processes with one thread each (the core uses threads of its own where
    it helps); anything else is the address of a running scheduler
    (``dask scheduler``), reached within ``timeout`` seconds.
    """
    distributed = _distributed()
    count = _local_workers(scheduler)
    cluster = None
    try:
        if count is not None:
            import dask
            # dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which pins
            # glibc's mmap threshold at 128 KiB: every frame-sized array is
            # then mapped and faulted in afresh (+40% CPU measured on the
            # masters).  Our workers run with glibc's own defaults.
            with dask.config.set({_MALLOC_TRIM: None}):
                cluster = distributed.LocalCluster(n_workers=count, threads_per_worker=1,
                                                   processes=True)
            client = distributed.Client(cluster, set_as_default=False)
        else:
            client = distributed.Client(scheduler, timeout=timeout,
                                        set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:
        if cluster is not None:
            cluster.close()
        raise CcdcalError(f"{scheduler}: cannot reach the dask scheduler "
                          f"({exc})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def describe_cluster(client):
    """One line: the scheduler, its workers, and the dashboard's address."""
    info = client.scheduler_info()
    threads = client.nthreads()  # all workers (scheduler_info lists a few)
    line = (f"dask scheduler {info.get('address', '?')}: {len(threads)} worker(s), "
            f"{sum(threads.values())} thread(s); ")
    if "dashboard" in info.get("services", {}):
        return line + f"dashboard {client.dashboard_link}"
    return line + ("no dashboard (the scheduler needs bokeh: "
                   f"{_EXTRA_HINT})")


def _probe(folders, raw_dirs, token):
    """Run on each worker: write a probe file into each folder; say what it sees."""
    from . import __version__
    result = {"version": __version__, "written": [],
              "missing": [d for d in raw_dirs if not os.path.isdir(d)]}
    name = f".ccdcal-probe-{token}-{socket.gethostname()}-{os.getpid()}"
    for folder in folders:
        try:
            with open(os.path.join(folder, name), "w") as stream:
                stream.write(token)
        except OSError as exc:
            result["error"] = f"cannot write in {folder} ({exc.strerror or exc})"
            break
        result["written"].append(name)
    return result


def check_shared_folders(client, jobs, wait=60):
    """Check that every worker sees the raw folders and writes where we read.

    Each worker writes a probe file into the output (and masters) folders,
    which this process must then see; each must also find every night's
    raw folder, and run the same ginga_ccdcal version as this process
    (else the products would differ).  Workers joining later are not
    checked.

    Raises
    ------
    CcdcalError
        One line naming the worker and what it cannot see.
    """
    try:
        client.wait_for_workers(1, timeout=wait)
    except (TimeoutError, OSError):
        raise CcdcalError(f"{client.scheduler.address}: no dask worker connected "
                          f"within {wait} s") from None
    # The folders the products go under: OUT (and MASTERS) as given.
    top = os.path.dirname if len(jobs) > 1 else (lambda path: path)
    folders = sorted({top(os.path.abspath(path)) for job in jobs
                      for path in (job.out_dir, job.masters_dir) if path})
    for folder in folders:
        ensure_folder(folder)
    token = uuid.uuid4().hex
    try:
        answers = client.run(_probe, folders, [job.raw_dir for job in jobs], token)
    except Exception as exc:  # noqa: BLE001 - whatever a worker failed with
        raise CcdcalError(f"the dask workers cannot run ginga_ccdcal ({type(exc).__name__}: "
                          f"{exc}); install it on every worker: {_EXTRA_HINT}") from None
    from . import __version__
    problem = None
    for worker, answer in sorted(answers.items()):
        # Looked for under our own path of each folder: the same file if
        # the filesystem is shared.
        for folder, name in zip(folders, answer["written"]):
            path = os.path.join(folder, name)
            try:
                with open(path) as stream:
                    seen = stream.read() == token
                os.unlink(path)
            except OSError:
                seen = False
            if not seen and problem is None:
                problem = (f"{worker} wrote {path}, but this machine does not see "
                           "it: " + _SHARED_HINT)
        if problem is None and answer.get("error"):
            problem = f"{worker}: {answer['error']}; " + _SHARED_HINT
        if problem is None and answer["missing"]:
            problem = f"{worker} does not see {answer['missing'][0]}: " + _SHARED_HINT
        if problem is None and answer["version"] != __version__:
            problem = (f"{worker} runs ginga_ccdcal {answer['version']}, this machine "
                       f"{__version__}: install the same version everywhere")
    if problem:
        raise CcdcalError(problem)


def _task_failure(exc):
    """A task's exception as one line (a lost worker, a bug: never a traceback)."""
    if isinstance(exc, CcdcalError):
        return str(exc)
    name = type(exc).__name__
    if name == "KilledWorker":
        return ("its worker died each time it ran this task (out of memory?): "
                f"{exc}")
    return f"task failed ({name}: {exc})"


class _Night:
    """One night's progress through the stages on the cluster."""

    def __init__(self, job):
        self.job = job
        self.plan = None
        self.masters = {}
        self.outdated = {}
        self.lights = []
        self.error = None
        self.submitted = set()

    def tasks_to_come(self):
        """Tasks of this night not yet submitted (lights count once scanned)."""
        if self.error is not None:
            return 0
        if self.plan is None:
            return 3
        lights = 0 if "light" in self.submitted else len(self.plan.of_type("light"))
        return len({"bias", "darks", "flats"} - self.submitted) + lights

    def master_report(self):
        """The three stages' reports as one, in `build_masters`' order."""
        merged = MasterReport()
        for stage in ("bias", "darks", "flats"):
            if stage in self.masters:
                merged.extend(self.masters[stage])
        for path, why in self.outdated.items():
            merged.note(path, f"rebuilt: {why}")
        return merged

    def outcome(self):
        if self.error is not None:
            return NightOutcome(self.job, error=self.error)
        calibration = CalibrationReport()
        for part in self.lights:
            calibration.extend(part)
        return NightOutcome(self.job, NightReport(self.plan.scan, self.master_report(),
                                                  calibration))


class _ClusterRun:
    """Submits each night's stages as the previous ones finish."""

    def __init__(self, client, jobs, options, calibration, overwrite, aliases,
                 progress, cancel):
        self.client, self.nights = client, [_Night(job) for job in jobs]
        self.options = options or MasterOptions()
        self.calibration, self.overwrite, self.aliases = calibration, overwrite, aliases
        self.progress, self.cancel = progress, cancel
        self.outstanding = {}  # key -> (future, night, stage, index)
        self.done = 0
        self.submitted = 0

    def submit(self, night, stage, func, *args, index=None, **kwargs):
        # A readable prefix groups the tasks on the dashboard; the random
        # part keeps two runs (or two nights) from sharing a result.
        future = self.client.submit(func, *args, key=f"{stage}-{uuid.uuid4().hex}",
                                    priority=_PRIORITY[stage], **kwargs)
        self.outstanding[future.key] = (future, night, stage, index)
        self.pending.add(future)
        night.submitted.add(stage)
        self.submitted += 1

    def run(self):
        from distributed import as_completed
        # Results are fetched in the background as tasks finish, so this
        # loop never waits on one worker while others have finished.
        self.pending = as_completed(loop=self.client.loop, with_results=True,
                                    raise_errors=False)
        for night in self.nights:
            job = night.job
            self.submit(night, "scan", plan_night, job.raw_dir, job.out_dir,
                        masters_dir=job.masters_dir, aliases=self.aliases)
        try:
            for future, result in self.pending:
                _, night, stage, index = self.outstanding.pop(future.key)
                self.finish(night, stage, index, future, result)
                future.release()
                self.done += 1
                to_come = sum(n.tasks_to_come() for n in self.nights)
                report(self.progress, self.done, self.submitted + to_come,
                       f"{night.job.name}: {stage}")
                check(self.cancel)
        except BaseException:
            # Ctrl-C, cancel, or a lost scheduler: leave nothing queued.
            # Tasks already running finish their (atomic) writes.
            self.client.cancel([f for f, *_ in self.outstanding.values()])
            raise
        return [night.outcome() for night in self.nights]

    def finish(self, night, stage, index, future, result):
        if future.status != "finished":
            message = ("cancelled on the cluster" if future.status == "cancelled"
                       else _task_failure(future.exception()))
            if stage == "light":
                light = night.plan.of_type("light")[index]
                night.lights[index] = CalibrationReport(
                    problems=[message if message.startswith(light.path)
                              else f"{light.path}: {message}"])
            else:
                night.error = message
            return
        options, overwrite = self.options, self.overwrite
        # Masters whose frames changed since they were built are rebuilt,
        # as reduce_night does (the client reads their headers once).
        rebuild = overwrite or set(night.outdated)
        if stage == "scan":
            night.plan = result
            night.outdated = {} if overwrite is True else outdated_masters(result)
            self.submit(night, "bias", build_master_bias, result.of_type("bias"),
                        result.masters_dir, options,
                        overwrite=overwrite or set(night.outdated))
        elif stage == "bias":
            night.masters["bias"] = result
            self.submit(night, "darks", build_master_darks, night.plan.of_type("dark"),
                        night.plan.masters_dir, options, masters=result.masters,
                        overwrite=rebuild)
        elif stage == "darks":
            night.masters["darks"] = result
            self.submit(night, "flats", build_master_flats, night.plan.of_type("flat"),
                        night.plan.masters_dir, options,
                        masters=night.masters["bias"].masters + result.masters,
                        overwrite=rebuild)
        elif stage == "flats":
            night.masters["flats"] = result
            plan = night.plan
            masters = available_masters(night.master_report(), plan.masters_dir)
            lights = plan.of_type("light")
            clashes = same_output_problems(lights, plan.out_dir, plan.raw_dir)
            night.lights = [CalibrationReport(problems=[clashes[light.path]])
                            if light.path in clashes else None for light in lights]
            for k, light in enumerate(lights):
                if night.lights[k] is None:
                    self.submit(night, "light", calibrate_light, light, masters,
                                plan.out_dir, self.calibration, index=k,
                                raw_root=plan.raw_dir, overwrite=overwrite)
            night.submitted.add("light")  # even if every light was refused
        else:
            night.lights[index] = result


def reduce_nights_on_client(client, jobs, *, options=None, calibration=None,
                            overwrite=False, aliases=None, progress=None, cancel=None):
    """Reduce nights on the cluster behind ``client`` (a `distributed.Client`).

    The arguments and the answer are those of `reduce_nights`; the jobs'
    paths must be absolute (`NightJob.absolute`) and shared with the
    workers (`check_shared_folders`).  ``progress`` counts finished tasks.
    On any interruption (Ctrl-C, ``cancel``) the tasks not yet started
    are cancelled before the exception propagates; a second run resumes.
    """
    return _ClusterRun(client, jobs, options, calibration, overwrite, aliases,
                       progress, cancel).run()
