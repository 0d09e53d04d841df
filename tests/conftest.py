"""Shared fixtures: a synthetic camera, small synthetic nights, the Feder sample night.

Every night is written in code into pytest's temporary folders; no FITS
file is committed.
"""

import os

# Before anything imports Qt: the tests run without a screen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections import namedtuple  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from ginga_ccdcal.sample import (FRAME_KINDS, SyntheticCamera,  # noqa: E402
                                 make_sample_night, sample_camera, write_night)

#: The small night of the `night` fixture: (frametype, exptime, filter, count).
NIGHT_PLAN = [("bias", 0.0, None, 5), ("dark", 60.0, None, 5),
              ("dark", 120.0, None, 5), ("flat", 10.0, "R", 5),
              ("flat", 10.0, "V", 5), ("light", 300.0, "R", 3),
              ("light", 300.0, "V", 2)]
#: Shape (rows, columns) and seed of the fixture cameras.
CAMERA_SHAPE = (64, 80)
CAMERA_SEED = 1
#: Size of the session's Feder sample night (frames of 164 x 247 pixels).
SAMPLE_NIGHT_SCALE = 0.08
SAMPLE_NIGHT_SEED = 0

Night = namedtuple("Night", "path camera files")
Night.__doc__ = """A synthetic night on disk.

path : pathlib.Path
    The folder.
camera : SyntheticCamera
    The camera that made it; ``camera.written[path]`` is each file's recipe
    (`ginga_ccdcal.sample.FrameInfo`), ``camera.ideal_light_of(info)`` the
    true signal of a light.
files : dict
    'bias', 'dark', 'flat', 'light' -> list of paths (str), observing order.
"""

SampleNight = namedtuple("SampleNight", "path camera scale seed files")
SampleNight.__doc__ = """The Feder sample night: folder, `sample_camera`, scale, seed, paths."""


@pytest.fixture
def camera():
    """A small `SyntheticCamera` (64 x 80, filters R and V, seed 1)."""
    return SyntheticCamera(CAMERA_SHAPE, seed=CAMERA_SEED)


@pytest.fixture
def night(tmp_path):
    """A small MaxIm-style night: 5 bias, 5+5 darks (60, 120 s), 5+5 flats
    (R, V), 3 R and 2 V lights of 300 s."""
    cam = SyntheticCamera(CAMERA_SHAPE, seed=CAMERA_SEED)
    folder = tmp_path / "night"
    paths = write_night(folder, cam, NIGHT_PLAN, style="maxim", seed=CAMERA_SEED)
    files = {kind: [p for p in paths if cam.written[p].frametype == kind]
             for kind in FRAME_KINDS}
    return Night(folder, cam, files)


@pytest.fixture
def night_dir(night):
    """The folder of the `night` fixture (pathlib.Path)."""
    return night.path


@pytest.fixture(scope="session")
def sample_night(tmp_path_factory):
    """The Feder sample night (78 frames, real headers) at scale 0.08, written once."""
    folder = tmp_path_factory.mktemp("feder-sample")
    paths = make_sample_night(folder, scale=SAMPLE_NIGHT_SCALE, seed=SAMPLE_NIGHT_SEED)
    return SampleNight(Path(folder), sample_camera(SAMPLE_NIGHT_SCALE, SAMPLE_NIGHT_SEED),
                       SAMPLE_NIGHT_SCALE, SAMPLE_NIGHT_SEED, paths)


@pytest.fixture(scope="session")
def sample_night_dir(sample_night):
    """Folder of the session's Feder sample night (pathlib.Path); do not modify it."""
    return sample_night.path
