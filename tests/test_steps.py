"""The step-by-step view computes what calibrate computes, and says what each step did."""

import numpy as np
import pytest
from astropy.stats import mad_std

from ginga_ccdcal.calibrate import calibrate_frame
from ginga_ccdcal.masters import build_masters
from ginga_ccdcal.match import match_light
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder
from ginga_ccdcal.steps import (as_read_step, blink_pair, calibration_steps, common_cuts,
                                row_profile, step_cuts)


def test_steps_end_where_calibration_ends(tmp_path):
    camera = SyntheticCamera((80, 100), seed=3, bias_level=1200.0, vignetting=0.25)
    write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 5), ("dark", 120.0, None, 5),
                                           ("flat", 5.0, "R", 5), ("light", 300.0, "R", 1)])
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    light = scan.of_type("light")[0]
    match = match_light(light, report.masters)
    steps = calibration_steps(light, match, gain=camera.gain)
    assert [s.title for s in steps] == ["raw", "- bias", "- dark", "/ flat"]
    np.testing.assert_array_equal(steps[-1].data, calibrate_frame(light, match).data)
    # Each note gives the number a student checks against the truth.
    bias_level = float(steps[1].note.split("level ")[1].split(" ADU")[0])
    assert bias_level == pytest.approx(np.median(camera.bias), abs=2)
    current = float(steps[2].note.split("dark current ")[1].split(" e-")[0])
    assert current == pytest.approx(np.median(camera.dark_rate) * camera.gain, rel=0.3)
    assert "scaled x2.5" in steps[2].note
    lost = float(steps[3].note.split("vignetting ")[1].split("%")[0])
    assert lost == pytest.approx(25, abs=4)
    cuts = common_cuts(steps)
    assert len(cuts) == 4 and all(lo < hi for lo, hi in cuts)
    assert cuts[0][0] > cuts[-1][0] + 1000  # the raw frame still holds the bias


def test_each_step_gets_its_own_contrast_and_row_profile(tmp_path):
    camera = SyntheticCamera((80, 100), seed=5, bias_level=1300.0, vignetting=0.3,
                             overscan_columns=8)
    write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 5), ("dark", 300.0, None, 5),
                                           ("flat", 5.0, "R", 5), ("light", 300.0, "R", 1)])
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    light = scan.of_type("light")[0]
    steps = [as_read_step(light)] + calibration_steps(light, match_light(light, report.masters))
    common = common_cuts(steps)
    for step in steps:
        lo, hi = step_cuts(step)
        median, noise = np.nanmedian(step.data), mad_std(step.data, ignore_nan=True)
        # about the step's own level, a few times its own noise wide
        assert lo < median < hi
        assert 1 * noise < hi - lo < 20 * noise
        x, profile = row_profile(step)
        np.testing.assert_array_equal(x, np.arange(step.data.shape[1]))
        np.testing.assert_allclose(profile, np.median(step.data, axis=0), rtol=1e-6)
    # the frame as read sits on the bias level: its cuts start above it
    assert step_cuts(steps[0])[0] > camera.bias_level
    # the common cuts keep the last step's width everywhere; the steps' own
    # follow each step (the flat narrows the spread the vignetting made)
    assert len({round(hi - lo) for lo, hi in common}) == 1
    widths = [hi - lo for lo, hi in map(step_cuts, steps)]
    assert widths[-1] < 0.5 * widths[-2]
    # the row profiles teach: the overscan strip is at the bias level alone ...
    _, as_read = row_profile(steps[0])
    assert as_read[-8:].mean() < as_read[:-8].mean() - 5
    # ... the vignetting darkens the edges until the flat is divided out
    _, dark_done = row_profile(steps[-2])
    _, flat_done = row_profile(steps[-1])

    def edge_to_centre(p):
        n = p.size
        return np.mean(np.r_[p[:5], p[-5:]]) / np.mean(p[n // 2 - 5:n // 2 + 5])
    assert edge_to_centre(dark_done) < 0.95
    assert edge_to_centre(flat_done) == pytest.approx(1, abs=0.04)
    # blinking compares frames on the same pixel grid: with an overscan
    # strip the raw frame after the trim, without one the frame as read
    assert [s.title for s in blink_pair(steps)] == ["raw", "/ flat"]
    no_strip = [as_read_step(light)]
    no_strip[0].data = no_strip[0].data[:, :-8]
    assert blink_pair(no_strip + steps[1:])[0] is no_strip[0]
