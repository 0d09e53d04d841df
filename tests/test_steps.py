"""The step-by-step view computes what calibrate computes, and says what each step did."""

import numpy as np
import pytest

from ginga_ccdcal.calibrate import calibrate_frame
from ginga_ccdcal.masters import build_masters
from ginga_ccdcal.match import match_light
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder
from ginga_ccdcal.steps import calibration_steps, common_cuts


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
