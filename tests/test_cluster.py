"""Several nights in one call, and `reduce` on a real dask.distributed cluster.

A scheduler and two worker processes run on 127.0.0.1 (`LocalCluster`
with processes); three small nights are reduced through ``--scheduler``
with `cli.main` and every product is compared with the in-process run:
pixels byte for byte, headers card for card apart from the time each
file was written (CCDCALDT and the HISTORY line that says when) and the
masters' checksums, which hash those times; each checksum is checked
against the master of its own run instead.
"""

import contextlib
import io
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import pytest
from astropy.io import fits

from ginga_ccdcal import cli
from ginga_ccdcal.calibrate import CalibrationOptions
from ginga_ccdcal.cluster import (NightJob, check_shared_folders, night_jobs,
                                  reduce_nights_on_client)
from ginga_ccdcal.errors import CcdcalError, FrameError
from ginga_ccdcal.fitsfile import is_complete
from ginga_ccdcal.provenance import file_checksum
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder

try:
    import distributed
except ImportError:  # the 'cluster' extra; .ci/setup installs it
    distributed = None

needs_distributed = pytest.mark.skipif(
    distributed is None, reason="dask.distributed is not installed "
                                "(pip install 'ginga-ccdcal[cluster]')")

#: One small night: bias, darks and flats for 60 s R lights.
PLAN = [("bias", 0.0, None, 3), ("dark", 60.0, None, 3), ("flat", 5.0, "R", 3),
        ("light", 60.0, "R", 3)]
NIGHTS = (("2026-01-01", "maxim"), ("2026-01-02", "nina"), ("2026-01-03", "sbig"))
#: Every run reduces the same way; --strict makes the B light (no B flat)
#: fail in its own task while the others go on.
OPTIONS = ["--strict"]
STAMP = re.compile(r" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def make_nights(root):
    """Three nights in three software styles; night 2 has a truncated light,
    night 3 a B light without a B flat."""
    paths = []
    for k, (name, style) in enumerate(NIGHTS):
        camera = SyntheticCamera((48, 64), seed=k, filters=("R", "B"))
        plan = PLAN + ([("light", 60.0, "B", 1)] if k == 2 else [])
        written = write_night(os.path.join(root, name), camera, plan, style=style, seed=k)
        if k == 1:
            light = [p for p in written if camera.written[p].frametype == "light"][0]
            with open(light, "r+b") as stream:
                stream.truncate(os.path.getsize(light) // 2)
        paths.append(os.path.join(root, name))
    return paths


def run_cli(*argv):
    """``cli.main(argv)`` with its output captured: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["-q", *argv])
    return status, out.getvalue(), err.getvalue()


def report_lines(text):
    """What the CLI reported about the nights (not the cluster's address)."""
    return [line for line in text.splitlines() if not line.startswith("dask scheduler")]


def product_files(root):
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


def comparable(root, rel):
    """A product's pixel bytes and header cards, less the time it was written."""
    night = rel.split(os.sep)[0]
    content = []
    with fits.open(os.path.join(root, rel)) as hdul:
        for hdu in hdul:
            cards, history = [], []
            for card in hdu.header.cards:
                if card.keyword == "CCDCALDT":
                    continue
                if card.keyword == "HISTORY":
                    history.append(str(card.value))
                elif card.keyword in ("BIASSUM", "DARKSUM", "FLATSUM"):
                    # The master's hash covers its own CCDCALDT: it must be
                    # the hash of this run's master.
                    master = hdu.header[card.keyword[:4] + "FILE"]
                    assert card.value == file_checksum(
                        os.path.join(root, night, "masters", master)), (rel, card)
                    cards.append((card.keyword, "checked"))
                else:
                    cards.append((card.keyword, card.value, card.comment))
            data = None if hdu.data is None else hdu.data.tobytes()
            content.append((cards, STAMP.sub(" at <time>", "".join(history)), data))
    return content


def assert_same_products(reference, root):
    files = product_files(reference)
    assert product_files(root) == files
    assert any(f.endswith(".fits") and "masters" in f for f in files)
    for rel in files:
        assert is_complete(os.path.join(root, rel)), rel
        assert comparable(root, rel) == comparable(reference, rel), rel


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    return make_nights(str(tmp_path_factory.mktemp("nights")))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("products")


@pytest.fixture(scope="module")
def reference(nights, work):
    """The in-process run: (status, stdout, stderr, folder of its products).

    Every run writes to ``work/out`` (so the paths its headers record are
    the same) and is then moved aside.
    """
    out = str(work / "out")
    status, stdout, stderr = run_cli("reduce", *nights, "--out", out, *OPTIONS)
    os.rename(out, str(work / "reference"))
    return status, stdout, stderr, str(work / "reference")


@pytest.fixture(scope="module")
def client():
    """A scheduler and two single-threaded worker processes on 127.0.0.1."""
    if distributed is None:
        pytest.skip("dask.distributed is not installed (pip install 'ginga-ccdcal[cluster]')")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=":0")
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client
    cluster.close()


def move_aside(work, name):
    os.rename(str(work / "out"), str(work / name))
    return str(work / name)


def test_reference_run_reports_the_bad_files(reference, nights):
    status, stdout, stderr, _ = reference
    assert status == cli.EXIT_PARTIAL
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2, stderr
    assert nights[1] in skipped[0] and "truncated" in skipped[0]
    assert nights[2] in skipped[1] and "no master flat for filter B" in skipped[1]
    assert "3 nights: 1 done, 2 with files skipped or steps missing, 0 not reduced" in stdout


@needs_distributed
def test_cluster_run_matches_in_process(client, nights, work, reference):
    status, stdout, stderr = run_cli("reduce", *nights, "--out", str(work / "out"),
                                     "--scheduler", client.scheduler.address, *OPTIONS)
    ref_status, ref_stdout, ref_stderr, ref_dir = reference
    assert stdout.startswith(f"dask scheduler {client.scheduler.address}: 2 worker(s)")
    assert "dashboard http" in stdout.splitlines()[0]
    assert status == ref_status
    assert report_lines(stdout) == report_lines(ref_stdout)
    assert [l for l in stderr.splitlines() if l.startswith(("skipped", "warning"))] == \
        [l for l in ref_stderr.splitlines() if l.startswith(("skipped", "warning"))]
    assert_same_products(ref_dir, move_aside(work, "cluster"))


class KillOnFirstLight(distributed.WorkerPlugin if distributed else object):
    """The first worker to start a light task dies on the spot (SIGKILL)."""

    name = "ccdcal-test-kill"

    def __init__(self, marker):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or not str(key).startswith("light-"):
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # someone already died: the others carry on
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_distributed
def test_worker_killed_mid_run_tasks_rerun_elsewhere(client, nights, work, reference):
    marker = str(work / "killed.pid")
    client.register_plugin(KillOnFirstLight(marker))
    try:
        status, stdout, _ = run_cli("reduce", *nights, "--out", str(work / "out"),
                                    "--scheduler", client.scheduler.address, *OPTIONS)
    finally:
        client.unregister_worker_plugin(KillOnFirstLight.name)
    with open(marker) as stream:
        killed = int(stream.read())
    assert killed != os.getpid() and not _pid_alive(killed)
    assert status == reference[0], stdout
    out = move_aside(work, "killed")
    assert not [name for _, _, names in os.walk(out) for name in names
                if name.endswith(".ccdcal-tmp")]
    assert_same_products(reference[3], out)


def _settled(client, wait=30):
    """Wait until the scheduler holds no task and no worker runs one."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
        busy = client.run(lambda dask_worker: dask_worker.state.executing_count)
        if tasks == 0 and not any(busy.values()):
            return
        time.sleep(0.1)
    raise AssertionError("the cluster is still busy after the interruption")


@needs_distributed
def test_interrupt_cancels_cluster_work_and_rerun_resumes(client, nights, work,
                                                          reference):
    out = str(work / "out")
    jobs = [job.absolute() for job in night_jobs(nights, out)]

    def ctrl_c_at_first_light(done, total, message):
        if message.endswith(": light"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reduce_nights_on_client(client, jobs, progress=ctrl_c_at_first_light,
                                calibration=CalibrationOptions(strict=True))
    _settled(client)
    lights = sum(1 for rel in product_files(out)
                 if "masters" not in rel and is_complete(os.path.join(out, rel)))
    status, stdout, _ = run_cli("reduce", *nights, "--out", out,
                                "--scheduler", client.scheduler.address, *OPTIONS)
    assert status == reference[0]
    kept = sum(int(n) for n in re.findall(r"(\d+) already there", stdout))
    written = sum(int(n) for n in re.findall(r"^(\d+) calibrated", stdout, re.M))
    # The first light was done before the interruption; the queued ones
    # were cancelled and are calibrated by the second run.
    assert kept == lights >= 1 and written >= 1, stdout
    assert_same_products(reference[3], move_aside(work, "resumed"))


def test_one_night_layout_unchanged_several_nights_in_their_own_folders(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    [one] = night_jobs([str(tmp_path / "a")], "OUT")
    assert (one.out_dir, one.masters_dir) == ("OUT", None)
    jobs = night_jobs([str(tmp_path / "a"), str(tmp_path / "b") + os.sep], "OUT", "M")
    assert [(j.out_dir, j.masters_dir) for j in jobs] == [
        (os.path.join("OUT", "a"), os.path.join("M", "a")),
        (os.path.join("OUT", "b"), os.path.join("M", "b"))]


def test_two_nights_with_one_folder_name_are_refused_up_front(tmp_path):
    for parent in ("x", "y"):
        (tmp_path / parent / "2026-01-01").mkdir(parents=True)
    status, _, stderr = run_cli("reduce", str(tmp_path / "x" / "2026-01-01"),
                                str(tmp_path / "y" / "2026-01-01"),
                                "--out", str(tmp_path / "out"))
    assert status == cli.EXIT_FAILED
    assert "share the folder name '2026-01-01'" in stderr and len(stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_night_is_refused_up_front(tmp_path):
    (tmp_path / "a").mkdir()
    status, _, stderr = run_cli("reduce", str(tmp_path / "a"), str(tmp_path / "nope"),
                                "--out", str(tmp_path / "out"))
    assert status == cli.EXIT_FAILED
    assert stderr.strip() == f"ginga-ccdcal: {tmp_path / 'nope'}: no such folder"


def test_without_distributed_the_message_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    status, _, stderr = run_cli("reduce", str(tmp_path / "a"), "--out",
                                str(tmp_path / "out"), "--scheduler", "local:2")
    assert status == cli.EXIT_FAILED
    assert "pip install 'ginga-ccdcal[cluster]'" in stderr
    assert len(stderr.splitlines()) == 1


@needs_distributed
@pytest.mark.parametrize("spec", ["local:0", "local:two", "local:"])
def test_bad_local_spec_is_one_line(tmp_path, spec):
    (tmp_path / "a").mkdir()
    status, _, stderr = run_cli("reduce", str(tmp_path / "a"), "--out",
                                str(tmp_path / "out"), "--scheduler", spec)
    assert status == cli.EXIT_FAILED
    assert f"--scheduler {spec}: use local:N" in stderr and len(stderr.splitlines()) == 1


def test_core_does_not_import_dask():
    code = ("import sys, ginga_ccdcal.cli, ginga_ccdcal.reduce, ginga_ccdcal.cluster; "
            "ginga_ccdcal.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


class _WorkerOnAnotherDisk:
    """A stand-in client whose one worker sees other folders under our paths."""

    def __init__(self, elsewhere):
        self.elsewhere = elsewhere
        self.scheduler = type("S", (), {"address": "tcp://10.0.0.9:8786"})()

    def wait_for_workers(self, n, timeout=None):
        pass

    def run(self, func, folders, raw_dirs, token):
        # The worker's "same path" is a different disk: here, another folder.
        mapped = [os.path.join(self.elsewhere, os.path.basename(f)) for f in folders]
        for folder in mapped:
            os.makedirs(folder, exist_ok=True)
        return {"tcp://10.0.0.9:40001": func(mapped, raw_dirs, token)}


def test_output_folder_not_shared_is_one_clear_line(tmp_path):
    (tmp_path / "night").mkdir()
    job = NightJob(str(tmp_path / "night"), str(tmp_path / "out")).absolute()
    with pytest.raises(CcdcalError) as err:
        check_shared_folders(_WorkerOnAnotherDisk(str(tmp_path / "other")), [job])
    message = str(err.value)
    assert message.startswith("tcp://10.0.0.9:40001 wrote ")
    assert "this machine does not see it" in message and "\n" not in message


def test_raw_folder_not_seen_by_a_worker_is_one_clear_line(tmp_path):
    from ginga_ccdcal.cluster import _probe

    class Client(_WorkerOnAnotherDisk):
        def run(self, func, folders, raw_dirs, token):
            return {"tcp://10.0.0.9:40001": func(folders, [d + "-not-here"
                                                           for d in raw_dirs], token)}

    (tmp_path / "night").mkdir()
    job = NightJob(str(tmp_path / "night"), str(tmp_path / "out")).absolute()
    with pytest.raises(CcdcalError, match="does not see .*night-not-here: every worker"):
        check_shared_folders(Client(""), [job])
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".ccdcal-probe")]
    assert _probe  # the function the workers run


def test_scanned_frames_and_frame_errors_survive_pickling(tmp_path):
    """What travels to and from the workers: frames with their lazy headers,
    and the errors bad files raise."""
    camera = SyntheticCamera((16, 16), seed=1)
    write_night(tmp_path, camera, [("bias", 0.0, None, 1), ("light", 10.0, "R", 1)])
    scan = scan_folder(tmp_path)
    copy = pickle.loads(pickle.dumps(scan))
    assert [f.header.tostring() for f in copy.frames] == \
        [f.header.tostring() for f in scan.frames]
    assert copy.frames[1].header.get("EXPTIME") == 10.0
    error = pickle.loads(pickle.dumps(FrameError("a.fits", "truncated FITS")))
    assert (error.path, error.problem, str(error)) == ("a.fits", "truncated FITS",
                                                       "a.fits: truncated FITS")


def test_light_finished_by_another_writer_meanwhile_counts_as_there(tmp_path,
                                                                    monkeypatch):
    """A task of a cancelled cluster run may finish a light while the re-run
    calibrates it: the atomic write refuses the second copy, and the light
    is reported as already there, not as a problem."""
    from ginga_ccdcal import reduce
    from ginga_ccdcal.masters import build_masters
    camera = SyntheticCamera((16, 16), seed=1)
    write_night(tmp_path / "raw", camera, PLAN)
    scan = scan_folder(tmp_path / "raw")
    masters = build_masters(scan.frames, str(tmp_path / "out" / "masters")).masters
    real = reduce.calibrate_and_write

    def other_writer_first(frame, match, out_dir, *args, **kwargs):
        real(frame, match, out_dir, *args, **kwargs)  # the other writer
        return real(frame, match, out_dir, *args, **kwargs)

    monkeypatch.setattr(reduce, "calibrate_and_write", other_writer_first)
    lights = scan.of_type("light")
    result = reduce.calibrate_lights(lights, masters, str(tmp_path / "out"),
                                     raw_root=str(tmp_path / "raw"))
    assert result.problems == []
    assert len(result.existing) == len(lights)


@pytest.mark.bench
@needs_distributed
def test_cluster_bench_quick(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "bench", "bench_cluster.py"),
                           "--quick", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert {"in-process", "local:1", "local:2"} <= rows, proc.stdout
    assert "products identical to the in-process run: yes" in proc.stdout


def _break_one_light(name):
    """Run on the workers: calibrating the light called ``name`` raises."""
    from ginga_ccdcal import reduce
    real = reduce._calibrate_one

    def broken(light, *args, **kwargs):
        if os.path.basename(light.path) == name:
            raise RuntimeError("disk on fire")
        return real(light, *args, **kwargs)

    broken.real = real
    reduce._calibrate_one = broken


def _mend_lights():
    from ginga_ccdcal import reduce
    reduce._calibrate_one = getattr(reduce._calibrate_one, "real", reduce._calibrate_one)


@needs_distributed
def test_task_that_raises_fails_its_light_only(client, nights, work):
    lights = [light.name for light in scan_folder(nights[0]).of_type("light")]
    client.run(_break_one_light, lights[0])
    try:
        status, stdout, stderr = run_cli("reduce", nights[0], "--out", str(work / "out"),
                                         "--scheduler", client.scheduler.address)
    finally:
        client.run(_mend_lights)
    out = move_aside(work, "broken")
    assert status == cli.EXIT_PARTIAL
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped: ")]
    assert skipped == [f"skipped: {os.path.join(nights[0], lights[0])}: task failed "
                       "(RuntimeError: disk on fire)"]
    assert f"{len(lights) - 1} calibrated, 1 skipped" in stdout
    assert not os.path.exists(os.path.join(out, lights[0]))
    assert all(is_complete(os.path.join(out, name)) for name in lights[1:])
