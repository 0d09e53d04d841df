"""
``CCDMasters`` builds master bias, dark and flat frames from the night
scanned in the CCD Browser.

**Plugin Type: Global**

``CCDMasters`` is a global plugin: one instance, in the right-hand panel.
Open it from the "Plugins" menu under "CCD Calibration", or with the
"Masters..." button of the CCD Browser.

**Usage**

* "Frames" says which frames go in: the bias, dark and flat frames of the
  CCD Browser's current scan, with the types as the browser shows them
  (including any you corrected there).  Scan a folder in the browser
  first.
* For each kind choose how frames are combined: "average" or "median",
  and whether to sigma-clip first (limits in sigma below and above).
  The defaults are the usual recipe: averaged bias, median darks and
  flats.
* "Masters folder" is where the masters are written (by default the
  ``masters`` folder inside ``<raw folder>_reduced``).  Masters already
  there are reused unless "Rebuild existing" is ticked.
* "Build masters" runs in the background with a progress bar; "Cancel"
  stops it (masters finished so far are kept).  Each master then opens in
  the channel ``Masters``, where you can inspect it with Ginga's tools.
* The list shows every master in the folder, and "stale" when raw frames
  of its kind are newer than it (rebuild it), including frames the CCD
  Browser's watch mode has just seen arrive.  Click a master to show it
  in ``Masters`` and its header -- its provenance: which frames went in,
  how they were combined, which bias and dark were subtracted -- below.
* Anything that could not be done as asked (no bias frames, a dark
  without an exposure time...) is listed under "Messages".

"CCD Calibrate" uses the masters in this folder.

**User Configuration**

Settings live in ``plugin_CCDMasters.cfg`` in Ginga's settings folder:

* ``bias_method`` (``"average"``), ``dark_method`` (``"median"``),
  ``flat_method`` (``"median"``): combination methods.
* ``bias_clip``, ``dark_clip``, ``flat_clip`` (``False``): sigma clipping.
* ``clip_low``, ``clip_high`` (``3.0``): clipping limits in sigma.
* ``channel`` (``"Masters"``): channel the masters open in.
"""

from ginga import GingaPlugin
from ginga.gw import Widgets

from ..describe import provenance_text
from ..masters import MASTER_KINDS, MasterOptions, build_masters, stale_masters
from ..match import match_light
from ..safe_write import ensure_folder
from .common import (ChecklistStrip, FolderRow, MessageArea, OwnHelp, RunsTasks,
                     TaskPanel, action_button, button_row, finish_panel, float_spin,
                     get_session, load_and_show, panel_box, plugin_button,
                     report_problem, wrapping_label)

__all__ = ["CCDMasters"]

METHODS = ("average", "median")
_COLUMNS = [("Master", "name"), ("Kind", "kind"), ("Exposure", "exptime"),
            ("Filter", "filter"), ("Frames", "n"), ("Status", "status")]


class CCDMasters(OwnHelp, RunsTasks, GingaPlugin.GlobalPlugin):
    """Master builder working on the CCD Browser's scan (see module help)."""

    def __init__(self, fv):
        super().__init__(fv)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDMasters")
        defaults = MasterOptions()
        self.settings.add_defaults(channel="Masters", clip_low=defaults.sigma_low,
                                   clip_high=defaults.sigma_high)
        for kind in MASTER_KINDS:
            self.settings.add_defaults(**{f"{kind}_method": defaults.method[kind],
                                          f"{kind}_clip": defaults.sigma_clip[kind]})
        self.settings.load(onError="silent")

        self.session = get_session(fv)
        self.session.add_callback("scan-changed", self._scan_changed_cb)
        self.session.add_callback("masters-changed", self._masters_changed_cb)
        self.session.add_callback("masters-stale", self._masters_stale_cb)
        # master path -> its modification time when newer raw frames were
        # reported (watch mode); a rebuilt master is no longer stale
        self._reported_stale = {}
        self.chname = self.settings.get("channel", "Masters")
        self.masters = []
        self.report = None
        self.task = None
        self._loading = 0
        self._refresh_gen = 0
        self._refreshing = False
        self.gui_up = False

    # -- GUI -----------------------------------------------------------------
    def build_gui(self, container):
        top = panel_box()

        fr = Widgets.Frame("Frames")
        box = Widgets.VBox()
        self.w.source = wrapping_label()
        box.add_widget(self.w.source, stretch=0)
        self.w.open_browser = plugin_button(self.fv, "Open CCD Browser", "CCDBrowser",
                                            "Scan a folder of raw frames first")
        box.add_widget(button_row(self.w.open_browser), stretch=0)
        fr.set_widget(box)
        top.add_widget(fr, stretch=0)

        fr = Widgets.Frame("Combination")
        grid = Widgets.GridBox(rows=len(MASTER_KINDS), columns=3)
        grid.set_spacing(4)
        self.w.method, self.w.clip = {}, {}
        for row, kind in enumerate(MASTER_KINDS):
            grid.add_widget(Widgets.Label(f"{kind.capitalize()}:"), row, 0)
            combo = Widgets.ComboBox()
            for method in METHODS:
                combo.append_text(method)
            combo.set_text(self.settings.get(f"{kind}_method"))
            combo.set_tooltip(f"How the {kind} frames are combined")
            self.w.method[kind] = combo
            grid.add_widget(combo, row, 1)
            clip = Widgets.CheckBox("sigma clip")
            clip.set_state(bool(self.settings.get(f"{kind}_clip")))
            clip.set_tooltip("Reject outlying pixel values (cosmic rays, stars "
                             "in flats) before combining")
            self.w.clip[kind] = clip
            grid.add_widget(clip, row, 2)
        limits = Widgets.HBox()
        limits.set_spacing(4)
        limits.add_widget(Widgets.Label("Clip below"), stretch=0)
        self.w.clip_low = float_spin(self.settings.get("clip_low"), 0.5, 20.0, 0.5)
        limits.add_widget(self.w.clip_low, stretch=0)
        limits.add_widget(Widgets.Label("above"), stretch=0)
        self.w.clip_high = float_spin(self.settings.get("clip_high"), 0.5, 20.0, 0.5)
        limits.add_widget(self.w.clip_high, stretch=0)
        limits.add_widget(Widgets.Label("sigma"), stretch=0)
        limits.add_widget(Widgets.Label(""), stretch=1)
        box = Widgets.VBox()
        box.set_spacing(4)
        box.add_widget(grid, stretch=0)
        box.add_widget(limits, stretch=0)
        fr.set_widget(box)
        top.add_widget(fr, stretch=0)

        self.folder_row = FolderRow("Masters folder:",
                                    tooltip="Where masters are written and looked for")
        self.folder_row.add_callback("activated", self.folder_cb)
        top.add_widget(self.folder_row.get_widget(), stretch=0)
        self.checklist = ChecklistStrip()
        top.add_widget(self.checklist.get_widget(), stretch=0)

        self.w.build = action_button("Build masters", "Combine the frames into "
                                     "masters (in the background)", self.build)
        self.w.overwrite = Widgets.CheckBox("Rebuild existing")
        self.w.overwrite.set_tooltip("Replace masters already in the folder")
        top.add_widget(button_row(self.w.build, self.w.overwrite), stretch=0)

        self.task = TaskPanel(self.fv, "CCDMasters")
        top.add_widget(self.task.get_widget(), stretch=0)

        self.w.list = Widgets.TreeView(sortable=False, selection="single",
                                       use_alt_row_color=True)
        self.w.list.setup_table(_COLUMNS, 1, "name")
        self.w.list.add_callback("selected", self.select_cb)
        self.w.list.set_min_size(0, 110)
        top.add_widget(self.w.list, stretch=1)

        fr = Widgets.Frame("Provenance (header of the selected master)")
        self.w.provenance = Widgets.TextArea(wrap=False, editable=False)
        self.w.provenance.set_font(self.fv.get_font("fixed", 9))
        self.w.provenance.set_min_size(0, 90)
        fr.set_widget(self.w.provenance)
        top.add_widget(fr, stretch=2)

        self.messages = MessageArea("Messages", max_height=110)
        top.add_widget(self.messages.get_widget(), stretch=0)

        finish_panel(self, container, top)
        self.gui_up = True

    def start(self):
        self._update_source()
        self.folder_row.set_path(self.session.masters_folder)
        self.refresh_list()

    def stop(self):
        if self.task is not None and self.task.busy:
            self.task.cancel()
        options = self.get_options()
        for kind in MASTER_KINDS:
            self.settings.set(**{f"{kind}_method": options.method[kind],
                                 f"{kind}_clip": options.sigma_clip[kind]})
        self.settings.set(clip_low=options.sigma_low, clip_high=options.sigma_high)
        self.gui_up = False

    def close(self):
        self.fv.stop_global_plugin(str(self))
        return True

    def __str__(self):
        return "ccdmasters"

    # -- state ---------------------------------------------------------------
    @property
    def busy(self):
        """True while masters are being built, listed or opened in the channel."""
        return ((self.task is not None and self.task.busy) or self._loading > 0
                or self._refreshing)

    def input_frames(self):
        """The calibration frames of the browser's scan, by kind."""
        return {kind: self.session.frames(kind) for kind in MASTER_KINDS}

    def get_options(self):
        """The `~ginga_ccdcal.masters.MasterOptions` the widgets describe."""
        options = MasterOptions()
        for kind in MASTER_KINDS:
            options.method[kind] = self.w.method[kind].get_text()
            options.sigma_clip[kind] = self.w.clip[kind].get_state()
        options.sigma_low = float(self.w.clip_low.get_value())
        options.sigma_high = float(self.w.clip_high.get_value())
        return options

    def set_method(self, kind, method, sigma_clip=None):
        """Set the combination of one kind, as the widgets would."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
        self.w.method[kind].set_text(method)
        if sigma_clip is not None:
            self.w.clip[kind].set_state(bool(sigma_clip))

    # -- callbacks from the session --------------------------------------------
    def _scan_changed_cb(self, session, scan):
        if not self.gui_up:
            return
        self._update_source()
        self.folder_row.set_path(self.session.masters_folder)
        self.refresh_list()

    def _masters_changed_cb(self, session, folder):
        if not self.gui_up:
            return
        self.folder_row.set_path(folder)
        self.refresh_list()

    def _masters_stale_cb(self, session, masters):
        for master in masters:
            self._reported_stale[master.path] = master.mtime
        if self.gui_up:
            self.refresh_list()

    def folder_cb(self, row, path):
        self.session.set_masters_folder(path)

    def _update_source(self):
        scan = self.session.scan
        if scan is None:
            self.w.source.set_text("No scan yet: open the CCD Browser and scan "
                                   "a folder of raw frames.")
            self.w.build.set_enabled(False)
            return
        frames = self.input_frames()
        counts = ", ".join(f"{len(frames[k])} {k}" for k in MASTER_KINDS)
        self.w.source.set_text(f"CCD Browser scan of {scan.folder}:\n{counts}")
        self.w.build.set_enabled(any(frames.values()))

    # -- building ------------------------------------------------------------
    def build(self):
        """Build the masters off the GUI thread; False if nothing started."""
        if self.session.scan is None:
            self.messages.set_lines(["No frames: scan a folder in the CCD Browser first."])
            return False
        frames = [f for kind in MASTER_KINDS for f in self.session.frames(kind)]
        if not frames:
            self.messages.set_lines([f"{self.session.scan.folder} has no bias, dark "
                                     "or flat frames: no masters to build."])
            return False
        out_dir = self.folder_row.get_path() or self.session.masters_folder
        if out_dir != self.session.masters_folder:
            self.session.set_masters_folder(out_dir)
        options = self.get_options()
        overwrite = self.w.overwrite.get_state()
        self.messages.set_lines([f"Building masters from {len(frames)} frames "
                                 f"into {out_dir} ..."])

        def work(progress, cancel):
            ensure_folder(out_dir)
            return build_masters(frames, out_dir, options, overwrite=overwrite,
                                 progress=progress, cancel=cancel)

        return self.task.run(work, label="Building masters", on_done=self._built,
                             on_error=self._build_failed)

    def _built(self, report):
        self.report = report
        report.masters = [m for m in report.masters if m is not None]
        built = [m for m in report.masters if m not in report.kept]
        lines = [f"{len(built)} master(s) built, {len(report.kept)} existing "
                 f"kept, in {self.session.masters_folder}"]
        lines += [f"  {m.name}: {m.describe()}" for m in report.masters]
        if report.problems:
            lines.append("Problems:")
            lines += [f"  {p}" for p in report.problems]
            for problem in report.problems:
                report_problem(self.fv, f"CCD Masters: {problem}")
        self.messages.set_lines(lines)
        self.session.masters_built()
        self.open_masters([m.path for m in report.masters])

    def _build_failed(self, message, cancelled):
        if cancelled:
            self.messages.set_lines(["Build cancelled; masters finished before "
                                     "that are kept."])
        else:
            self.messages.set_lines([f"Masters not built: {message}"])
        self.refresh_list()

    def open_masters(self, paths):
        """Load master files in the masters channel with Ginga's loader.

        All go into the channel (page through them with its arrows, or
        click them in the list); only the last is displayed, so a build
        does not flash through every master.
        """
        if not paths:
            return
        self._loading += 1
        load_and_show(self.fv, paths, self.chname, on_done=self._loaded)

    def _loaded(self):
        self._loading -= 1

    # -- the list of masters ---------------------------------------------------
    def refresh_list(self):
        """Show the masters in the masters folder, marking stale ones.

        The folder is read in a worker thread (only when it changed:
        `Session.masters_in`); the list follows when it is done.
        """
        self._refresh_gen += 1
        gen = self._refresh_gen
        self._refreshing = True
        folder = self.session.masters_folder
        frames = self.session.frames()
        lights = self.session.frames("light")
        session = self.session

        def work():
            masters = session.masters_in(folder)
            stale = {m.path: n for m, n in stale_masters(masters, frames)}
            match = match_light(lights[-1], masters) if lights and masters else None
            self.fv.gui_do(self._show_list, gen, masters, stale,
                           lights[-1] if lights else None, match, folder)

        self.fv.nongui_do(work)

    def _show_list(self, gen, masters, stale, light, match, folder):
        if gen != self._refresh_gen:
            return
        self._refreshing = False
        if not self.gui_up:
            return
        self.masters = masters
        if light is None:
            self.checklist.set_match(None, "no light in the scan")
        elif match is None:
            self.checklist.set_match(None, f"no masters in {folder}")
        else:
            self.checklist.set_match(match, f"for {light.name} (last light)")
        tree = {}
        for master in self.masters:
            if self._reported_stale.get(master.path, master.mtime) != master.mtime:
                del self._reported_stale[master.path]   # rebuilt since
            if master.path in stale:
                status = f"stale: {stale[master.path]} newer raw frame(s)"
            elif master.path in self._reported_stale:
                status = "stale: newer raw frame arrived"
            else:
                status = "up to date"
            tree[master.name] = {
                "name": master.name, "kind": master.kind,
                "exptime": "" if master.exptime is None else f"{master.exptime:g}",
                "filter": master.filter or "", "n": master.n_frames,
                "status": status}
        self.w.list.set_tree(tree)
        self.w.list.set_optimal_column_widths()
        for master in self.masters:
            if master.path in stale or master.path in self._reported_stale:
                self.w.list.set_cell_color([master.name], "status", fg="red", bold=True)
        self.w.provenance.set_text("")

    def master_named(self, name):
        for master in self.masters:
            if master.name == name:
                return master
        return None

    def select_cb(self, w, res_dict):
        paths = w.get_selected_paths()
        if paths:
            self.show_master(paths[0][-1])

    def show_master(self, name):
        """Show master ``name``: header in the provenance box, image in the channel."""
        master = self.master_named(name)
        if master is None:
            return
        self.w.provenance.set_text(provenance_text(master))
        self.w.provenance.set_scroll_pos(0)
        self.open_masters([master.path])

