"""
``CCDCalibrate`` calibrates the light frame shown in a channel in one click.

**Plugin Type: Local**

``CCDCalibrate`` is a local plugin: it works on the channel it was opened
in.  Open it from the "Operations" menu under "CCD Calibration" while a
raw light frame is shown in the channel.

**Usage**

* The plugin reads the frame shown in the channel and, from the masters
  in "Masters folder", says which master bias, dark and flat it will use
  and why (same exposure, dark scaled 120 s -> 300 s, filter R...), with
  any warnings (a dark taken at another CCD temperature).  The masters
  folder is the one CCD Masters writes to; change it if yours are
  elsewhere.
* If masters are missing, the plugin says which and why; "Open CCD
  Masters" takes you to the master builder.  Calibrating anyway applies
  the steps that have a master and records the missing ones in the
  header.
* "Calibrate" calibrates the frame (in the background) and shows the
  result in the channel ``<channel>_cal`` (``Image_cal`` for ``Image``)
  with "zscale" cut levels so the sky background and faint stars are
  visible.  The calibrated frame is written to "Output folder" under its
  raw name, its header recording every master used, its checksum and the
  reason it was chosen.  An output that already exists is kept and shown
  unless "Replace existing" is ticked.
* "Calibrate all" calibrates every light frame of the CCD Browser's scan
  the same way, in the background with a progress bar and "Cancel";
  lights already calibrated are skipped (so a stopped run resumes).

Why a separate ``<channel>_cal`` channel: the raw and the calibrated frame
stay side by side, so you can switch or blink between them (Operations >
Analysis > Blink Channels) and compare with the same pan, zoom and cut
tools; and the raw channel's history keeps holding only raw frames, so
paging through it (and re-running this plugin on it) never mixes in
products.

**User Configuration**

Settings live in ``plugin_CCDCalibrate.cfg`` in Ginga's settings folder:

* ``channel_suffix`` (``"_cal"``): suffix of the channel for results.
* ``autocut_method`` (``"zscale"``): cut levels used in that channel.
"""

import os

from astropy.io import fits
from ginga import GingaPlugin
from ginga.AstroImage import AstroImage
from ginga.gw import Widgets

from ..calibrate import calibrate_and_write
from ..errors import CcdcalError
from ..masters import load_masters
from ..match import match_light
from ..reduce import calibrate_lights
from ..safe_write import OutputExists
from ..scan import frame_from_file, is_product
from .common import (FolderRow, MessageArea, TaskPanel, button_row,
                     default_output_folder, get_session)

__all__ = ["CCDCalibrate"]


class CCDCalibrate(GingaPlugin.LocalPlugin):
    """One-click calibration of a channel's light frame (see module help)."""

    def __init__(self, fv, fitsimage):
        super().__init__(fv, fitsimage)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDCalibrate")
        self.settings.add_defaults(channel_suffix="_cal", autocut_method="zscale")
        self.settings.load(onError="silent")
        self.session = get_session(fv)
        self.frame = None
        self.match = None
        self.masters = []
        self.result_path = None
        self.all_report = None
        self.task = None
        self._callbacks_on = False
        self.gui_up = False

    # -- GUI -----------------------------------------------------------------
    def build_gui(self, container):
        top = Widgets.VBox()
        top.set_border_width(4)
        top.set_spacing(4)

        fr = Widgets.Frame("Frame in this channel")
        self.w.frame = Widgets.Label("", halign="left")
        fr.set_widget(self.w.frame)
        top.add_widget(fr, stretch=0)

        self.masters_row = FolderRow("Masters folder:",
                                     tooltip="Folder with masters made by CCD Masters")
        self.masters_row.add_callback("activated", self.masters_folder_cb)
        top.add_widget(self.masters_row.get_widget(), stretch=0)

        fr = Widgets.Frame("Masters it will use, and why")
        box = Widgets.VBox()
        box.set_spacing(2)
        self.w.choice = Widgets.TextArea(wrap=True, editable=False)
        self.w.choice.set_min_size(0, 60)
        self.w.choice.set_max_size(None, 140)
        box.add_widget(self.w.choice, stretch=1)
        self.w.missing = Widgets.Label("", halign="left")
        box.add_widget(self.w.missing, stretch=0)
        self.w.open_masters = Widgets.Button("Open CCD Masters")
        self.w.open_masters.set_tooltip("Build the missing masters")
        self.w.open_masters.add_callback("activated", lambda w: self.open_masters_plugin())
        box.add_widget(button_row(self.w.open_masters), stretch=0)
        fr.set_widget(box)
        top.add_widget(fr, stretch=0)

        self.output_row = FolderRow("Output folder:",
                                    tooltip="Calibrated frames are written here")
        top.add_widget(self.output_row.get_widget(), stretch=0)

        self.w.calibrate = Widgets.Button("Calibrate")
        self.w.calibrate.set_tooltip("Calibrate this frame and show it in "
                                     "the <channel>_cal channel")
        self.w.calibrate.add_callback("activated", lambda w: self.calibrate())
        self.w.calibrate_all = Widgets.Button("Calibrate all")
        self.w.calibrate_all.set_tooltip("Calibrate every light frame of the "
                                         "CCD Browser's scan")
        self.w.calibrate_all.add_callback("activated", lambda w: self.calibrate_all())
        self.w.overwrite = Widgets.CheckBox("Replace existing")
        self.w.overwrite.set_tooltip("Calibrate again frames whose output exists")
        top.add_widget(button_row(self.w.calibrate, self.w.calibrate_all,
                                  self.w.overwrite), stretch=0)

        self.task = TaskPanel(self.fv, "CCDCalibrate")
        top.add_widget(self.task.get_widget(), stretch=0)

        self.messages = MessageArea("Messages", max_height=220)
        top.add_widget(self.messages.get_widget(), stretch=0)
        top.add_widget(Widgets.Label(""), stretch=1)

        btns = Widgets.HBox()
        btns.set_spacing(3)
        btn = Widgets.Button("Close")
        btn.add_callback("activated", lambda w: self.close())
        btns.add_widget(btn, stretch=0)
        btn = Widgets.Button("Help")
        btn.add_callback("activated", lambda w: self.help())
        btns.add_widget(btn, stretch=0)
        btns.add_widget(Widgets.Label(""), stretch=1)
        top.add_widget(btns, stretch=0)

        container.add_widget(top, stretch=1)
        self.gui_up = True

    def start(self):
        if not self._callbacks_on:
            self.session.add_callback("masters-changed", self._masters_changed_cb)
            self.session.add_callback("scan-changed", self._scan_changed_cb)
            self._callbacks_on = True
        self.masters_row.set_path(self.session.masters_folder)
        self.redo()

    def stop(self):
        if self.task is not None and self.task.busy:
            self.task.cancel()
        if self._callbacks_on:
            self.session.remove_callback("masters-changed", self._masters_changed_cb)
            self.session.remove_callback("scan-changed", self._scan_changed_cb)
            self._callbacks_on = False
        self.gui_up = False

    def close(self):
        self.fv.stop_local_plugin(self.chname, str(self))
        return True

    def __str__(self):
        return "ccdcalibrate"

    # -- state ---------------------------------------------------------------
    @property
    def busy(self):
        """True while a calibration runs."""
        return self.task is not None and self.task.busy

    def cancel(self):
        if self.task is not None:
            self.task.cancel()

    @property
    def cal_chname(self):
        """The channel calibrated frames are shown in."""
        return self.chname + self.settings.get("channel_suffix", "_cal")

    def open_masters_plugin(self):
        self.fv.start_global_plugin("CCDMasters", raise_tab=True)

    # -- following the channel and the other plugins ----------------------------
    def redo(self):
        """A new image in the channel: work out what calibrating it takes."""
        if not self.gui_up:
            return
        self.frame = self.match = None
        self.w.choice.set_text("")
        self.w.missing.set_text("")
        image = self.fitsimage.get_image()
        path = image.get("path", None) if image is not None else None
        if path is None or not os.path.isfile(path):
            self._no_frame("No raw frame from a file in this channel: open a "
                           "light frame (e.g. click one in the CCD Browser).")
            return
        try:
            self.frame = self._frame_for(path)
        except CcdcalError as exc:
            self._no_frame(f"This file cannot be calibrated: {exc}")
            return
        frame = self.frame
        if is_product(frame.header):
            self.frame = None
            self._no_frame(f"{os.path.basename(path)} was written by ginga-ccdcal "
                           "(a master or calibrated frame), not a raw frame.")
            return
        text = (f"{frame.name}: {frame.frametype}, {frame.exptime} s, "
                f"filter {frame.filter}")
        self.w.frame.set_text(text)
        self.output_row.set_path(self._output_folder_for(frame))
        self.update_match()

    def _no_frame(self, message):
        self.w.frame.set_text(message)
        self.w.calibrate.set_enabled(False)
        self.w.open_masters.set_enabled(False)

    def _frame_for(self, path):
        """The scan's `Frame` for ``path`` (types as the user set them)."""
        apath = os.path.abspath(path)
        for frame in self.session.frames():
            if os.path.abspath(frame.path) == apath:
                return frame
        return frame_from_file(path, overrides=self.session.overrides)

    def _output_folder_for(self, frame):
        folder = self.session.folder
        if folder and os.path.abspath(frame.path).startswith(os.path.abspath(folder) + os.sep):
            return self.session.output_folder
        return default_output_folder(os.path.dirname(os.path.abspath(frame.path)))

    def masters_folder_cb(self, row, path):
        self.session.set_masters_folder(path)

    def _masters_changed_cb(self, session, folder):
        if self.gui_up:
            self.masters_row.set_path(folder)
            self.update_match()

    def _scan_changed_cb(self, session, scan):
        if self.gui_up and not self.busy:
            self.masters_row.set_path(session.masters_folder)
            self.redo()

    def update_match(self):
        """Match the frame to the masters and show the choice."""
        if self.frame is None:
            return
        frame = self.frame
        folder = self.masters_row.get_path()
        self.masters = load_masters(folder)
        if not self.masters:
            self.match = None
            self.w.choice.set_text("")
            self.w.missing.set_text(f"No masters in {folder}.\nBuild them with "
                                    "CCD Masters, or choose the folder that has them.")
            self.w.calibrate.set_enabled(False)
            self.w.open_masters.set_enabled(True)
            return
        self.match = match_light(frame, self.masters)
        lines = list(self.match.describe())
        if frame.frametype != "light":
            lines.insert(0, f"note: this frame is a {frame.frametype}, not a "
                         "light; it will be calibrated as a light.")
        self.w.choice.set_text("\n".join(lines))
        missing = self.match.missing
        if missing:
            reasons = "\n".join(f"  {role}: {getattr(self.match, role).reason}"
                                for role in missing)
            self.w.missing.set_text(f"Missing master(s):\n{reasons}\nCalibrating "
                                    "now skips these steps (noted in the header).")
        else:
            self.w.missing.set_text("All masters found.")
        self.w.open_masters.set_enabled(bool(missing))
        self.w.calibrate.set_enabled(True)

    # -- calibrating one frame -------------------------------------------------
    def calibrate(self):
        """Calibrate the channel's frame off the GUI thread; False if not started."""
        if self.frame is None or self.match is None:
            self.messages.set_lines([self.w.missing.get_text() or self.w.frame.get_text()
                                     or "Nothing to calibrate."])
            return False
        frame, match = self.frame, self.match
        out_dir = self.output_row.get_path() or self._output_folder_for(frame)
        raw_root = self.session.folder
        overwrite = self.w.overwrite.get_state()
        self.messages.set_lines([f"Calibrating {frame.name} ..."])

        def work(progress, cancel):
            progress(0, 1, frame.name)
            try:
                path, ccd = calibrate_and_write(frame, match, out_dir, raw_root=raw_root,
                                                overwrite=overwrite)
            except OutputExists as exc:
                return exc.path, None
            progress(1, 1, frame.name)
            return path, ccd

        return self.task.run(work, label="Calibrating", on_done=self._calibrated,
                             on_error=self._failed)

    def _calibrated(self, result):
        path, ccd = result
        self.result_path = path
        chname = self.cal_chname
        self._prepare_channel(chname)
        if ccd is None:
            self.messages.set_lines([f"{path} already exists: showing it. Tick "
                                     "'Replace existing' to calibrate again."])
            self.fv.nongui_do(self.fv.load_file, path, chname=chname)
            return
        image = AstroImage(logger=self.logger)
        image.load_hdu(fits.PrimaryHDU(data=ccd.data, header=ccd.header))
        name = os.path.splitext(os.path.basename(path))[0] + "_cal"
        image.set(name=name, path=path)
        self.fv.add_image(name, image, chname=chname)
        self.fv.change_channel(chname)
        steps = ccd.header.get("CALSTAT", "") or "none"
        legend = ccd.header.comments["CALSTAT"] if "CALSTAT" in ccd.header else ""
        lines = [f"Calibrated {self.frame.name} -> {path}",
                 f"steps applied: {steps}" + (f" ({legend})" if legend else "")]
        lines += [f"warning: {w}" for w in self.match.warnings]
        self.messages.set_lines(lines)

    def _prepare_channel(self, chname):
        """Create ``chname`` if needed, with cut levels that show the sky."""
        channel = self.fv.get_channel_on_demand(chname)
        method = self.settings.get("autocut_method", "zscale")
        channel.viewer.set_autocut_params(method)
        channel.viewer.enable_autocuts("override")
        return channel

    def _failed(self, message, cancelled):
        self.messages.set_lines(["Cancelled." if cancelled
                                 else f"Not calibrated: {message}"])

    # -- calibrating the whole scan --------------------------------------------
    def calibrate_all(self):
        """Calibrate every light of the browser's scan; False if not started."""
        lights = self.session.frames("light")
        if not lights:
            self.messages.set_lines(["No light frames: scan a folder in the CCD "
                                     "Browser first."])
            return False
        folder = self.masters_row.get_path()
        masters = load_masters(folder)
        if not masters:
            self.messages.set_lines([f"No masters in {folder}: build them with "
                                     "CCD Masters first."])
            self.w.open_masters.set_enabled(True)
            return False
        out_dir = self.session.output_folder
        raw_root = self.session.folder
        overwrite = self.w.overwrite.get_state()
        self.messages.set_lines([f"Calibrating {len(lights)} light frames into "
                                 f"{out_dir} ..."])

        def work(progress, cancel):
            return calibrate_lights(lights, masters, out_dir, raw_root=raw_root,
                                    overwrite=overwrite, progress=progress,
                                    cancel=cancel)

        return self.task.run(work, label="Calibrating all", on_done=self._all_done,
                             on_error=self._failed)

    def _all_done(self, report):
        self.all_report = report
        lines = [f"{len(report.written)} calibrated, {len(report.existing)} already "
                 f"there (kept), {len(report.problems)} failed; in "
                 f"{self.session.output_folder}"]
        if report.warnings:
            lines.append(f"{len(report.warnings)} warning(s):")
            prefix = (self.session.folder or "") + os.sep
            lines += [f"  {w.replace(prefix, '')}" for w in report.warnings]
        if report.problems:
            lines.append("Not calibrated:")
            lines += [f"  {p}" for p in report.problems]
        self.messages.set_lines(lines)

