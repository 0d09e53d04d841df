"""
``CCDCalibrate`` calibrates the light frame shown in a channel in one click,
and shows the calibration step by step.

**Plugin Type: Local**

``CCDCalibrate`` is a local plugin: it works on the channel it was opened
in.  Open it from the "Operation" button under the image ("CCD
Calibration" > "CCD Calibrate") while a raw light frame is shown in the
channel.

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
* "Options" choose how:

  - "Dark scale": "exposure ratio" scales the master dark by the ratio of
    exposure times; "fit to this light" fits the factor that best removes
    the dark pattern (hot pixels, glow) from this very frame -- useful
    when the CCD temperature drifted.  The fitted factor is reported
    (header keyword DARKSCL).
  - "Remove cosmic rays": clean the calibrated frame with L.A.Cosmic; the
    number of pixels cleaned is reported (CRCLEAN).
  - "Gain" in e-/ADU: blank keeps the result in ADU; a number, or
    "header" for the header's GAIN/EGAIN, converts it to electrons.
  - "Read noise" in e-: blank for none; with a gain, the output gets an
    uncertainty extension (photon noise plus read noise).  Cosmic-ray
    cleaning uses gain and read noise too (or the header's).

  The options are remembered for the next frame and the next session.
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
* "Show steps" opens the "Steps" page: the frame as the camera wrote it
  (bias level and overscan included), after the overscan is subtracted
  and the frame trimmed ("raw"), after the bias is subtracted, after the
  dark is subtracted and after the flat divides it, side by side, each
  with one line on what that step removed (the bias level, the dark
  current, the vignetting), and below it the step's row profile (the
  median of each column: the overscan strip, the bias structure, the
  vignetting's slope show there).  Each panel has its own contrast
  (zscale of its own pixels), so its structure shows; "Same cuts for
  all" gives them one contrast about each panel's sky level instead, to
  compare levels.  "Blink raw / calibrated" shows the raw and the
  calibrated frame in turn in the last panel until pressed again (or
  the page or plugin closes).  Dragging or zooming one panel moves them
  all.  "To channel" puts a step in the channel ``Steps``, where Ginga's
  own Cuts, Histogram and Pick work on it (and Blink Channels against
  ``<channel>_cal``).  Nothing is written.

Why a separate ``<channel>_cal`` channel: the raw and the calibrated frame
stay side by side, so you can switch or blink between them (Operation >
Analysis > Blink Channels) and compare with the same pan, zoom and cut
tools; and the raw channel's history keeps holding only raw frames, so
paging through it (and re-running this plugin on it) never mixes in
products.

**User Configuration**

Settings live in ``plugin_CCDCalibrate.cfg`` in Ginga's settings folder:

* ``channel_suffix`` (``"_cal"``): suffix of the channel for results.
* ``autocut_method`` (``"zscale"``): cut levels used in that channel.
* ``dark_scale`` (``"exposure"`` or ``"fit"``), ``cosmics`` (``False``),
  ``gain`` (``None``, a number or ``"header"``), ``readnoise`` (``None``
  or a number): the options, saved whenever they are used.
"""

import os
import textwrap
import traceback
from dataclasses import dataclass

import numpy as np
from ginga import GingaPlugin
from ginga.AstroImage import AstroImage
from ginga.canvas.types import plots as gplots
from ginga.gw import Viewers, Widgets
from ginga.plot.plotaide import PlotAide

from ..calibrate import CalibrationOptions, calibrate_and_write, output_path
from ..describe import (DARK_SCALES, failure_state, match_banner, match_state,
                        parse_options, result_lines)
from ..errors import CcdcalError
from ..match import match_light
from ..reduce import calibrate_lights
from ..safe_write import OutputExists
from ..scan import frame_from_file, is_product
from ..steps import (as_read_step, blink_pair, calibration_steps, common_cuts, row_profile,
                     step_cuts)
from .common import (CAL_SUFFIX, ChecklistStrip, FolderRow, MessageArea, OwnHelp,
                     RunsTasks, TaskPanel, action_button, button_row, calibrated_image,
                     clear_banner, default_output_folder, finish_panel, get_session,
                     load_and_show, panel_box, plugin_button, prepare_result_channel,
                     report_problem, result_channel_name, show_banner, show_calibrated,
                     show_image, with_cut_levels, wrapping_label)

__all__ = ["CCDCalibrate"]

#: Panels of the "Steps" page (as read, raw, - bias, - dark, / flat).
N_STEP_PANELS = 5
#: Channel a step is sent to ("To channel").
STEPS_CHANNEL = "Steps"
#: Characters per line of a step's note (the panels are narrow).
NOTE_WIDTH = 32
#: Lines every note takes (at least), so that all panels are the same size.
NOTE_LINES = 4
#: Seconds each frame stays shown while blinking raw and calibrated.
BLINK_INTERVAL = 0.7


def _option_text(value):
    return "" if value is None else (value if isinstance(value, str) else f"{value:g}")


@dataclass
class _StepView:
    """What a panel shows of one step, worked out off the GUI thread."""

    step: object      # steps.Step
    own_cuts: tuple   # steps.step_cuts(step)
    common: tuple     # this step's steps.common_cuts
    profile: tuple    # steps.row_profile(step): (x, median of each column)


class _StepPanel:
    """One panel of the "Steps" page: title, a small viewer, its row profile
    (a Ginga plot), the note, and "To channel" (the step as an image of a
    channel, for Ginga's own Cuts, Histogram and Pick)."""

    def __init__(self, logger, send):
        self.widget = Widgets.VBox()
        self.widget.set_spacing(1)
        row = Widgets.HBox()
        self.title = Widgets.Label("", halign="center")
        row.add_widget(self.title, stretch=1)
        self.to_channel = action_button("To channel", "Show this step in the "
                                        f"'{STEPS_CHANNEL}' channel, where Ginga's "
                                        "Cuts, Histogram and Pick work on it",
                                        lambda: send(self.step))
        row.add_widget(self.to_channel, stretch=0)
        self.widget.add_widget(row, stretch=0)
        self.step = None
        viewer = Viewers.CanvasView(logger=logger)
        viewer.set_desired_size(180, 130)
        viewer.enable_autozoom("on")
        viewer.enable_autocuts("off")
        viewer.set_bg(0.2, 0.2, 0.2)
        # The panels get their size only when the Steps page first shows,
        # after the data arrived: fit again whenever the size changes.
        viewer.add_callback("configure", self._refit)
        self.viewer = viewer
        image = Viewers.GingaViewerWidget(viewer)
        image.set_min_size(160, 120)  # the image first; the page scrolls
        self.widget.add_widget(image, stretch=1)
        self.widget.add_widget(self._build_profile_plot(logger), stretch=0)
        self.note = Widgets.Label("", halign="left")
        self.widget.add_widget(self.note, stretch=0)
        self.view = None
        self._keep_view = False

    def _build_profile_plot(self, logger):
        # Ginga's own plot widget, as its Crosshair plugin's Cuts plot
        plot_viewer = Viewers.CanvasView(logger=logger)
        plot_viewer.set_desired_size(180, 80)
        plot_viewer.set_background("white")
        plot_viewer.set_foreground("black")
        self.plot = PlotAide(plot_viewer)
        # no x title: the key says it, and the panel is small
        self.plot.setup_standard_frame(title="", x_title=None, y_title="ADU",
                                       num_x_labels=3, num_y_labels=3)
        self.profile = gplots.XYPlot(name="row profile (median of each column)",
                                     color="#1b9e77", linewidth=1)
        self.plot.add_plot(self.profile)
        plot = Viewers.GingaViewerWidget(plot_viewer)
        plot.set_min_size(160, 80)
        plot.set_max_size(None, 90)
        return plot

    def show(self, view, same_cuts, keep_view=False):
        """Show ``view`` (a `_StepView`); ``keep_view`` keeps zoom and pan (blinking)."""
        self.view = view
        self.step = view.step
        self.title.set_text(view.step.title)
        # Notes padded to the same number of lines keep every viewer's size
        # when a note changes (blinking): a resize would fit them again.
        lines = textwrap.wrap(view.step.note, NOTE_WIDTH)
        self.note.set_text("\n".join(lines + [""] * (NOTE_LINES - len(lines))))
        self._keep_view = keep_view
        if keep_view:
            # no fit and no centring on this image: the panels keep their zoom
            self.viewer.enable_autozoom("off")
            self.viewer.enable_autocenter("off")
        self.viewer.set_data(view.step.data)
        self.viewer.enable_autozoom("on")
        self.viewer.enable_autocenter("on")
        self.use_same_cuts(same_cuts)
        self.profile.plot(np.column_stack(view.profile))
        self.plot.update_plots()
        self.widget.show()

    def use_same_cuts(self, same_cuts):
        """The step's own cut levels, or those common to all steps."""
        if self.view is not None:
            self.viewer.cut_levels(*(self.view.common if same_cuts else self.view.own_cuts))

    def hide(self):
        self.widget.hide()

    def _refit(self, viewer, width, height):
        if viewer.get_image() is not None and not self._keep_view:
            viewer.zoom_fit()


class CCDCalibrate(OwnHelp, RunsTasks, GingaPlugin.LocalPlugin):
    """One-click calibration of a channel's light frame (see module help)."""

    def __init__(self, fv, fitsimage):
        super().__init__(fv, fitsimage)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDCalibrate")
        self.settings.add_defaults(channel_suffix=CAL_SUFFIX, autocut_method="zscale",
                                   dark_scale="exposure", cosmics=False, gain=None,
                                   readnoise=None)
        self.settings.load(onError="silent")
        self.session = get_session(fv)
        self.frame = None
        self.match = None
        self.masters = []
        self.result_path = None
        self.result = None
        self.all_report = None
        self.steps = []
        self.step_views = []
        self.steps_frame = None
        self.blink_timer = None
        self._blink_before = False
        self.task = None
        self._callbacks_on = False
        self._lookup_gen = 0
        self._looking_up = False
        self._masters_folder = None
        self.step_panels = []
        self._panels_gen = 0
        self._showing = 0       # results on their way to a channel
        self.gui_up = False

    # -- GUI -----------------------------------------------------------------
    def build_gui(self, container):
        top = panel_box()
        self.w.pages = Widgets.TabWidget()
        self.w.pages.add_widget(self._build_calibrate_page(), title="Calibrate")
        self.w.pages.add_widget(self._build_steps_page(), title="Steps")
        # blinking is for the Steps page only: leaving it stops it
        self.w.pages.add_callback("page-switch", lambda w, child: self.stop_blink())
        top.add_widget(self.w.pages, stretch=1)
        finish_panel(self, container, top)
        self.gui_up = True

    def _build_calibrate_page(self):
        page = panel_box()
        fr = Widgets.Frame("Frame in this channel")
        self.w.frame = wrapping_label()
        fr.set_widget(self.w.frame)
        page.add_widget(fr, stretch=0)

        self.masters_row = FolderRow("Masters folder:",
                                     tooltip="Folder with masters made by CCD Masters")
        self.masters_row.add_callback("activated", self.masters_folder_cb)
        page.add_widget(self.masters_row.get_widget(), stretch=0)
        self.checklist = ChecklistStrip()
        page.add_widget(self.checklist.get_widget(), stretch=0)

        fr = Widgets.Frame("Masters it will use, and why")
        box = Widgets.VBox()
        box.set_spacing(2)
        self.w.choice = Widgets.TextArea(wrap=True, editable=False)
        self.w.choice.set_min_size(0, 60)
        self.w.choice.set_max_size(None, 110)
        box.add_widget(self.w.choice, stretch=1)
        self.w.missing = wrapping_label()
        box.add_widget(self.w.missing, stretch=0)
        self.w.open_masters = plugin_button(self.fv, "Open CCD Masters", "CCDMasters",
                                            tooltip="Build the missing masters")
        box.add_widget(button_row(self.w.open_masters), stretch=0)
        fr.set_widget(box)
        page.add_widget(fr, stretch=0)

        page.add_widget(self._build_options(), stretch=0)

        self.output_row = FolderRow("Output folder:",
                                    tooltip="Calibrated frames are written here")
        page.add_widget(self.output_row.get_widget(), stretch=0)

        self.w.calibrate = action_button("Calibrate", "Calibrate this frame and show "
                                         "it in the <channel>_cal channel", self.calibrate)
        self.w.calibrate_all = action_button("Calibrate all", "Calibrate every light "
                                             "frame of the CCD Browser's scan",
                                             self.calibrate_all)
        self.w.show_steps = action_button("Show steps", "Show the frame after each "
                                          "calibration step, side by side (nothing is "
                                          "written)", self.show_steps)
        self.w.overwrite = Widgets.CheckBox("Replace existing")
        self.w.overwrite.set_tooltip("Calibrate again frames whose output exists")
        page.add_widget(button_row(self.w.calibrate, self.w.calibrate_all,
                                   self.w.show_steps, self.w.overwrite), stretch=0)

        self.task = TaskPanel(self.fv, "CCDCalibrate")
        page.add_widget(self.task.get_widget(), stretch=0)

        self.messages = MessageArea("Messages", max_height=220)
        page.add_widget(self.messages.get_widget(), stretch=0)
        page.add_widget(Widgets.Label(""), stretch=1)
        return page

    def _build_options(self):
        fr = Widgets.Frame("Options")
        # two columns, so the panel stays narrow on a laptop
        grid = Widgets.GridBox(rows=4, columns=2)
        grid.set_spacing(4)
        grid.add_widget(Widgets.Label("Dark scale:"), 0, 0)
        self.w.dark_scale = Widgets.ComboBox()
        for text in DARK_SCALES:
            self.w.dark_scale.append_text(text)
        self.w.dark_scale.set_tooltip("Scale the master dark by the exposure ratio, "
                                      "or fit the factor to this light")
        grid.add_widget(self.w.dark_scale, 0, 1)
        grid.add_widget(Widgets.Label("Gain (e-/ADU):"), 1, 0)
        self.w.gain = Widgets.TextEntry()
        self.w.gain.set_tooltip("Blank: keep ADU; a number or 'header' (GAIN/EGAIN): "
                                "convert to electrons")
        grid.add_widget(self.w.gain, 1, 1)
        grid.add_widget(Widgets.Label("Read noise (e-):"), 2, 0)
        self.w.readnoise = Widgets.TextEntry()
        self.w.readnoise.set_tooltip("Blank: none; with a gain, the output gets an "
                                     "uncertainty (photon + read noise)")
        grid.add_widget(self.w.readnoise, 2, 1)
        self.w.cosmics = Widgets.CheckBox("Remove cosmic rays")
        self.w.cosmics.set_tooltip("Clean the calibrated frame with L.A.Cosmic")
        grid.add_widget(self.w.cosmics, 3, 1)
        fr.set_widget(grid)
        return fr

    def _build_steps_page(self):
        page = panel_box()
        self.w.steps_title = Widgets.Label("Press \"Show steps\" on the Calibrate page.",
                                           halign="left")
        page.add_widget(self.w.steps_title, stretch=0)
        self.w.blink = action_button("Blink raw / calibrated", "Show the raw and the "
                                     "calibrated frame in turn in the last panel",
                                     self.toggle_blink)
        self.w.blink.set_enabled(False)
        self.w.same_cuts = Widgets.CheckBox("Same cuts for all")
        self.w.same_cuts.set_tooltip("Off: each panel's own contrast (zscale of its "
                                     "pixels), so its structure shows. On: one contrast "
                                     "about each panel's sky level, to compare levels")
        self.w.same_cuts.add_callback("activated", lambda w, on: self._apply_cuts())
        page.add_widget(button_row(self.w.blink, self.w.same_cuts), stretch=0)
        # a Qt timer: its callback runs on the GUI thread, between events
        self.blink_timer = self.fv.make_timer()
        self.blink_timer.add_callback("expired", self._blink_cb)
        self.w.steps_grid = Widgets.GridBox(rows=3, columns=2)
        self.w.steps_grid.set_spacing(6)
        page.add_widget(self.w.steps_grid, stretch=1)
        # Each panel holds two Ginga viewers, some 50-100 ms to make: made
        # in build_gui they froze the window for a quarter of a second
        # when the plugin opened (and Ginga runs whatever is queued while
        # it opens a plugin).  They are made when steps are first asked
        # for, one per turn of the event loop while the steps are worked
        # out (`_start_step_panels`).
        self.step_panels = []
        self._panels_gen += 1
        return page

    def _start_step_panels(self):
        """Begin making the Steps panels not made yet, one per turn."""
        if len(self.step_panels) < N_STEP_PANELS:
            self.fv.gui_do(self._add_step_panel, self._panels_gen)

    def _add_step_panel(self, gen):
        """Make the next panel of the Steps page, then ask for the one after."""
        if gen != self._panels_gen or len(self.step_panels) >= N_STEP_PANELS:
            return      # the panel was closed (or rebuilt) meanwhile, or all are made
        self._new_step_panel()
        if len(self.step_panels) < N_STEP_PANELS:
            self.fv.gui_do(self._add_step_panel, gen)

    def _new_step_panel(self):
        i = len(self.step_panels)
        panel = _StepPanel(self.logger, self.step_to_channel)
        self.w.steps_grid.add_widget(panel.widget, i // 2, i % 2, stretch=1)
        panel.hide()
        if self.step_panels:
            # Drag or zoom one panel and the others follow: the same pixels
            # stay side by side.
            self.step_panels[0].viewer.get_settings().share_settings(
                panel.viewer.get_settings(), keylist=["scale", "pan"])
        self.step_panels.append(panel)

    def _ensure_step_panels(self):
        """Make the panels not made yet (steps arrived before all were)."""
        while len(self.step_panels) < N_STEP_PANELS:
            self._new_step_panel()

    def start(self):
        if not self._callbacks_on:
            self.session.add_callback("masters-changed", self._masters_changed_cb)
            self.session.add_callback("scan-changed", self._scan_changed_cb)
            self._callbacks_on = True
        self.set_options(self.settings.get("dark_scale"), self.settings.get("cosmics"),
                         _option_text(self.settings.get("gain")),
                         _option_text(self.settings.get("readnoise")))
        self.masters_row.set_path(self.session.masters_folder)
        self.redo()

    def stop(self):
        self.stop_blink()
        if self.task is not None and self.task.busy:
            self.task.cancel()
        if self._callbacks_on:
            self.session.remove_callback("masters-changed", self._masters_changed_cb)
            self.session.remove_callback("scan-changed", self._scan_changed_cb)
            self._callbacks_on = False
        try:
            self.get_options()  # remembers them when they are valid
        except ValueError:
            pass
        self._panels_gen += 1      # panels still to be made are not
        self.gui_up = False

    def close(self):
        self.fv.stop_local_plugin(self.chname, str(self))
        return True

    def __str__(self):
        return "ccdcalibrate"

    # -- state ---------------------------------------------------------------
    @property
    def busy(self):
        """True while work runs, the frame shown is still being looked up, or
        a result is still on its way to its channel."""
        return self._working() or self._looking_up or self._showing > 0

    def _show_started(self):
        self._showing += 1

    def _shown(self):
        self._showing -= 1

    def _working(self):
        return self.task is not None and self.task.busy

    @property
    def cal_chname(self):
        """The channel calibrated frames are shown in."""
        return result_channel_name(self.chname,
                                   self.settings.get("channel_suffix", CAL_SUFFIX))

    # -- options -----------------------------------------------------------------
    def set_options(self, dark_scale="exposure", cosmics=False, gain="", readnoise=""):
        """Set the option widgets as the user would (``gain``, ``readnoise`` as text)."""
        names = {value: text for text, value in DARK_SCALES.items()}
        self.w.dark_scale.set_text(names.get(dark_scale, "exposure ratio"))
        self.w.cosmics.set_state(bool(cosmics))
        self.w.gain.set_text(gain)
        self.w.readnoise.set_text(readnoise)

    def get_options(self):
        """The calibration options the widgets hold (see `parse_options`).

        Valid options are saved in the plugin's settings (and its
        settings file) so they persist.

        Raises
        ------
        ValueError
            A field does not hold a number; the message says which.
        """
        options = parse_options(DARK_SCALES[self.w.dark_scale.get_text()],
                                self.w.cosmics.get_state(), self.w.gain.get_text(),
                                self.w.readnoise.get_text())
        if any(self.settings.get(key) != value for key, value in options.items()):
            self.settings.set(**options)
            try:
                self.settings.save()
            except OSError as exc:  # a read-only settings folder costs only persistence
                self.logger.warning(f"CCDCalibrate: options not saved: {exc}")
        return options

    def _options_or_say(self):
        """`get_options`, or None after telling the user what is wrong."""
        try:
            return self.get_options()
        except ValueError as exc:
            self.messages.set_lines([f"Options: {exc}"])
            return None

    # -- following the channel and the other plugins ----------------------------
    def redo(self):
        """A new image in the channel: work out what calibrating it takes.

        The frame's header (when the browser's scan does not hold it) and
        the masters are read in a worker thread; until the answer comes
        back the buttons wait.  Messages of the previous frame go: they
        would describe another frame.  Work already started (Calibrate,
        Show steps) finishes with the frame it started on.
        """
        if not self.gui_up:
            return
        self.frame = self.match = None
        self.w.choice.set_text("")
        self.w.missing.set_text("")
        self.checklist.set_match(None, "")
        if not self._working():
            self.messages.clear()
        image = self.fitsimage.get_image()
        path = image.get("path", None) if image is not None else None
        if path is None:
            self._no_frame("No raw frame from a file in this channel: open a "
                           "light frame (e.g. click one in the CCD Browser).")
            return
        self._enable_frame_buttons(False)
        self.w.frame.set_text(f"{os.path.basename(path)}: reading ...")
        self._look_up(path)

    def _look_up(self, path):
        """Frame and match of ``path`` off the GUI thread (newest request wins)."""
        self._lookup_gen += 1
        gen = self._lookup_gen
        self._looking_up = True
        folder = self.masters_row.get_path()
        session = self.session

        def work():
            frame = masters = problem = None
            try:
                if not os.path.isfile(path):
                    problem = ("No raw frame from a file in this channel: open a "
                               "light frame (e.g. click one in the CCD Browser).")
                else:
                    frame = self._frame_for(path)
                    masters = session.masters_in(folder)
            except CcdcalError as exc:
                problem = f"This file cannot be calibrated: {exc}"
            except Exception as exc:  # a bug: log it fully, tell the user briefly
                self.logger.error(f"CCDCalibrate: {path}: {exc}\n" + traceback.format_exc())
                problem = (f"unexpected error ({exc.__class__.__name__}: {exc}); "
                           "details are in Ginga's log")
            match = match_light(frame, masters) if frame is not None and masters else None
            self.fv.gui_do(self._looked_up, gen, path, frame, masters, match, folder,
                           problem)

        self.fv.nongui_do(work)

    def _looked_up(self, gen, path, frame, masters, match, folder, problem):
        if gen != self._lookup_gen:
            return            # the user has moved on to another image
        self._looking_up = False
        if not self.gui_up:
            return
        if problem:
            self._no_frame(problem)
            return
        if is_product(frame.header):
            self._no_frame(f"{os.path.basename(path)} was written by ginga-ccdcal "
                           "(a master or calibrated frame), not a raw frame.")
            return
        self.frame = frame
        self.masters, self._masters_folder = masters, folder
        self.w.frame.set_text(f"{frame.name}: {frame.frametype}, {frame.exptime} s, "
                              f"filter {frame.filter}")
        self.output_row.set_path(self._output_folder_for(frame))
        self._show_match(frame, masters, match, folder)

    def _no_frame(self, message):
        self.w.frame.set_text(message)
        self._enable_frame_buttons(False)
        self.w.open_masters.set_enabled(False)

    def _enable_frame_buttons(self, state):
        self.w.calibrate.set_enabled(state)
        self.w.show_steps.set_enabled(state)

    def _frame_for(self, path):
        """The scan's `Frame` for ``path`` (types as the user set them)."""
        apath = os.path.abspath(path)
        for frame in self.session.frames():
            if os.path.abspath(frame.path) == apath:
                return frame
        return frame_from_file(path, overrides=self.session.overrides,
                               aliases=self.session.aliases)

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
        if self.gui_up and not self._working():
            self.masters_row.set_path(session.masters_folder)
            self.redo()

    def update_match(self):
        """Match the frame to the masters again (masters folder changed)."""
        if self.frame is not None:
            image = self.fitsimage.get_image()
            path = image.get("path", None) if image is not None else None
            if path is not None:
                self._look_up(path)

    def _show_match(self, frame, masters, match, folder):
        """Show which masters calibrating ``frame`` takes, and why."""
        if not masters:
            self.match = None
            self.w.choice.set_text("")
            self.checklist.set_match(None, f"no masters in {folder}")
            self.w.missing.set_text(f"No masters in {folder}.\nBuild them with "
                                    "CCD Masters, or choose the folder that has them.")
            self._enable_frame_buttons(False)
            self.w.open_masters.set_enabled(True)
            return
        self.match = match
        self.checklist.set_match(match, f"for {frame.name}")
        lines = list(match.describe())
        if frame.frametype != "light":
            lines.insert(0, f"note: this frame is a {frame.frametype}, not a "
                         "light; it will be calibrated as a light.")
        self.w.choice.set_text("\n".join(lines))
        missing = match.missing
        if missing:
            reasons = "\n".join(f"  {role}: {getattr(match, role).reason}"
                                for role in missing)
            self.w.missing.set_text(f"Missing master(s):\n{reasons}\nCalibrating "
                                    "now skips these steps (noted in the header).")
        else:
            self.w.missing.set_text("All masters found.")
        self.w.open_masters.set_enabled(bool(missing))
        self._enable_frame_buttons(True)

    def _prepared(self):
        """``(frame, match, options)`` to work on, or None after saying why not."""
        if self.frame is None or self.match is None:
            self.messages.set_lines([self.w.missing.get_text() or self.w.frame.get_text()
                                     or "Nothing to calibrate."])
            return None
        options = self._options_or_say()
        return None if options is None else (self.frame, self.match, options)

    # -- calibrating one frame -------------------------------------------------
    def calibrate(self):
        """Calibrate the channel's frame off the GUI thread; False if not started.

        Messages, output and state all belong to the frame shown when it
        started, even if the user opens another meanwhile.
        """
        prepared = self._prepared()
        if prepared is None:
            return False
        frame, match, options = prepared
        out_dir = self.output_row.get_path() or self._output_folder_for(frame)
        raw_root = self.session.folder
        overwrite = self.w.overwrite.get_state()
        self.messages.set_lines([f"Calibrating {frame.name} ..."])

        method = self.settings.get("autocut_method", "zscale")
        logger = self.logger

        def work(progress, cancel):
            progress(0, 1, frame.name)
            try:
                path, ccd = calibrate_and_write(frame, match, out_dir,
                                                CalibrationOptions(**options),
                                                raw_root=raw_root, overwrite=overwrite)
            except OutputExists as exc:
                return exc.path, None, None
            progress(1, 1, frame.name)
            # the image to show is made here too, not on the GUI thread
            return path, ccd, calibrated_image(ccd, path, method, logger)

        return self.task.run(work, label="Calibrating",
                             on_done=lambda result: self._calibrated(frame, match, result),
                             on_error=lambda message, cancelled: self._failed(
                                 frame, match, message, cancelled))

    def _calibrated(self, frame, match, result):
        path, ccd, image = result
        self.result_path = path
        self.result = ccd
        chname = self.cal_chname
        method = self.settings.get("autocut_method", "zscale")
        if ccd is None:
            clear_banner(self.fv, chname)
            self.messages.set_lines([f"{path} already exists: showing it. Tick "
                                     "'Replace existing' to calibrate again."])
            self._show_started()
            load_and_show(self.fv, [path], chname, method, on_done=self._shown)
            return
        self._show_started()
        show_calibrated(self.fv, image, chname, method, then=self._shown)
        banner = match_banner(match)
        if banner:
            show_banner(self.fv, chname, f"{frame.name}: {banner}")
        else:
            clear_banner(self.fv, chname)
        self.session.set_frame_state(frame.path, *match_state(match))
        ratio = match.dark.scale if match.dark else None
        self.messages.set_lines([f"Calibrated {frame.name} -> {path}"]
                                + ([banner] if banner else [])
                                + result_lines(ccd.header, ratio)
                                + [f"warning: {w}" for w in match.warnings])

    def _failed(self, frame, match, message, cancelled):
        if cancelled:
            self.messages.set_lines(["Cancelled."])
            return
        self.messages.set_lines([f"{frame.name}: not calibrated: {message}"])
        self.session.set_frame_state(frame.path, *failure_state(match, message))
        report_problem(self.fv, f"CCD Calibrate: {frame.name}: not calibrated: {message}")

    # -- calibrating the whole scan --------------------------------------------
    def calibrate_all(self):
        """Calibrate every light of the browser's scan; False if not started."""
        lights = self.session.frames("light")
        if not lights:
            self.messages.set_lines(["No light frames: scan a folder in the CCD "
                                     "Browser first."])
            return False
        folder = self.masters_row.get_path()
        if folder == self._masters_folder and not self.masters:
            # known from looking at the frame shown; else the worker checks
            self.messages.set_lines([f"No masters in {folder}: build them with "
                                     "CCD Masters first."])
            self.w.open_masters.set_enabled(True)
            return False
        options = self._options_or_say()
        if options is None:
            return False
        out_dir = self.session.output_folder
        raw_root = self.session.folder
        overwrite = self.w.overwrite.get_state()
        session = self.session
        self.messages.set_lines([f"Calibrating {len(lights)} light frames into "
                                 f"{out_dir} ..."])

        def work(progress, cancel):
            masters = session.masters_in(folder)
            if not masters:
                raise CcdcalError(f"no masters in {folder}: build them with CCD "
                                  "Masters first")
            report = calibrate_lights(lights, masters, out_dir,
                                      CalibrationOptions(**options), raw_root=raw_root,
                                      overwrite=overwrite, progress=progress,
                                      cancel=cancel)
            return report, _light_states(lights, masters, report, out_dir, raw_root)

        return self.task.run(work, label="Calibrating all", on_done=self._all_done,
                             on_error=self._all_failed)

    def _all_failed(self, message, cancelled):
        self.messages.set_lines(["Cancelled." if cancelled else f"Not calibrated: {message}"])
        if "no masters" in message:
            self.w.open_masters.set_enabled(True)

    def _all_done(self, result):
        report, states = result
        self.all_report = report
        for path, state in states.items():
            self.session.set_frame_state(path, *state)
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
            for problem in report.problems:
                report_problem(self.fv, f"CCD Calibrate: not calibrated: {problem}")
        self.messages.set_lines(lines)

    # -- the teaching view -------------------------------------------------------
    def show_steps(self):
        """Compute the frame after each step off the GUI thread; False if not started.

        Uses the dark-scale option (it changes the dark step) and the gain,
        when given as a number, for the dark current in electrons; cosmic
        rays and the conversion to electrons come after the last step.
        """
        prepared = self._prepared()
        if prepared is None:
            return False
        frame, match, options = prepared
        gain = options["gain"] if isinstance(options["gain"], float) else None
        self.messages.set_lines([f"Working out the steps of {frame.name} ..."])
        self._start_step_panels()
        self.stop_blink()

        def work(progress, cancel):
            progress(0, 1, frame.name)
            # from the file as the camera wrote it, bias level included
            steps = [as_read_step(frame)] + calibration_steps(
                frame, match, CalibrationOptions(dark_scale=options["dark_scale"]),
                gain=gain)
            # cuts and profiles here too: medians of full frames take a while
            return [_StepView(step, step_cuts(step), cuts, row_profile(step))
                    for step, cuts in zip(steps, common_cuts(steps))]

        return self.task.run(work, label="Steps",
                             on_done=lambda result: self._show_steps(frame, match, result),
                             on_error=self._steps_failed)

    def _show_steps(self, frame, match, views):
        self.step_views = views
        self.steps = [view.step for view in views]
        self.steps_frame = frame
        same = self.w.same_cuts.get_state()
        self._ensure_step_panels()
        for i, panel in enumerate(self.step_panels):
            if i < len(views):
                panel.show(views[i], same)
            else:
                panel.hide()
        self.w.blink.set_enabled(True)
        title = f"{frame.name} step by step, from the file as read"
        if any(c.master.overscan for c in (match.bias, match.dark, match.flat) if c):
            title += "; raw = after overscan subtraction and trim"
        if match.missing:
            title += "; no master for: " + ", ".join(match.missing)
        self.w.steps_title.set_text(title + ".\nDrag or zoom one panel to move all; "
                                    "below each, its row profile.")
        self.w.pages.set_index(1)
        self.messages.set_lines([f"Steps of {frame.name}: see the Steps page."]
                                + [s.note for s in self.steps])

    def step_to_channel(self, step):
        """Show ``step`` in the Steps channel (named after the frame and step)."""
        if step is None or self.steps_frame is None:
            return None
        name = f"{os.path.splitext(self.steps_frame.name)[0]} {step.title}"
        prepare_result_channel(self.fv, STEPS_CHANNEL)
        logger = self.logger
        self._show_started()

        def work():
            # a full-size frame: its min/max and cut levels take a while
            try:
                image = AstroImage(logger=logger)
                image.load_data(step.data)
                image.set(name=name)
                with_cut_levels(image, logger=logger)
            except Exception:
                self.fv.gui_do(self._shown)
                raise
            self.fv.gui_do(show_image, self.fv, image, STEPS_CHANNEL, then=self._shown)

        self.fv.nongui_do(work)
        return name

    def _apply_cuts(self):
        same = self.w.same_cuts.get_state()
        for panel in self.step_panels:
            panel.use_same_cuts(same)

    @property
    def blinking(self):
        """True while the last panel alternates the raw and the calibrated frame."""
        return self.blink_timer is not None and self.blink_timer.is_set()

    def toggle_blink(self):
        """Start blinking raw and calibrated in the last panel, or stop."""
        if self.blinking:
            self.stop_blink()
        elif self.step_views:
            self._blink_before = False
            self._blink_cb(self.blink_timer)
            self.w.blink.set_text("Stop blinking")

    def stop_blink(self):
        """Stop blinking; the last panel shows its step again."""
        if not self.blinking:
            return
        self.blink_timer.stop()
        self.w.blink.set_text("Blink raw / calibrated")
        self._show_blinked(self.step_views[-1])

    def _blink_cb(self, timer):
        self._blink_before = not self._blink_before
        before, calibrated = blink_pair(self.steps)
        shown = before if self._blink_before else calibrated
        self._show_blinked(next(v for v in self.step_views if v.step is shown))
        timer.set(BLINK_INTERVAL)

    def _show_blinked(self, view):
        panel = self.step_panels[len(self.step_views) - 1]
        panel.show(view, self.w.same_cuts.get_state(), keep_view=True)

    def _steps_failed(self, message, cancelled):
        self.messages.set_lines(["Cancelled." if cancelled
                                 else f"Steps not shown: {message}"])



def _light_states(lights, masters, report, out_dir, raw_root):
    """``{raw path: (state, why)}`` of the lights a `calibrate_lights` run wrote or failed."""
    written = set(report.written)
    states = {}
    for light in lights:
        if output_path(light, out_dir, raw_root) in written:
            states[light.path] = match_state(match_light(light, masters))
        else:
            failed = [p for p in report.problems if light.path in p or light.name in p]
            if failed:
                states[light.path] = ("failed", failed[0])
    return states
