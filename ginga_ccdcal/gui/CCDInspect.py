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

  The report appears as text; the plots below it (photon-transfer curve,
  bias row and column profiles, dark-current histogram with the hot-pixel
  threshold, flat-field radial profile) are on their own tabs.  What
  could not be measured says why (no flats, a single dark exposure...).
* "Write report" writes the report into "Report folder" (by default
  ``ccd_report`` in the products folder): an HTML page with the plots,
  the same text, the plots as PNG files and the bad-pixel mask
  ``bad_pixels.fits`` (1 = bad) with the measured numbers in its header.
  The command line ``ginga-ccdcal characterise RAW --out DIR`` writes the
  same files.
* "Show bad pixels" shows the bad-pixel mask (hot pixels included) in the
  channel ``BadPixels``: bad pixels are white.  Blink it against a flat
  or a calibrated frame to see what they are.

The measurement is described in detail in the documentation
(Characterising the CCD).

**User Configuration**

Settings live in ``plugin_CCDInspect.cfg`` in Ginga's settings folder:

* ``channel`` (``"BadPixels"``): channel the bad-pixel mask opens in.
* ``report_subfolder`` (``"ccd_report"``): default report folder, inside
  the products folder of the raw folder.
* ``plot_width`` (``460``): width in pixels of the plots in the panel.
"""

import os
import tempfile

from astropy.io import fits
from ginga import GingaPlugin
from ginga.AstroImage import AstroImage
from ginga.gw import Widgets

from ..characterise import REPORT_FILES, characterise, characterise_folder, write_report
from ..masters import load_masters
from .common import (FolderRow, MessageArea, OwnHelp, RunsTasks, TaskPanel,
                     action_button, button_row, default_output_folder, finish_panel,
                     get_session, panel_box, wrapping_label)

__all__ = ["CCDInspect", "PLOTS", "render_plots"]

#: The report's plots, in the order of their tabs: kind -> tab title.
PLOTS = {"ptc": "Photon transfer", "bias": "Bias", "hot": "Hot pixels",
         "flat": "Flat"}


def render_plots(report, folder, width):
    """Draw the report's plots into ``folder``, scaled to ``width`` pixels.

    The plots are the ones `~ginga_ccdcal.characterise.write_report`
    writes (it writes them here, with the rest of the report), resampled
    smoothly so their text stays readable in a narrow panel.

    Parameters
    ----------
    report : `~ginga_ccdcal.characterise.CCDReport`
    folder : str
    width : int

    Returns
    -------
    dict
        Kind (keys of `PLOTS`, only the plots that could be drawn) ->
        path of the scaled PNG.
    """
    from PIL import Image  # matplotlib, which draws the plots, needs Pillow

    written = write_report(report, folder)
    scaled = {}
    for kind in PLOTS:
        if kind not in written:
            continue
        path = os.path.join(folder, f"panel_{kind}.png")
        with Image.open(written[kind]) as image:
            height = max(1, round(image.height * width / image.width))
            image.convert("RGB").resize((width, height), Image.LANCZOS).save(path)
        scaled[kind] = path
    return scaled


class CCDInspect(OwnHelp, RunsTasks, GingaPlugin.GlobalPlugin):
    """CCD characterisation of a night's calibration frames (see module help)."""

    def __init__(self, fv):
        super().__init__(fv)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDInspect")
        self.settings.add_defaults(channel="BadPixels", report_subfolder="ccd_report",
                                   plot_width=460)
        self.settings.load(onError="silent")
        self.session = get_session(fv)
        self.session.add_callback("scan-changed", self._scan_changed_cb)
        self.report = None
        self.plots = {}
        self.written = {}
        self.task = None
        self._plot_dir = None
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
        top.add_widget(button_row(self.w.characterise, self.w.write,
                                  self.w.bad_pixels), stretch=0)

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
        self.gui_up = False

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
        # The panel's plots live as long as they are shown (a reopened
        # panel shows them again); the folder goes with the next run, or
        # when Python exits.
        plot_dir = tempfile.TemporaryDirectory(prefix="ccdcal-inspect-")
        width = int(self.settings.get("plot_width", 460))
        self.messages.set_lines([f"Characterising the CCD from {folder} ..."])

        def work(progress, cancel):
            if scan is not None:
                report = characterise(scan, load_masters(masters_folder),
                                      progress=progress, cancel=cancel)
            else:
                report = characterise_folder(folder, progress=progress, cancel=cancel)
            progress(1, 1, "drawing the plots")
            return report, render_plots(report, plot_dir.name, width)

        def failed(message, cancelled):
            plot_dir.cleanup()
            self.messages.set_lines(["Cancelled." if cancelled
                                     else f"Not characterised: {message}"])

        def done(result):
            if self._plot_dir is not None:
                self._plot_dir.cleanup()
            self._plot_dir = plot_dir
            self.report, self.plots = result
            self.written = {}
            self._show_report()

        started = self.task.run(work, label="Characterising", on_done=done,
                                on_error=failed)
        if not started:
            plot_dir.cleanup()
        return started

    def _show_report(self):
        report = self.report
        self.w.report.set_text("\n".join(report.lines()))
        self.w.report.set_scroll_pos(0)
        for child in list(self.w.plots.get_children()):
            self.w.plots.remove(child)
        for kind, title in PLOTS.items():
            if kind in self.plots:
                image = Widgets.Image()
                image.load_file(self.plots[kind])
                # scrolls when the panel is made smaller than the plot
                scroll = Widgets.ScrollArea()
                scroll.set_widget(image)
                self.w.plots.add_widget(scroll, title=title)
        self._enable_result_buttons()
        missing = [title for kind, title in PLOTS.items() if kind not in self.plots]
        lines = [f"Characterised {report.n_bias} bias, {report.n_dark} dark, "
                 f"{report.n_flat} flat frames of {report.folder}."]
        if missing:
            lines.append("No plot for: " + ", ".join(missing) + " (not measured; see "
                         "the notes in the report).")
        self.messages.set_lines(lines)

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
