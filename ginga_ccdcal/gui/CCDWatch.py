"""
``CCDWatch`` calibrates each new light as the camera writes it, and shows
it: quick-look at the telescope.

**Plugin Type: Global**

``CCDWatch`` is a global plugin: one instance, in the right-hand panel.
Open it from the "Plugins" menu under "CCD Calibration", or with the
"Watch..." button of the CCD Browser.

**Usage**

* "Raw folder" is the folder the camera writes into (it starts as the
  folder of the CCD Browser), "Masters folder" the masters to calibrate
  with (it starts as CCD Masters' folder) and "Output" where calibrated
  lights go (by default ``<raw>_reduced``, next to the raw folder).
* The strip "Masters: bias ✓ dark ✓ flat ✗" says, for the last light
  (before the first one: the last light of the folder), which steps the
  masters in the folder cover; point at a step for the reason.
* Tick "Watch" to start.  Each new light is calibrated with the masters
  that fit it, written to "Output" and shown in the channel
  ``<channel>_cal`` (``Image_cal`` when you started from ``Image``) with
  "zscale" cut levels.  New frames join the CCD Browser's tree, with
  their state (calibrated, partly calibrated, not calibrated, failed).
* Nothing looks calibrated that is not: when watching starts with no
  usable masters, and whenever a light was calibrated with a step
  missing (or not at all), a red banner over ``<channel>_cal`` says so;
  it goes away with the next fully calibrated light.  Problems also go
  to Ginga's "Errors" tab.
* "Watch log" gets a line per frame: what happened, and which master
  (with its version: frames and build time) was used for each step, and
  why.  Files this package wrote and files of unknown type are ignored,
  with a line.
* A new bias, dark or flat makes the masters of its kind out of date:
  CCD Masters marks them "stale".  With "Live masters" the watcher
  rebuilds them before the next light, which then uses the new version.
* Tick "Poll (network drive)" when the raw folder is on a network drive,
  whose changes the operating system does not report.
* Untick "Watch" (or close the plugin) to stop; the frame being
  calibrated is finished first.  Frames already in the folder when you
  start are left alone: calibrate them with CCD Calibrate.

**User Configuration**

Settings live in ``plugin_CCDWatch.cfg`` in Ginga's settings folder:

* ``live_masters`` (``False``), ``poll`` (``False``): the options.
* ``poll_interval`` (``0.5``): seconds between looks at the folder when
  polling, and how long a file must stay unchanged to count as complete.
* ``channel_suffix`` (``"_cal"``), ``autocut_method`` (``"zscale"``):
  the channel watched lights are shown in, and its cut levels.
"""

import os
import time
import traceback

from ginga import GingaPlugin
from ginga.gw import Widgets

from ..describe import watch_banner, watch_result_lines, watch_state
from ..errors import CcdcalError
from ..watch import FolderWatcher
from .common import (CAL_SUFFIX, ChecklistStrip, FolderRow, MessageArea, OwnHelp,
                     button_row, calibrated_image, clear_banner, default_output_folder,
                     finish_panel, get_session, panel_box, report_problem,
                     result_channel_name, show_banner, show_calibrated, wrapping_label)

__all__ = ["CCDWatch"]


def _master_versions(masters):
    """What changes when a master is rebuilt, added or removed."""
    return sorted((m.path, m.version, m.mtime) for m in masters)


class CCDWatch(OwnHelp, GingaPlugin.GlobalPlugin):
    """Quick-look calibration of each new light (see module help)."""

    def __init__(self, fv):
        super().__init__(fv)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDWatch")
        self.settings.add_defaults(live_masters=False, poll=False, poll_interval=0.5,
                                   channel_suffix=CAL_SUFFIX, autocut_method="zscale")
        self.settings.load(onError="silent")
        self.session = get_session(fv)
        self.session.add_callback("scan-changed", self._scan_changed_cb)
        self.session.add_callback("masters-changed", self._masters_changed_cb)
        # 'off', 'starting', 'on', 'stopping'
        self.watch_state = "off"
        self.watcher = None
        self.watch_folder = None
        self.watch_chname = None
        self.watch_result = None
        self._watch_gen = 0
        self._watch_masters = None
        self.gui_up = False

    # -- GUI -----------------------------------------------------------------
    def build_gui(self, container):
        top = panel_box()
        self.raw_row = FolderRow("Raw folder:", tooltip="The folder the camera "
                                 "writes into")
        top.add_widget(self.raw_row.get_widget(), stretch=0)
        self.masters_row = FolderRow("Masters folder:", tooltip="Masters to calibrate "
                                     "with; Enter makes it every CCD plugin's")
        self.masters_row.add_callback("activated", self.masters_folder_cb)
        top.add_widget(self.masters_row.get_widget(), stretch=0)
        self.out_row = FolderRow("Output:", tooltip="Watched lights are calibrated "
                                 "into this folder; Enter makes it every CCD plugin's")
        self.out_row.add_callback("activated", self.output_folder_cb)
        top.add_widget(self.out_row.get_widget(), stretch=0)

        self.checklist = ChecklistStrip()
        top.add_widget(self.checklist.get_widget(), stretch=0)

        self.w.watch = Widgets.CheckBox("Watch")
        self.w.watch.set_tooltip("Calibrate each new light in the raw folder as it "
                                 "arrives and show it in <channel>_cal")
        self.w.watch.add_callback("activated", self.watch_cb)
        self.w.live = Widgets.CheckBox("Live masters")
        self.w.live.set_state(bool(self.settings.get("live_masters", False)))
        self.w.live.set_tooltip("Rebuild the masters new bias, dark or flat frames "
                                "make stale, before the next light")
        self.w.poll = Widgets.CheckBox("Poll (network drive)")
        self.w.poll.set_state(bool(self.settings.get("poll", False)))
        self.w.poll.set_tooltip("Look at the folder every "
                                f"{self.settings.get('poll_interval', 0.5):g} s instead "
                                "of waiting for the system's notifications")
        top.add_widget(button_row(self.w.watch, self.w.live, self.w.poll), stretch=0)
        self.w.watch_status = wrapping_label("Not watching.")
        top.add_widget(self.w.watch_status, stretch=0)

        # the log takes whatever height the panel has left
        self.watch_log = MessageArea("Watch log", max_height=16777215)
        top.add_widget(self.watch_log.get_widget(), stretch=1)
        finish_panel(self, container, top)
        self.gui_up = True

    def start(self):
        folder = self.session.folder
        self.raw_row.set_path(folder)
        self.out_row.set_path(self._default_output(folder))
        self.masters_row.set_path(self.session.masters_folder)
        self._show_watch_state()
        self.update_checklist()

    def stop(self):
        self.stop_watch()
        self.settings.set(live_masters=self.w.live.get_state(),
                          poll=self.w.poll.get_state())
        self.gui_up = False

    def close(self):
        self.fv.stop_global_plugin(str(self))
        return True

    def __str__(self):
        return "ccdwatch"

    # -- state the other plugins and tests read ------------------------------
    @property
    def busy(self):
        """True while the watch is starting or stopping."""
        return self.watch_state in ("starting", "stopping")

    @property
    def watching(self):
        """True while a watcher runs (from started until it is told to stop)."""
        return self.watch_state == "on"

    def cancel(self):
        """Stop a watch that is starting."""
        if self.watch_state == "starting":
            self.stop_watch()

    # -- folders -----------------------------------------------------------------
    def _default_output(self, folder):
        """The output folder shown for raw ``folder``: the session's when it
        is the scanned folder, else the default sibling ``<folder>_reduced``."""
        if not folder:
            return self.session.output_folder
        if self.session.folder == os.path.abspath(folder):
            return self.session.output_folder
        return default_output_folder(folder)

    def output_folder_cb(self, row, path):
        self.session.output_folder = path
        # the default masters folder lives in the output folder
        self.session.masters_built()

    def masters_folder_cb(self, row, path):
        self.session.set_masters_folder(path)

    def _scan_changed_cb(self, session, scan):
        if self.watcher is not None:
            # spellings saved in the browser: read for each new file
            self.watcher.aliases = session.aliases
        if not self.gui_up or self.watch_state != "off":
            return
        self.raw_row.set_path(session.folder)
        self.out_row.set_path(self._default_output(session.folder))
        self.masters_row.set_path(session.masters_folder)
        self.update_checklist()

    def _masters_changed_cb(self, session, folder):
        if not self.gui_up:
            return
        if self.watch_state == "off":
            self.masters_row.set_path(folder)
        self.update_checklist()

    # -- the checklist -------------------------------------------------------------
    def _checked_light(self):
        """The light the checklist is for: the last one watched, else the
        last light of the browser's scan."""
        result = self.watch_result
        if result is not None and result.frame is not None \
                and result.frame.frametype == "light":
            return result.frame
        lights = self.session.frames("light")
        return lights[-1] if lights else None

    def update_checklist(self):
        """Match the checked light to the masters (off the GUI thread) and show it."""
        if not self.gui_up:
            return
        light = self._checked_light()
        folder = self.masters_row.get_path()
        if light is None:
            self.checklist.set_match(None, "no light yet")
            return
        self.checklist.check(self.fv, self.session, light, folder, lambda: self.gui_up)

    # -- watching ----------------------------------------------------------------
    def watch_cb(self, w, state):
        if state:
            self.start_watch()
        else:
            self.stop_watch()

    def start_watch(self):
        """Watch the raw folder: calibrate and show each new light.

        The watcher starts in a worker thread (a network drive may take a
        while to list); `watching` is True once it runs.

        Returns
        -------
        bool
            False if nothing was started (no folder, or a watch running
            or still stopping).
        """
        if self.watch_state != "off":
            if self.watch_state == "stopping":
                self.watch_log_line("The previous watch is still stopping; "
                                    "tick Watch again in a moment.")
            self._show_watch_state()
            return False
        folder = self.raw_row.get_path()
        if not folder or not os.path.isdir(folder):
            self.watch_log_line(f"Cannot watch {folder}: no such folder." if folder
                                else "Choose the raw folder to watch first.")
            self._show_watch_state()
            return False
        self.watch_folder = raw = os.path.abspath(folder)
        out = self.out_row.get_path() or self._default_output(raw)
        masters_dir = self.masters_row.get_path() or os.path.join(out, "masters")
        if self.session.folder != raw:
            # the browser shows the watched folder, so new frames join its tree
            self.session.want_scan(raw, quiet=False)
        self.watch_chname = result_channel_name(
            self._raw_channel(), self.settings.get("channel_suffix", CAL_SUFFIX))
        live, poll = self.w.live.get_state(), self.w.poll.get_state()
        aliases = self.session.aliases
        interval = float(self.settings.get("poll_interval", 0.5))
        self._watch_gen += 1
        gen = self._watch_gen
        self.watch_state = "starting"
        self._watch_masters = None
        self.watch_result = None
        self.watch_log_line(f"Starting to watch {raw}: lights calibrated into {out} "
                            f"with the masters in {masters_dir}, shown in "
                            f"{self.watch_chname}" + ("; live masters" if live else ""))
        self._show_watch_state()

        def start():
            try:
                watcher = FolderWatcher(
                    raw, out, masters_dir=masters_dir, poll=poll, poll_interval=interval,
                    rebuild_masters=live, existing=False, aliases=aliases,
                    on_result=lambda r: self.fv.gui_do(self._watch_result_cb, gen, r,
                                                       self._result_image(r)),
                    on_event=lambda t: self.fv.gui_do(self._watch_event_cb, gen, t))
                watcher.start()
            except CcdcalError as exc:
                self.fv.gui_do(self._watch_stopped_cb, None, str(exc))
            except Exception as exc:  # a bug: log it fully, tell the user briefly
                self.logger.error(f"CCDWatch: cannot start watching: {exc}\n"
                                  + traceback.format_exc())
                self.fv.gui_do(self._watch_stopped_cb, None,
                               f"unexpected error ({exc.__class__.__name__}: {exc}); "
                               "details are in Ginga's log")
            else:
                self.fv.gui_do(self._watch_started_cb, watcher)

        self.fv.nongui_do(start)
        return True

    def _raw_channel(self):
        """The channel raw frames are shown in (the browser's rule)."""
        channel = self.fv.get_current_channel()
        chname = channel.name if channel is not None else "Image"
        suffix = self.settings.get("channel_suffix", CAL_SUFFIX)
        masters_channel = self.fv.get_preferences().create_category(
            "plugin_CCDMasters").get("channel", "Masters")
        if chname.endswith(suffix) and self.fv.has_channel(chname[:-len(suffix)]):
            return chname[:-len(suffix)]
        if chname == masters_channel:
            return "Image"
        return chname

    def _watch_started_cb(self, watcher):
        if self.watch_state != "starting":
            # unticked (or closed) while it started
            self._stop_watcher(watcher)
            return
        self.watcher = watcher
        self.watch_state = "on"
        self._watch_masters = _master_versions(watcher.masters)
        self._show_watch_state()
        self._check_masters_banner()
        self.update_checklist()

    def _check_masters_banner(self):
        """The banner of a watch with no usable masters (cleared once there are)."""
        watcher = self.watcher
        if watcher is None:
            return
        if not watcher.masters:
            text = (f"Watching with no masters in {watcher.masters_dir}: new lights "
                    "will NOT be calibrated")
            show_banner(self.fv, self.watch_chname, text)
            self.watch_log_line(text + ".")
            report_problem(self.fv, f"CCD Watch: {text}.")
        elif self.watch_result is None:
            clear_banner(self.fv, self.watch_chname)

    def stop_watch(self):
        """Stop watching; the watcher's threads are joined in a worker thread.

        The frame being calibrated is finished (and shown) first.  Returns
        False if there was nothing to stop.
        """
        state = self.watch_state
        if state == "starting":
            # the start thread hands the watcher over, and it is stopped then
            self.watch_state = "stopping"
        elif state == "on":
            watcher, self.watcher = self.watcher, None
            self._stop_watcher(watcher)
        else:
            return False
        self._show_watch_state()
        return True

    def _stop_watcher(self, watcher):
        self.watch_state = "stopping"

        def stop():
            try:
                watcher.stop()
            finally:
                self.fv.gui_do(self._watch_stopped_cb, watcher, None)

        self.fv.nongui_do(stop)

    def _watch_stopped_cb(self, watcher, problem):
        self.watch_state = "off"
        self.watcher = None
        if problem:
            self.watch_log_line(f"Cannot watch: {problem}")
            report_problem(self.fv, f"CCD Watch: cannot watch: {problem}")
        elif watcher is not None:
            counts = ", ".join(f"{n} {status}" for status, n in watcher.counts.items() if n)
            self.watch_log_line(f"Stopped watching {watcher.raw_dir}"
                                + (f" ({counts})." if counts else "; no new frames."))
        self._show_watch_state()

    def _show_watch_state(self):
        """Bring the widgets in line with `watch_state`."""
        if not self.gui_up:
            return
        state = self.watch_state
        self.w.watch.set_state(state in ("starting", "on"))
        for widget in (self.w.live, self.w.poll, self.out_row.entry, self.out_row.browse,
                       self.raw_row.entry, self.raw_row.browse, self.masters_row.entry,
                       self.masters_row.browse):
            widget.set_enabled(state == "off")
        watcher = self.watcher
        if state == "on" and watcher is not None:
            counts = watcher.counts
            text = (f"Watching {watcher.raw_dir} ({watcher.mode}): "
                    f"{counts['calibrated']} calibrated, "
                    f"{counts.get('uncalibrated', 0)} NOT calibrated, "
                    f"{counts['calibration']} calibration frame(s), "
                    f"{counts['problem']} problem(s)")
        else:
            text = {"starting": "Starting...", "stopping": "Stopping...",
                    "off": "Not watching."}.get(state, state)
        self.w.watch_status.set_text(text)

    def watch_log_line(self, text):
        """Add a time-stamped line to the watch log."""
        if self.gui_up:
            self.watch_log.add_line(f"{time.strftime('%H:%M:%S')} {text}")

    def _watch_event_cb(self, gen, text):
        if gen == self._watch_gen:
            self.watch_log_line(text)

    def _result_image(self, result):
        """The Ginga image of a calibrated light, made in the watcher's
        thread (not on the GUI thread); None for other results."""
        if result.status != "calibrated":
            return None
        try:
            return calibrated_image(result.ccd, result.output,
                                    self.settings.get("autocut_method", "zscale"),
                                    self.logger)
        except Exception as exc:  # a bug: never stop the watcher for a display
            self.logger.error(f"CCDWatch: cannot make the image of {result.output}: "
                              f"{exc}\n" + traceback.format_exc())
            return None

    def _watch_result_cb(self, gen, result, image=None):
        """A file was handled by the watcher (GUI thread); ``image`` is the
        calibrated light's (`_result_image`)."""
        if gen != self._watch_gen or not self.gui_up:
            return
        self.watch_result = result
        for line in watch_result_lines(result, time.strftime("%H:%M:%S")):
            self.watch_log.add_line(line)
        state = watch_state(result)
        if state is not None:
            self.session.set_frame_state(result.path, *state)
        if result.status == "problem":
            report_problem(self.fv, f"CCD Watch: {result.name}: {result.problem}")
        self._show_result(result, image)
        if result.status == "calibration" and result.stale:
            self.session.report_stale(result.stale)
        readable = result.status != "problem" or result.frame is not None
        if result.status != "ignored" and readable:
            self._watch_masters_changed()
            # the new frame joins the browser's tree (only new files are read)
            self.session.want_scan(self.watch_folder, quiet=True)
        self._show_watch_state()
        if result.frame is not None and result.frame.frametype == "light":
            self.update_checklist()

    def _show_result(self, result, image):
        """A calibrated light (``image``) in ``<channel>_cal``; a banner when
        it is not fully calibrated, or when it was not calibrated at all."""
        chname = self.watch_chname
        banner = watch_banner(result)
        if result.status == "calibrated":
            if image is None:       # not made in the watcher's thread
                image = self._result_image(result)
            if image is None:
                report_problem(self.fv, f"CCD Watch: {result.name}: calibrated into "
                               f"{result.output}, but it cannot be shown (details "
                               "in Ginga's log)")
            else:
                show_calibrated(self.fv, image, chname,
                                self.settings.get("autocut_method", "zscale"))
        if banner:
            text = f"{result.name}: {banner}"
            show_banner(self.fv, chname, text)
            report_problem(self.fv, f"CCD Watch: {text}")
        elif result.status == "calibrated":
            clear_banner(self.fv, chname)

    def _watch_masters_changed(self):
        """Tell the other plugins when the watcher rebuilt masters (live masters)."""
        watcher = self.watcher
        if watcher is None:
            return
        versions = _master_versions(watcher.masters)
        if versions != self._watch_masters:
            self._watch_masters = versions
            self.session.masters_built()
            self._check_masters_banner()
