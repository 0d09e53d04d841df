"""Make the documentation's screenshots on a full-size sample night.

    python docs/screenshots/make_screenshots.py --night /data/observing/2013-07-04

writes the Feder sample night at full size (3085 x 2048, 78 frames; about
1 GB) into ``--night`` unless it is there, drives the real viewer through
the plugins as an observer would (scan, build masters, calibrate, show the
steps, characterise, watch), and saves one PNG per plugin, the watch
banner and the whole window at 1280x800 into this folder.  Choose a
neutral ``--night`` path: it is shown in the panels.  Without a display
Qt's offscreen platform is used.
"""

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def wait(viewer, plugin, what, timeout=1800):
    viewer.wait_for(lambda: not plugin.busy, timeout, what)


def shot(viewer, name, tab=None):
    if tab:
        viewer.fv.ds.raise_tab(tab)
    viewer.pump(0.5)
    path = viewer.screenshot(os.path.join(HERE, f"{name}.png"))
    print("  ", path, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--night", required=True, help="folder of the sample night")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from ginga_ccdcal.fitsfile import is_fits_name
    from ginga_ccdcal.gui.common import get_session
    from ginga_ccdcal.gui.viewer import create_viewer
    from ginga_ccdcal.sample import make_sample_night

    raw = os.path.abspath(args.night)
    out = raw + "_reduced"
    held = raw + "_later"          # frames "not yet taken" for the watch
    if not os.path.isdir(raw) or not any(is_fits_name(n) for n in os.listdir(raw)):
        print(f"writing the sample night to {raw} ...", flush=True)
        make_sample_night(raw, scale=args.scale)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(held, exist_ok=True)
    lights = sorted(n for n in os.listdir(raw) if n.startswith("SA112"))
    for name in lights[-2:] + [n for n in os.listdir(raw) if n.startswith("darks-010")]:
        shutil.move(os.path.join(raw, name), os.path.join(held, name))
    try:
        return _drive(create_viewer(geometry="1400x900"), raw, out, held, get_session)
    finally:
        for name in os.listdir(held):
            shutil.move(os.path.join(held, name), os.path.join(raw, name))
        os.rmdir(held)


def _drive(viewer, raw, out, held, get_session):
    fv = viewer.fv
    try:
        get_session(fv).output_folder = out
        browser = viewer.open_browser(raw)
        wait(viewer, browser, "the scan")
        light = sorted(f.path for f in get_session(fv).frames("light"))[3]
        browser.select_path(browser.path_of(light))
        viewer.wait_for(lambda: fv.get_channel("Image").viewer.get_image() is not None,
                        300, "the light")
        browser.select_path(["frametype = dark"])
        tree = browser.w.tree
        for label in ("frametype = bias", "frametype = flat", "frametype = light"):
            tree.get_widget().collapseItem(tree._path_to_item([label]))
        shot(viewer, "ccd_browser", "CCD Browser")

        masters = viewer.global_plugin("CCDMasters")
        masters.build()
        wait(viewer, masters, "the masters")
        masters.show_master("master_dark_30s.fits")
        wait(viewer, masters, "the master dark")
        shot(viewer, "ccd_masters", "CCD Masters")

        fv.change_channel("Image")
        calibrate = viewer.local_plugin("Image", "CCDCalibrate")
        wait(viewer, calibrate, "the match")
        calibrate.calibrate()
        wait(viewer, calibrate, "the calibration")
        shot(viewer, "ccd_calibrate", "Dialogs")
        fv.change_channel("Image")
        calibrate.show_steps()
        wait(viewer, calibrate, "the steps")
        shot(viewer, "ccd_steps", "Dialogs")

        inspect = viewer.global_plugin("CCDInspect")
        inspect.characterise()
        wait(viewer, inspect, "the characterisation")
        inspect.w.plots.set_index(0)
        inspect.w.marks.get_widget().click()  # hot and bad pixels on the image
        shot(viewer, "ccd_inspect", "CCD Inspect")

        # watch: a light and a dark arrive; then a light without a flat
        watch = viewer.global_plugin("CCDWatch")
        fv.change_channel("Image")
        watch.start_watch()
        viewer.wait_for(lambda: watch.watching, 300, "the watcher")
        names = sorted(os.listdir(held))
        first_light = [n for n in names if n.startswith("SA112")][0]
        for name in [first_light] + [n for n in names if n.startswith("darks")]:
            shutil.copy(os.path.join(held, name), os.path.join(raw, name))
        viewer.wait_for(lambda: watch.watcher is not None
                        and watch.watcher.counts["calibration"] >= 1
                        and watch.watcher.counts["calibrated"] >= 1, 600, "the watch")
        viewer.wait_for(lambda: browser.path_of(os.path.join(raw, first_light))
                        is not None and not browser.busy, 300, "the tree")
        viewer.pump(1.0)
        shot(viewer, "ccd_watch", "CCD Watch")
        for label in ("frametype = bias", "frametype = flat", "frametype = dark"):
            tree.get_widget().collapseItem(tree._path_to_item([label]))
        path = browser.path_of(os.path.join(raw, first_light))
        browser.select_path(path)          # as a click: summary and checklist
        tree.scroll_to_path(path)
        viewer.wait_for(lambda: browser.checklist.text().count("?") == 0, 120,
                        "the checklist")
        viewer.pump(1.0)
        fv.change_channel("Image_cal")
        shot(viewer, "ccd_browser_states", "CCD Browser")
        watch.stop_watch()
        viewer.wait_for(lambda: watch.watch_state == "off", 300, "the watch to stop")

        noflat = os.path.join(out, "masters-without-flat")
        os.makedirs(noflat, exist_ok=True)
        for name in os.listdir(os.path.join(out, "masters")):
            if name.startswith(("master_bias", "master_dark")):
                shutil.copy(os.path.join(out, "masters", name), noflat)
        watch.masters_row.set_path(noflat)
        fv.change_channel("Image")
        watch.start_watch()
        viewer.wait_for(lambda: watch.watching, 300, "the watcher")
        second = [n for n in names if n.startswith("SA112")][1]
        shutil.copy(os.path.join(held, second), os.path.join(raw, second))
        viewer.wait_for(lambda: watch.watch_result is not None
                        and watch.watch_result.name == second, 600, "the light")
        viewer.pump(1.0)
        shot(viewer, "watch_banner", "CCD Watch")
        watch.stop_watch()
        viewer.wait_for(lambda: watch.watch_state == "off", 300, "the watch to stop")

        viewer.window.resize(1280, 800)
        fv.change_channel("Image")
        calibrate.w.pages.set_index(0)
        shot(viewer, "window_1280x800", "Dialogs")
        return 0
    finally:
        viewer.close()


if __name__ == "__main__":
    sys.exit(main())
