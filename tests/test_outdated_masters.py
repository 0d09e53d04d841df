"""Every front end rebuilds masters whose raw frames changed since they were
built (one rule: `reduce.build_night_masters` / `reduce.outdated_masters`)."""

import os

import pytest
from astropy.io import fits

from ginga_ccdcal import cli
from ginga_ccdcal.sample import SyntheticCamera, write_night

PLAN = [("bias", 0.0, None, 3), ("dark", 10.0, None, 3), ("flat", 2.0, "R", 3),
        ("light", 10.0, "R", 2)]


def _night(tmp_path):
    camera = SyntheticCamera((32, 40), seed=44)
    paths = write_night(tmp_path / "raw", camera, PLAN)
    return camera, paths


def _replace_first_bias(camera, paths, masters_dir):
    """The observer replaces a bias frame after the masters were built
    (the masters are dated back: no waiting in a test)."""
    for name in os.listdir(masters_dir):
        path = os.path.join(masters_dir, name)
        earlier = os.stat(path).st_mtime - 60
        os.utime(path, (earlier, earlier))
    with fits.open(paths[0], mode="update") as hdul:
        hdul[0].data = camera.frame("bias", seed=98)


def _built_at(masters_dir):
    """Each master's modification time (ns): a rebuilt one is written anew."""
    return {name: os.stat(os.path.join(masters_dir, name)).st_mtime_ns
            for name in sorted(os.listdir(masters_dir)) if name.endswith(".fits")}


def test_masters_command_rebuilds_a_master_whose_frames_changed(tmp_path, capsys):
    camera, paths = _night(tmp_path)
    out = tmp_path / "masters"
    assert cli.main(["-q", "masters", str(tmp_path / "raw"), "--out", str(out)]) == 0
    _replace_first_bias(camera, paths, out)
    before = _built_at(out)
    capsys.readouterr()
    assert cli.main(["-q", "masters", str(tmp_path / "raw"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    after = _built_at(out)
    # The bias and everything made from it are new; the output says why.
    assert all(after[name] != before[name] for name in before), (before, after)
    assert "rebuilt" in text and "changed" in text, text
    # Nothing changed since: everything kept.
    assert cli.main(["-q", "masters", str(tmp_path / "raw"), "--out", str(out)]) == 0
    assert _built_at(out) == after


@pytest.mark.filterwarnings("ignore")
def test_cluster_reduce_rebuilds_a_master_whose_frames_changed(tmp_path, capsys):
    pytest.importorskip("distributed")
    camera, paths = _night(tmp_path)
    out = tmp_path / "out"
    args = ["-q", "reduce", str(tmp_path / "raw"), "--out", str(out),
            "--scheduler", "local:1"]
    assert cli.main(args) == 0
    masters_dir = out / "masters"
    _replace_first_bias(camera, paths, masters_dir)
    before = _built_at(masters_dir)
    capsys.readouterr()
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    after = _built_at(masters_dir)
    assert all(after[name] != before[name] for name in before), (before, after)
    assert "rebuilt" in text, text
