"""The executed CCD lab, seen in a real browser (headless Chromium).

The notebook is run once (tests/notebook_support.py), exported by nbconvert
as one HTML page with its widget state, and opened in Debian's chromium.
The page's DOM must hold the browser's grouped tree, and the pictures of the
frame browser and of the calibrate widget must have been decoded by the
browser with real contrast.

``python3 tests/test_notebook_browser.py`` writes the documentation's
screenshots (docs/screenshots/notebook_*.png) the same way.
"""

import html
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from notebook_support import PROBE_SCRIPT, ROOT, executed_notebook, export_html  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/setup installs it: "
    "apt-get install chromium)")

#: (widget class, screenshot name, window size) for the documentation.
SCREENSHOTS = [("ccdcal-browser", "notebook_browser.png", (1280, 620)),
               ("ccdcal-calibrate", "notebook_calibrate.png", (1100, 640)),
               ("ccdcal-steps", "notebook_steps.png", (1100, 560))]


def _chromium(*args, timeout=120):
    # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    # The virtual time budget lets the page's scripts draw the widgets
    # before the DOM is dumped or the picture taken.
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--hide-scrollbars", "--virtual-time-budget=10000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          check=True)


def export_page(folder):
    return export_html(executed_notebook(), str(folder), extra_script=PROBE_SCRIPT)


def screenshot(page, widget_class, path, size):
    """A PNG of the page showing only the cell of ``widget_class``."""
    _chromium(f"--window-size={size[0]},{size[1]}", f"--screenshot={path}",
              f"file://{page}?show={widget_class}")
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    return export_page(tmp_path_factory.mktemp("ccd-lab-page"))


@pytest.fixture(scope="module")
def dom(page):
    return _chromium("--dump-dom", f"file://{page}").stdout


def _probe(dom):
    found = re.search(r'<pre id="ccdcal-probe"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, "the page's script did not run: widgets not drawn?"
    return json.loads(html.unescape(found.group(1)))


def _text(dom):
    """The DOM as text: tags dropped, entities and non-breaking spaces plain."""
    return html.unescape(re.sub(r"<[^>]+>", " ", dom)).replace("\xa0", " ")


def test_browser_tree_is_on_the_page(dom):
    text = _text(dom)
    # The grouped tree, as the widget drew it (options of its list), with
    # the counts of the sample night.
    for line in ("frametype = bias  (10 frames)", "frametype = dark  (20 frames)",
                 "exptime = 15  (10 frames)", "frametype = light  (38 frames)",
                 "SA112-SF1-001R1.fit"):
        assert line in text, line
    assert "widget-select" in dom and "ccdcal-browser" in dom
    # The header summary of the frame shown, beside the viewer.
    assert "IMAGETYP" in text and "-18.8 C" in text


def test_pictures_are_drawn_and_not_blank(dom):
    probe = _probe(dom)
    browser, = probe["ccdcal-browser"]
    raw, calibrated = probe["ccdcal-calibrate"]
    for picture, size in ((browser, (400, 280)), (raw, (360, 260)), (calibrated, (360, 260))):
        assert (picture["width"], picture["height"]) == size, picture
        # A Ginga picture of a star field: mid-grey sky with real contrast,
        # not a blank or single-colour rectangle.
        assert 20 < picture["mean"] < 235 and picture["std"] > 10, picture
    assert abs(calibrated["mean"] - raw["mean"]) + abs(calibrated["std"] - raw["std"]) > 0.5
    assert len(probe["ccdcal-steps"]) == 4
    text = _text(dom)
    assert "calibrated (OTBDF)" in text
    assert "flat: master_flat_R.fits" in text


def test_screenshot_shows_the_calibrated_frame(page, tmp_path):
    from PIL import Image
    path = screenshot(page, "ccdcal-calibrate", str(tmp_path / "shot.png"), (1100, 640))
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert pixels.shape == (640, 1100)
    # Only the calibrate cell is shown: code, widgets and two star fields.
    assert pixels.std() > 20
    dark = (pixels < 200).mean()
    assert 0.1 < dark < 0.9, dark


def main():
    """Write the documentation's screenshots of the executed lab."""
    import tempfile
    page = export_page(tempfile.mkdtemp(prefix="ccd-lab-page-"))
    for widget_class, name, size in SCREENSHOTS:
        path = os.path.join(ROOT, "docs", "screenshots", name)
        screenshot(page, widget_class, path, size)
        print("wrote", path)


if __name__ == "__main__":
    main()
