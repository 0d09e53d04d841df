"""The largest event-loop stall of the viewer on a full-size night.

An observer notices a GUI that freezes: this measures, while the CCD
plugins are driven through a night of full-size frames (3085 x 2048, the
Feder camera), the longest time the Qt event loop could not run.  A Qt
timer asks to tick every 5 ms; each gap between ticks beyond that is a
stall.  Phases: scan, build masters, click lights (CCD Calibrate open:
it follows each), calibrate one, a new light arriving while watching.

    python bench/gui_stall.py [--work DIR] [--lights 4]

Prints the largest stall of each phase.  The first phase is Ginga alone
showing one of the frames (no CCD plugin involved): the floor of every
phase that displays a full-size image in a channel of Ginga's own, since
Ginga draws, computes cut levels and makes thumbnails on the GUI thread
(the plugins' own channels get cut levels worked out off the GUI thread
and no thumbnails).  Nothing is asserted: the numbers are for the GUI
issue; the machine's load average is printed with them.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# measure the checkout this script is in, not whichever copy is installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TICK_MS = 5


class StallMeter:
    """Gaps of a 5 ms Qt timer, per phase."""

    def __init__(self):
        from qtpy import QtCore
        self.timer = QtCore.QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.phase = "start"
        self.worst = {}
        self._last = None

    def start(self):
        self._last = time.perf_counter()
        self.timer.start()

    def _tick(self):
        now = time.perf_counter()
        gap = (now - self._last) * 1000.0 - TICK_MS
        self._last = now
        if gap > self.worst.get(self.phase, 0.0):
            self.worst[self.phase] = gap

    def enter(self, phase):
        self.phase = phase
        self._last = time.perf_counter()


def make_night(folder, lights):
    from ginga_ccdcal.sample import sample_camera, write_night
    camera = sample_camera(1.0)
    plan = [("bias", 0.0, None, 5), ("dark", 30.0, None, 5), ("flat", 15.0, "R", 5),
            ("light", 30.0, "R", lights)]
    return write_night(folder, camera, plan, style="maxim")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="working folder (default: a temporary one)")
    parser.add_argument("--lights", type=int, default=4)
    args = parser.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="ccdcal-stall-")
    raw, out = os.path.join(work, "raw"), os.path.join(work, "out")
    later = os.path.join(work, "later")
    if not os.path.isdir(raw):
        print("writing a full-size night ...", flush=True)
        paths = make_night(raw, args.lights + 1)
        os.makedirs(later, exist_ok=True)
        shutil.move(paths[-1], os.path.join(later, os.path.basename(paths[-1])))
    # A reused folder starts as a new one would: no products, and the light
    # a previous run's watch phase copied in is gone again.
    shutil.rmtree(out, ignore_errors=True)
    for name in os.listdir(later):
        if os.path.exists(os.path.join(raw, name)):
            os.remove(os.path.join(raw, name))

    load_before = os.getloadavg()[0]      # other users of the machine
    from ginga_ccdcal.gui.common import get_session
    from ginga_ccdcal.gui.viewer import create_viewer
    viewer = create_viewer(geometry="1280x800")
    fv = viewer.fv
    meter = StallMeter()
    meter.start()
    try:
        get_session(fv).output_folder = out
        # What Ginga itself costs to show one full-size frame, no CCD plugin
        # involved: the floor of every phase that displays an image.
        meter.enter("Ginga alone: show a light in a channel")
        first_light = sorted(n for n in os.listdir(raw) if "light" in n.lower()
                             or n.startswith("M13"))[0]
        fv.add_channel("Plain")
        fv.nongui_do(fv.load_file, os.path.join(raw, first_light), chname="Plain")
        viewer.wait_for(lambda: fv.get_channel("Plain").viewer.get_image() is not None,
                        120, "the plain load")
        viewer.pump(1.0)
        meter.enter("scan")
        browser = viewer.open_browser(raw)
        viewer.wait_for(lambda: not browser.busy, 600, "the scan")
        meter.enter("build masters")
        masters = viewer.global_plugin("CCDMasters")
        masters.build()
        viewer.wait_for(lambda: not masters.busy, 1200, "the masters")
        viewer.pump(1.0)
        meter.enter("click lights (CCD Calibrate open)")
        fv.change_channel("Image")
        lights = get_session(fv).frames("light")
        calibrate = None
        for light in lights:
            browser.select_path(browser.path_of(light.path))
            viewer.wait_for(lambda: (fv.get_channel("Image").viewer.get_image() or {})
                            .get("path") == light.path, 120, "the light")
            if calibrate is None:
                calibrate = viewer.local_plugin("Image", "CCDCalibrate")
            viewer.wait_for(lambda: not calibrate.busy, 120, "the match")
            viewer.pump(0.3)
        meter.enter("calibrate one")
        calibrate.calibrate()
        viewer.wait_for(lambda: not calibrate.busy, 300, "the calibration")
        viewer.pump(1.0)
        meter.enter("watch: a new light arrives")
        watch = viewer.global_plugin("CCDWatch")
        fv.change_channel("Image")
        watch.start_watch()
        viewer.wait_for(lambda: watch.watching, 120, "the watcher")
        name = os.listdir(later)[0]
        shutil.copy(os.path.join(later, name), os.path.join(raw, name))
        viewer.wait_for(lambda: watch.watch_result is not None, 300, "the new light")
        viewer.pump(2.0)
        watch.stop_watch()
        viewer.wait_for(lambda: watch.watch_state == "off", 120, "the watcher to stop")
    finally:
        meter.timer.stop()
        viewer.close()
    print(f"largest event-loop stall per phase ({len(lights)} lights of 3085x2048; "
          f"load average before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}):")
    for phase, gap in meter.worst.items():
        print(f"  {phase:40s} {gap:7.0f} ms")
    print(f"  {'largest':40s} {max(meter.worst.values()):7.0f} ms")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)  # the night made for this run
    return 0


if __name__ == "__main__":
    sys.exit(main())
