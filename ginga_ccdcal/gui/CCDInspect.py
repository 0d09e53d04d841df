"""
``CCDInspect`` measures the CCD itself from a night's calibration frames:
read noise, gain, dark current, hot and bad pixels, bias structure and
vignetting.

**Plugin Type: Global**

``CCDInspect`` is a global plugin: one instance, in the right-hand panel.
Open it from the "Plugins" menu under "CCD Calibration".

**Usage**

* "Raw folder" is the folder whose bias, dark and flat frames are used.
  It starts as the folder scanned in the CCD Browser: then the browser's
  scan is used as it stands, with any frame types you corrected there,
  and the masters of CCD Masters where they fit (saving the combining).
  Another folder (type it and press Enter, or "Browse...") is scanned
  first.
* "Characterise" measures, in the background with a progress bar and
  "Cancel":

  - read noise, from pairs of bias frames;
  - gain (e-/ADU), from pairs of flats (photon-transfer curve when the
    flats have several levels, the two-flat/two-bias formula otherwise),
    or the header's when there are no flats;
  - dark current, from the darks (the slope over several exposures);
  - hot pixels (dark rate far above its surroundings), bias row and column
    structure, vignetting of each filter's flat, bad pixels (ccdmask).

  The report appears as text; the plots below it are Ginga plot viewers
  on their own tabs (photon-transfer curve, bias row and column
  profiles, dark-current histogram with the hot-pixel threshold,
  flat-field radial profile): scroll in a plot to zoom along X,
  Ctrl+scroll along Y, pan with the scroll bar, press ``x`` or ``y`` to
  fit that axis to the data again, as in Ginga's Crosshair cuts plot.
  What could not be measured says why (no flats, a single dark
  exposure...).
* "Write report" writes the report into "Report folder" (by default
  ``ccd_report`` in the products folder): an HTML page with the plots,
  the same text, the plots as PNG files and the bad-pixel mask
  ``bad_pixels.fits`` (1 = bad) with the measured numbers in its header.
  The command line ``ginga-ccdcal characterise RAW --out DIR`` writes the
  same files.
* "Show bad pixels" shows the bad-pixel mask (hot pixels included) in the
  channel ``BadPixels``: bad pixels are white.  Blink it against a flat
  or a calibrated frame to see what they are.
* "Mark on image" draws on the image of the current channel (a raw frame
  of this camera, a calibrated frame or the mask): hot pixels (red
  circles), the other bad pixels (yellow squares), the imaging area
  (green) and overscan (cyan) the frames were measured in, and the
  centre of each filter's flat (the peak of its vignetting fit; the radial
  profile is measured around it).  The marks follow the image shown and
  go when the box is unchecked or the panel is closed.  An image of
  another size is not marked, and the messages say so.

The measurement is described in detail in the documentation
(Characterising the CCD).

**User Configuration**

Settings live in ``plugin_CCDInspect.cfg`` in Ginga's settings folder:

* ``channel`` (``"BadPixels"``): channel the bad-pixel mask opens in.
* ``report_subfolder`` (``"ccd_report"``): default report folder, inside
  the products folder of the raw folder.
* ``plot_size`` (``(460, 300)``): size in pixels of each plot viewer.
* ``max_marks`` (``5000``): most hot or bad pixels marked on the image
  (the messages say when there are more).
"""

import os

import numpy as np
from astropy.io import fits
from ginga import GingaPlugin
from ginga.AstroImage import AstroImage
from ginga.canvas.types import plots as gplots
from ginga.gw import Viewers, Widgets
from ginga.plot.plotaide import PlotAide

from ..characterise import (REPORT_FILES, characterise, characterise_folder,
                            dark_rate_histogram, ptc_model, write_report)
from ..masters import load_masters
from .common import (FolderRow, MessageArea, OwnHelp, RunsTasks, TaskPanel,
                     action_button, button_row, default_output_folder, finish_panel,
                     get_session, panel_box, wrapping_label)

__all__ = ["CCDInspect", "PLOTS", "MarkerPlot", "plot_specs"]

#: The report's plots, in the order of their tabs: kind -> tab title.
PLOTS = {"ptc": "Photon transfer", "bias": "Bias", "hot": "Hot pixels",
         "flat": "Flat"}

#: Tag of the marks layer on a channel's canvas.
MARKS_TAG = "_ccdinspect_marks"

#: Line colours of a plot's series, in turn.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


class MarkerPlot(gplots.XYPlot):
    """An `~ginga.canvas.types.plots.XYPlot` drawn as circles, not joined.

    The measured points of a plot (photon-transfer pairs), set apart from
    the lines that are fitted or profiles.
    """

    radius = 4

    def draw(self, viewer):
        self.path.crdmap = self.crdmap
        self.recalc(viewer)      # keeps only the points in the visible X range
        if len(self.path.points) == 0:
            return
        cr = viewer.renderer.setup_cr(self.path)
        cr.initialize_from_shape(self.path, line=True, fill=False)
        for cx, cy in self.get_cpoints(viewer, points=self.path.points):
            cr.draw_circle(cx, cy, self.radius, line=cr.line, fill=cr.fill)


class SizedPlotAide(PlotAide):
    """A `~ginga.plot.plotaide.PlotAide` that lays out only a viewer with a size.

    A plot on a hidden tab, or in a panel being closed, is resized to
    nothing: fitting the plot then would give the viewer a NaN scale and
    errors at its next redraw.  It is fitted when it is shown.
    """

    def adjust_resize_cb(self):
        if min(self.viewer.get_window_size()[:2]) > 0:
            super().adjust_resize_cb()


def _series(name, x, y, colour, kind="line"):
    """One plotted series: (name, (N, 2) points, colour, 'line'|'dash'|'markers')."""
    return name, np.column_stack([np.asarray(x, float), np.asarray(y, float)]), colour, kind


def _ptc_spec(report):
    flats = [p for p in report.ptc if p.filter is not None]
    series = []
    for i, filt in enumerate(sorted({p.filter for p in flats}, key=str)):
        pts = sorted((p for p in flats if p.filter == filt), key=lambda p: p.signal)
        series.append(_series(f"flats {filt}", [p.signal for p in pts],
                              [p.variance for p in pts], COLOURS[i % len(COLOURS)],
                              "markers"))
    bias = [p for p in report.ptc if p.filter is None]
    if bias:
        series.append(_series("bias pair", [p.signal for p in bias],
                              [p.variance for p in bias], "gray", "markers"))
    if report.gain and flats:
        signal = np.linspace(0, max(p.signal for p in flats) * 1.05, 100)
        series.append(_series(f"gain {report.gain:.3f}", signal,
                              ptc_model(report, signal), "red", "dash"))
    return [("Photon transfer", "signal above bias (ADU)", "variance (ADU^2)", series)]


def _bias_specs(report):
    return [(f"Bias: row means (p-p {report.bias_row_ptp:.2f} ADU)", "row", "ADU",
             [_series("rows", np.arange(report.bias_row_profile.size),
                      report.bias_row_profile, COLOURS[0])]),
            (f"Bias: column means (p-p {report.bias_col_ptp:.2f} ADU)", "column", "ADU",
             [_series("columns", np.arange(report.bias_col_profile.size),
                      report.bias_col_profile, COLOURS[1])])]


def _hot_spec(report):
    counts, edges, unit, _, threshold = dark_rate_histogram(report)
    # A log axis as the report's PNG has; empty bins at its floor 0.5 px.
    level = np.log10(np.maximum(counts, 0.5))
    stairs_x = np.repeat(edges, 2)[1:-1]
    stairs_y = np.repeat(level, 2)
    line = [level.min(), level.max()]
    return [(f"Dark current: {report.n_hot} hot pixels", f"dark current ({unit})",
             "log10(pixels)",
             [_series("pixels", stairs_x, stairs_y, COLOURS[0]),
              _series(f"hot above {threshold:.3g}", [threshold, threshold], line,
                      "red", "dash")])]


def _flat_spec(report):
    series = [_series(f"{filt}: {100 * report.vignetting[filt]:.1f} %", radius, level,
                      COLOURS[i % len(COLOURS)])
              for i, (filt, (radius, level)) in enumerate(
                  sorted(report.flat_profiles.items(), key=lambda kv: str(kv[0])))]
    return [("Flat level / centre", "distance from the flat's peak (px)",
             "level / centre", series)]


def plot_specs(report):
    """What each plot tab shows, from the report's numbers alone.

    Returns
    -------
    dict
        Kind (keys of `PLOTS`, only what was measured) -> list of plots
        ``(title, x_title, y_title, series)``, each series
        ``(name, points, colour, style)`` with ``points`` an (N, 2) array
        and ``style`` one of ``'line'``, ``'dash'``, ``'markers'``.
    """
    specs = {}
    if any(p.filter is not None for p in report.ptc):   # flat pairs, as the PNG
        specs["ptc"] = _ptc_spec(report)
    if report.bias_row_profile is not None:
        specs["bias"] = _bias_specs(report)
    if report.dark_rate_map is not None and report.hot_threshold_adu is not None:
        specs["hot"] = _hot_spec(report)
    if report.flat_profiles:
        specs["flat"] = _flat_spec(report)
    return specs


def make_plot(logger, spec, size):
    """A Ginga plot viewer (`~ginga.plot.plotaide.PlotAide`) showing ``spec``.

    Returns
    -------
    aide : PlotAide
        Its ``plots`` hold the series by name.
    widget : ginga.gw.Viewers.GingaScrolledViewerWidget
    """
    title, x_title, y_title, series = spec
    viewer = Viewers.CanvasView(logger=logger)
    viewer.set_desired_size(*size)
    viewer.set_background("white")
    viewer.set_foreground("black")
    aide = SizedPlotAide(viewer)
    aide.setup_standard_frame(title=title, x_title=x_title, y_title=y_title)
    # No warning/alert levels: their lines would be drawn at y = NaN.
    background = aide.get_plot_decor("plot_bg")
    for line in (background.ln_warn, background.ln_alert):
        background.objects.remove(line)
    for name, points, colour, style in series:
        cls = MarkerPlot if style == "markers" else gplots.XYPlot
        plot = cls(name=name, color=colour, linewidth=2,
                   linestyle="dash" if style == "dash" else "solid")
        plot.plot(points)
        aide.add_plot(plot)
    widget = Viewers.GingaScrolledViewerWidget(viewer=viewer)
    aide.configure_scrollbars(widget)
    # No update_plots() here: the plot is fitted when the viewer is sized.
    return aide, widget


class CCDInspect(OwnHelp, RunsTasks, GingaPlugin.GlobalPlugin):
    """CCD characterisation of a night's calibration frames (see module help)."""

    def __init__(self, fv):
        super().__init__(fv)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDInspect")
        self.settings.add_defaults(channel="BadPixels", report_subfolder="ccd_report",
                                   plot_size=(460, 300), max_marks=5000)
        self.settings.load(onError="silent")
        self.session = get_session(fv)
        self.session.add_callback("scan-changed", self._scan_changed_cb)
        fv.add_callback("channel-change", self._channel_changed_cb)
        self.report = None
        self.plots = {}          # kind -> list of PlotAide, as on the tabs
        self.written = {}
        self.task = None
        self.marked_channel = None
        self._default_report_folder = None
        self.gui_up = False

    # -- GUI -----------------------------------------------------------------
    def build_gui(self, container):
        top = panel_box()

        self.folder_row = FolderRow("Raw folder:", tooltip="Folder whose bias, dark "
                                    "and flat frames are measured")
        self.folder_row.add_callback("activated", lambda row, path: self._update_source())
        top.add_widget(self.folder_row.get_widget(), stretch=0)
        self.w.source = wrapping_label()
        top.add_widget(self.w.source, stretch=0)

        self.report_row = FolderRow("Report folder:",
                                    tooltip="Where \"Write report\" puts the report")
        top.add_widget(self.report_row.get_widget(), stretch=0)

        self.w.characterise = action_button(
            "Characterise", "Measure read noise, gain, dark current, hot and bad "
            "pixels, bias structure, vignetting", self.characterise)
        self.w.write = action_button("Write report", "Write the HTML/text report, "
                                     "plots and bad-pixel mask into the report folder",
                                     self.write)
        self.w.bad_pixels = action_button("Show bad pixels", "Show the bad-pixel mask "
                                          "(1 = bad) in a channel", self.show_bad_pixels)
        self.w.marks = Widgets.CheckBox("Mark on image")
        self.w.marks.set_tooltip("Mark hot and bad pixels, the imaging area, overscan "
                                 "and flat centres on the image of the current channel")
        self.w.marks.add_callback("activated", lambda w, on: self.update_marks())
        top.add_widget(button_row(self.w.characterise, self.w.write,
                                  self.w.bad_pixels, self.w.marks), stretch=0)

        self.task = TaskPanel(self.fv, "CCDInspect")
        top.add_widget(self.task.get_widget(), stretch=0)

        split = Widgets.Splitter(orientation="vertical")
        self.w.report = Widgets.TextArea(wrap=False, editable=False)
        self.w.report.set_font(self.fv.get_font("fixed", 9))
        self.w.report.set_min_size(0, 80)
        split.add_widget(self.w.report)
        self.w.plots = Widgets.TabWidget()
        self.w.plots.set_min_size(0, 120)
        split.add_widget(self.w.plots)
        split.set_sizes([150, 350])
        top.add_widget(split, stretch=1)

        self.messages = MessageArea("Messages", max_height=60)
        top.add_widget(self.messages.get_widget(), stretch=0)
        self.w.close_help = finish_panel(self, container, top)
        self.gui_up = True

    def start(self):
        # Reopened, the panel shows its last report: the folder goes with it.
        self.folder_row.set_path(self.report.folder if self.report is not None
                                 else self.session.folder)
        self._update_source()
        self._enable_result_buttons()
        if self.report is not None:
            self._show_report()
        else:
            self.messages.set_lines(["Choose a folder of raw frames (or scan one in "
                                     "the CCD Browser) and press \"Characterise\"."])

    def stop(self):
        if self.task is not None and self.task.busy:
            self.task.cancel()
        self.remove_marks()
        self.gui_up = False

    def redo(self, channel, image):
        """An image changed in a channel: the marks follow the image shown."""
        if self.gui_up and channel is self.fv.get_channel_info():
            self.update_marks()

    def _channel_changed_cb(self, fv, channel):
        if self.gui_up and self.report is not None and self.w.marks.get_state():
            self.update_marks()

    def close(self):
        self.fv.stop_global_plugin(str(self))
        return True

    def __str__(self):
        return "ccdinspect"

    # -- state ---------------------------------------------------------------
    def _uses_session_scan(self, folder):
        """True if ``folder`` is the one the CCD Browser scanned."""
        session = self.session
        return (session.scan is not None and bool(session.folder) and folder is not None
                and os.path.abspath(folder) == os.path.abspath(session.folder))

    def _scan_changed_cb(self, session, scan):
        if self.gui_up and not self.busy:
            self.folder_row.set_path(session.folder)
            self._update_source()

    def _update_source(self):
        """Say where the frames come from; propose a report folder."""
        folder = self.folder_row.get_path()
        if folder is None:
            self.w.source.set_text("Choose a folder of raw frames, or scan one in the "
                                   "CCD Browser.")
        elif self._uses_session_scan(folder):
            counts = ", ".join(f"{len(self.session.frames(kind))} {kind}"
                               for kind in ("bias", "dark", "flat"))
            self.w.source.set_text(f"The CCD Browser's scan: {counts} frames "
                                   "(types as the browser shows them).")
        else:
            self.w.source.set_text("Not the CCD Browser's folder: it is scanned first.")
        self.w.characterise.set_enabled(folder is not None)
        # Follow the folder unless the user chose a report folder of their own.
        current = self.report_row.get_path()
        if current is None or current == self._default_report_folder:
            self._default_report_folder = self._report_folder_for(folder)
            self.report_row.set_path(self._default_report_folder)

    def _report_folder_for(self, folder):
        if folder is None:
            return None
        if self._uses_session_scan(folder):
            products = self.session.output_folder
        else:
            products = default_output_folder(folder)
        return os.path.join(products, self.settings.get("report_subfolder", "ccd_report"))

    def _enable_result_buttons(self):
        report = self.report
        self.w.write.set_enabled(report is not None)
        self.w.bad_pixels.set_enabled(report is not None
                                      and report.bad_pixel_mask is not None)
        self.w.marks.set_enabled(report is not None)

    # -- characterising ------------------------------------------------------
    def characterise(self):
        """Characterise the folder's CCD off the GUI thread; False if not started."""
        folder = self.folder_row.get_path()
        if folder is None:
            self.messages.set_lines(["No folder: choose one, or scan one in the CCD "
                                     "Browser."])
            return False
        if self._uses_session_scan(folder):
            scan, masters_folder = self.session.scan, self.session.masters_folder
        else:
            scan = masters_folder = None
        self.messages.set_lines([f"Characterising the CCD from {folder} ..."])

        def work(progress, cancel):
            if scan is not None:
                report = characterise(scan, load_masters(masters_folder),
                                      progress=progress, cancel=cancel)
            else:
                report = characterise_folder(folder, progress=progress, cancel=cancel)
            return report

        def failed(message, cancelled):
            self.messages.set_lines(["Cancelled." if cancelled
                                     else f"Not characterised: {message}"])

        def done(report):
            self.report, self.written = report, {}
            self._show_report()
            self.update_marks(keep=True)

        return self.task.run(work, label="Characterising", on_done=done,
                             on_error=failed)

    def _show_report(self):
        report = self.report
        self.w.report.set_text("\n".join(report.lines()))
        self.w.report.set_scroll_pos(0)
        self._show_plots(plot_specs(report))
        self._enable_result_buttons()
        missing = [title for kind, title in PLOTS.items() if kind not in self.plots]
        lines = [f"Characterised {report.n_bias} bias, {report.n_dark} dark, "
                 f"{report.n_flat} flat frames of {report.folder}."]
        if missing:
            lines.append("No plot for: " + ", ".join(missing) + " (not measured; see "
                         "the notes in the report).")
        self.messages.set_lines(lines)

    def _show_plots(self, specs):
        """One tab per measured plot; plots of a tab (bias: rows, columns) stacked."""
        for child in list(self.w.plots.get_children()):
            self.w.plots.remove(child, delete=True)
        self.plots = {}
        size = tuple(self.settings.get("plot_size", (460, 300)))
        for kind, title in PLOTS.items():
            if kind not in specs:
                continue
            box = Widgets.VBox()
            self.plots[kind] = []
            for spec in specs[kind]:
                aide, widget = make_plot(self.logger, spec, size)
                self.plots[kind].append(aide)
                box.add_widget(widget, stretch=1)
            self.w.plots.add_widget(box, title=title)

    # -- marks on the image --------------------------------------------------
    def remove_marks(self):
        """Take the marks off the channel that has them."""
        chname, self.marked_channel = self.marked_channel, None
        if chname is not None and self.fv.has_channel(chname):
            canvas = self.fv.get_channel(chname).viewer.get_canvas()
            if canvas.has_tag(MARKS_TAG):
                canvas.delete_object_by_tag(MARKS_TAG, redraw=True)

    def update_marks(self, keep=False):
        """Mark the report on the current channel's image if "Mark on image" is on.

        Parameters
        ----------
        keep : bool
            Add what was marked to the messages instead of replacing them.

        Returns
        -------
        bool
            True if the image was marked.
        """
        self.remove_marks()
        if not self.w.marks.get_state() or self.report is None:
            return False
        channel = self.fv.get_channel_info()
        image = channel.viewer.get_image() if channel is not None else None
        say = self._add_lines if keep else self.messages.set_lines
        if image is None:
            say(["No image to mark: open a frame of this camera."])
            return False
        placed = self._place_in(image.get_data().shape)
        if placed is None:
            height, width = image.get_data().shape[:2]
            rows, cols = self.report.shape
            say([f"Not marked: {image.get('name')} in {channel.name} "
                                     f"is {width} x {height} px, the frames measured are "
                                     f"{cols} x {rows} px (imaging area)."])
            return False
        canvas = channel.viewer.get_canvas()
        marks, lines = self._marks(canvas, *placed)
        canvas.add(marks, tag=MARKS_TAG, redraw=True)
        self.marked_channel = channel.name
        say([f"Marked on {image.get('name')} in {channel.name}:"] + lines)
        return True

    def _add_lines(self, lines):
        for line in lines:
            self.messages.add_line(line)

    def _place_in(self, shape):
        """Where the imaging area lies in an image of ``shape``.

        Returns
        -------
        tuple or None
            ``((row, column) of the imaging area's first pixel, raw)``:
            ``((0, 0), False)`` for an image of the imaging area (mask,
            calibrated frame), the trim section's start and True for a raw
            frame with its overscan; None for any other size.
        """
        report = self.report
        if tuple(shape[:2]) == tuple(report.shape):
            return (0, 0), False
        regions = report.regions
        if regions is not None and all(shape[i] >= regions.trim[i].stop and
                                       shape[i] >= regions.overscan[i].stop
                                       for i in (0, 1)):
            return (regions.trim[0].start, regions.trim[1].start), True
        return None

    def _marks(self, canvas, offset, raw):
        """The marks layer for an image whose imaging area starts at ``offset``.

        The imaging area and overscan are boxed on ``raw`` frames only.
        """
        report = self.report
        dc = canvas.get_draw_classes()
        row0, col0 = offset
        objects, lines = [], []

        def box(region, colour, label):
            # Ginga's pixel centres are at integers: edges at -0.5.
            (rows, cols) = region
            objects.append(dc.Rectangle(cols.start - 0.5, rows.start - 0.5,
                                        cols.stop - 0.5, rows.stop - 0.5,
                                        color=colour, linewidth=2, linestyle="dash"))
            objects.append(dc.Text(cols.start, rows.stop + 2, text=label,
                                   color=colour, fontsize=11))

        def pixels(mask, colour, style, what):
            where = np.argwhere(mask)
            limit = int(self.settings.get("max_marks", 5000))
            for row, col in where[:limit]:
                objects.append(dc.Point(col + col0, row + row0, 3, color=colour,
                                        style=style, linewidth=1))
            shown = f"{len(where)}" if len(where) <= limit else \
                f"the first {limit} of {len(where)}"
            lines.append(f"  {shown} {what} ({colour} {style}s)")

        regions = report.regions
        if raw:
            box(regions.trim, "green", "imaging area")
            box(regions.overscan, "cyan", "overscan")
            lines.append(f"  imaging area (green) and overscan (cyan): "
                         f"{regions.describe()}")
        if report.hot_map is not None:
            pixels(report.hot_map, "red", "circle", "hot pixels")
        if report.bad_pixel_mask is not None:
            other = report.bad_pixel_mask & ~report.hot_map if report.hot_map is not None \
                else report.bad_pixel_mask
            pixels(other, "yellow", "square", "other bad pixels")
        for filt, (row, col) in sorted(report.vignetting_peaks.items(),
                                       key=lambda kv: str(kv[0])):
            objects.append(dc.Point(col + col0, row + row0, 8, color="magenta",
                                    style="plus", linewidth=2))
            objects.append(dc.Text(col + col0 + 10, row + row0 + 10,
                                   text=f"flat {filt} peak", color="magenta",
                                   fontsize=11))
        if report.vignetting_peaks:
            lines.append("  the flats' peaks (magenta +): centre of the radial profile")
        return dc.CompoundObject(*objects), lines

    # -- products ------------------------------------------------------------
    def write(self):
        """Write the report into the report folder off the GUI thread; False if not started."""
        if self.report is None:
            self.messages.set_lines(["Nothing to write yet: press \"Characterise\"."])
            return False
        folder = self.report_row.get_path()
        if folder is None:
            self.messages.set_lines(["Choose the report folder first."])
            return False
        report = self.report

        def work(progress, cancel):
            progress(0, 1, folder)
            return write_report(report, folder)

        def done(written):
            self.written = written
            self.messages.set_lines(
                [f"Report written to {folder}:"]
                + [f"  {os.path.basename(written[kind])}" for kind in REPORT_FILES
                   if kind in written])

        def failed(message, cancelled):
            self.messages.set_lines(["Cancelled." if cancelled
                                     else f"Report not written: {message}"])

        return self.task.run(work, label="Writing the report", on_done=done,
                             on_error=failed)

    def show_bad_pixels(self):
        """Show the bad-pixel mask in the bad-pixel channel; False if there is none."""
        report = self.report
        if report is None or report.bad_pixel_mask is None:
            self.messages.set_lines(["No bad-pixel mask: it needs bias and flat frames "
                                     "(press \"Characterise\" first)."])
            return False
        chname = self.settings.get("channel", "BadPixels")
        channel = self.fv.get_channel_on_demand(chname)
        # A 0/1 mask: min/max cut levels show bad pixels white on black.
        channel.viewer.set_autocut_params("minmax")
        channel.viewer.enable_autocuts("override")
        header = report.to_header(fits.Header())
        header["MASKTYPE"] = ("bad pixels", "1 = bad (ccdmask + hot pixels)")
        image = AstroImage(logger=self.logger)
        image.load_hdu(fits.PrimaryHDU(data=report.bad_pixel_mask.astype("uint8"),
                                       header=header))
        image.set(name="bad_pixels")
        if "mask" in self.written:
            image.set(path=self.written["mask"])
        self.fv.add_image("bad_pixels", image, chname=chname)
        self.fv.change_channel(chname)
        self.messages.set_lines([f"{report.n_bad} bad pixels (white) in channel "
                                 f"{chname}: {report.bad_pixel_source}, plus the hot "
                                 "pixels."])
        return True
