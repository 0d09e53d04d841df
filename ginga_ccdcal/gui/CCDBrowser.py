"""
``CCDBrowser`` shows a night's raw CCD frames grouped by their headers.

**Plugin Type: Global**

``CCDBrowser`` is a global plugin: one instance, in the right-hand panel.
Open it from the "Operations" menu under "CCD Calibration", or start the
viewer with ``ginga-ccdcal gui FOLDER``.

**Usage**

* Type a folder in "Raw folder" and press Enter, or use "Browse...".  The
  folder (and its sub-folders) is scanned in the background: only
  headers are read, so thousands of frames take seconds.  The bar shows
  the progress; "Cancel" stops the scan.
* Frames appear in a tree grouped by image type, then exposure.  Type
  other keywords in "Group by", separated by commas (outermost first):
  ``frametype, filter, exptime`` or any header keyword such as
  ``CCD-TEMP``, ``XBINNING``, ``OBJECT``.  Exposures and temperatures
  that differ by a hair (300 and 300.1 s) fall in one group: "Exposure
  +/-" says how close two exposures must be (seconds).
* Beside each file: filter, exposure, CCD temperature and type.  A type
  the header did not give was guessed from the pixels and is shown as
  "(guessed)" in orange; one you set is "(set by you)".
* Click a file to load it in the current channel (Ginga's own loader).
* Click a group to see how many frames it holds and a summary of their
  headers (exposure, temperature range, filters, image size).
* To correct a frame's type: select the file(s), pick the type in the
  "Type" box and press "Set type".  The choice is kept for every rescan
  and used by CCD Masters and CCD Calibrate.
* "Refresh" rescans, re-reading only new or changed files.
* Files that cannot be used (truncated, not FITS, not an image) are
  listed under "Messages" with the reason; they do not stop the scan.

**Watching a folder (quick-look at the telescope)**

* Tick "Watch" to calibrate every new light as the camera writes it into
  the raw folder.  Each one is calibrated with the masters of the CCD
  Masters folder, written to "Output" (by default ``<raw>_reduced``,
  next to the raw folder) and shown in the channel ``<channel>_cal``
  (``Image_cal`` when you started from ``Image``) with "zscale" cut
  levels.  New frames join the tree.
* "Watch log" gets a line per frame: what happened, and which master
  (with its version: frames and build time) was used for each step.
  Problems (a file still unreadable after a while, a failed calibration)
  and ignored files get a line too; the viewer keeps running.
* A new bias, dark or flat makes the masters of its kind older than the
  raw frames: CCD Masters marks them "stale".  With "Live masters" the
  watcher rebuilds them before the next light, which then uses the new
  version.
* Tick "Poll (network drive)" when the raw folder is on a network drive,
  whose changes the operating system does not report.
* Untick "Watch" (or close the plugin) to stop; the frame being
  calibrated is finished first.  Frames already in the folder when you
  start are left alone: calibrate them with CCD Calibrate.

**Header spellings**

Open "Header spellings" to teach the browser your camera's words: one
``header value = ours`` per line, under ``[types]`` (ours: bias, dark,
flat, light) or ``[filters]``, e.g. ``FLAT-DK = dark`` or
``Halpha = Ha``.  "Save and rescan" writes them to
``ccdcal_aliases.json`` in Ginga's settings folder (``$GINGA_HOME``,
``~/.ginga`` by default), where the command line reads them too, and
rescans the folder with them.

The scan is shared with the other CCD plugins: "CCD Masters" builds
masters from it and "CCD Calibrate" calibrates its light frames.

**User Configuration**

Settings live in ``plugin_CCDBrowser.cfg`` in Ginga's settings folder:

* ``group_keys`` (``"frametype, exptime"``): default grouping.
* ``exptime_tolerance`` (``0.5``): exposures this close (s) form a group.
* ``recursive`` (``True``): scan sub-folders.
* ``last_folder`` (``None``): folder shown when the plugin opens.
* ``live_masters`` (``False``), ``poll`` (``False``): watch options.
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

from .. import classify
from ..errors import CcdcalError
from ..describe import (aliases_text, format_number, frame_summary, group_summary,
                        parse_aliases_text, parse_group_keys, type_text,
                        watch_result_lines)
from ..group import DEFAULT_GROUP_KEYS, DEFAULT_TOLERANCES, group_frames
from ..scan import scan_folder
from ..watch import FolderWatcher
from .common import (CAL_SUFFIX, FRAME_TYPES, FolderRow, MessageArea, TaskPanel,
                     action_button, add_close_help, button_row, default_output_folder,
                     float_spin, get_session, panel_box, plugin_button,
                     result_channel_name, show_calibrated)

__all__ = ["CCDBrowser"]

_COLUMNS = [("File / group", "name"), ("Frames", "count"), ("Type", "type"),
            ("Filter", "filter"), ("Exposure", "exptime"), ("CCD temp", "temp")]


def _master_versions(masters):
    """What changes when a master is rebuilt, added or removed."""
    return sorted((m.path, m.version, m.mtime) for m in masters)


class CCDBrowser(GingaPlugin.GlobalPlugin):
    """Folder scan, header-grouped tree, type overrides (see module help)."""

    def __init__(self, fv):
        super().__init__(fv)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDBrowser")
        self.settings.add_defaults(group_keys=", ".join(DEFAULT_GROUP_KEYS),
                                   exptime_tolerance=DEFAULT_TOLERANCES["exptime"],
                                   recursive=True, last_folder=None,
                                   live_masters=False, poll=False, poll_interval=0.5,
                                   channel_suffix=CAL_SUFFIX, autocut_method="zscale")
        self.settings.load(onError="silent")

        self.session = get_session(fv)
        self.session.add_callback("scan-changed", self._scan_changed_cb)
        self.group_keys = parse_group_keys(self.settings.get("group_keys", ""))
        self.groups = []
        # tree path (tuple of keys) -> list of frames below it
        self._path_frames = {}
        self._path_labels = {}
        self._leaf_frames = {}
        self.task = None
        self.gui_up = False
        # a scan finished or asked for while another ran: (reuse, quiet)
        self._rescan_pending = None
        self._quiet_show = False
        self._summary_lines = None
        self.aliases_path = None
        # watch mode: 'off', 'scanning' (the tree first), 'starting', 'on', 'stopping'
        self.watch_state = "off"
        self.watcher = None
        self.watch_folder = None
        self.watch_chname = None
        self.watch_result = None
        self._watch_gen = 0
        self._watch_masters = None

    # -- GUI -----------------------------------------------------------------
    def build_gui(self, container):
        top = panel_box()

        self.folder_row = FolderRow("Raw folder:", tooltip="Folder of raw frames; "
                                    "Enter scans it")
        self.folder_row.add_callback("activated", self.folder_cb)
        top.add_widget(self.folder_row.get_widget(), stretch=0)

        row = Widgets.HBox()
        row.set_spacing(4)
        row.add_widget(Widgets.Label("Group by:"), stretch=0)
        self.w.group_by = Widgets.TextEntrySet(", ".join(self.group_keys))
        self.w.group_by.set_tooltip("Keywords to group by, outermost first, "
                                    "separated by commas (any header keyword)")
        self.w.group_by.add_callback("activated", self.group_by_cb)
        row.add_widget(self.w.group_by, stretch=1)
        self.w.recursive = Widgets.CheckBox("Sub-folders")
        self.w.recursive.set_state(bool(self.settings.get("recursive", True)))
        self.w.recursive.set_tooltip("Also scan the folders inside")
        row.add_widget(self.w.recursive, stretch=0)
        top.add_widget(row, stretch=0)

        self.w.scan = action_button("Scan", "Scan the folder from scratch", self.scan)
        self.w.refresh = action_button("Refresh", "Rescan, reading only new or "
                                       "changed files", self.refresh)
        self.w.expand = action_button("Expand all", "Open every group",
                                      lambda: self.w.tree.expand_all(True))
        self.w.collapse = action_button("Collapse", "Close every group",
                                        lambda: self.w.tree.expand_all(False))
        row = button_row(self.w.scan, self.w.refresh, self.w.expand, self.w.collapse)
        # (after the row's spacer: the exposure tolerance sits on the right)
        row.add_widget(Widgets.Label("Exposure +/-"), stretch=0)
        self.w.tolerance = float_spin(
            self.settings.get("exptime_tolerance"), 0.0, 3600.0, 0.1, decimals=2,
            tooltip="Exposures closer than this (seconds) form one group")
        self.w.tolerance.add_callback("value-changed", self.tolerance_cb)
        row.add_widget(self.w.tolerance, stretch=0)
        row.add_widget(Widgets.Label("s"), stretch=0)
        top.add_widget(row, stretch=0)

        self.task = TaskPanel(self.fv, "CCDBrowser")
        top.add_widget(self.task.get_widget(), stretch=0)

        tree = Widgets.TreeView(auto_expand=True, sortable=False,
                                selection="multiple", use_alt_row_color=True)
        tree.add_callback("selected", self.select_cb)
        self.w.tree = tree
        top.add_widget(tree, stretch=1)

        row = Widgets.HBox()
        row.set_spacing(4)
        row.add_widget(Widgets.Label("Type:"), stretch=0)
        self.w.type = Widgets.ComboBox()
        for name in FRAME_TYPES:
            self.w.type.append_text(name)
        self.w.type.set_tooltip("Frame type to give the selected files")
        row.add_widget(self.w.type, stretch=0)
        self.w.set_type = action_button("Set type", "Use this type for the selected "
                                        "files (kept for rescans)", self.set_type_cb)
        row.add_widget(self.w.set_type, stretch=0)
        self.w.masters = plugin_button(self.fv, "Masters...", "CCDMasters",
                                       "Open CCD Masters to build masters from this scan")
        row.add_widget(Widgets.Label(""), stretch=1)
        row.add_widget(self.w.masters, stretch=0)
        top.add_widget(row, stretch=0)

        top.add_widget(self._build_watch(), stretch=0)
        top.add_widget(self._build_aliases(), stretch=0)

        self.messages = MessageArea("Messages", max_height=90)
        top.add_widget(self.messages.get_widget(), stretch=0)

        add_close_help(self, top)

        container.add_widget(top, stretch=1)
        self.gui_up = True

    def _build_watch(self):
        fr = Widgets.Frame("Watch (quick-look)")
        box = Widgets.VBox()
        box.set_spacing(2)
        self.out_row = FolderRow("Output:", tooltip="Watched lights are calibrated "
                                 "into this folder; Enter makes it the output of "
                                 "every CCD plugin")
        self.out_row.add_callback("activated", self.output_folder_cb)
        box.add_widget(self.out_row.get_widget(), stretch=0)
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
        row = button_row(self.w.watch, self.w.live, self.w.poll)
        box.add_widget(row, stretch=0)
        self.w.watch_status = Widgets.Label("Not watching.", halign="left")
        box.add_widget(self.w.watch_status, stretch=0)
        fr.set_widget(box)
        self.watch_log = MessageArea("Watch log", max_height=110)
        outer = Widgets.VBox()
        outer.set_spacing(2)
        outer.add_widget(fr, stretch=0)
        outer.add_widget(self.watch_log.get_widget(), stretch=0)
        # the log takes room only once there is something to log
        self.watch_log.get_widget().hide()
        return outer

    def _build_aliases(self):
        exp = Widgets.Expander("Header spellings")
        box = Widgets.VBox()
        box.set_spacing(2)
        self.w.aliases_help = Widgets.Label("", halign="left")
        box.add_widget(self.w.aliases_help, stretch=0)
        self.w.aliases = Widgets.TextArea(wrap=False, editable=True)
        self.w.aliases.set_tooltip("One 'header value = ours' per line, under "
                                   "[types] or [filters]")
        self.w.aliases.set_min_size(0, 90)
        self.w.aliases.set_max_size(None, 140)
        box.add_widget(self.w.aliases, stretch=1)
        self.w.save_aliases = action_button(
            "Save and rescan", "Write the spellings (the command line reads them "
            "too) and rescan the folder", self.save_aliases)
        self.w.reload_aliases = action_button(
            "Reload", "Show the spellings saved in the file", self.load_aliases)
        box.add_widget(button_row(self.w.save_aliases, self.w.reload_aliases), stretch=0)
        exp.set_widget(box)
        self.w.aliases_expander = exp
        return exp

    def start(self):
        self.group_keys = parse_group_keys(self.settings.get("group_keys", ""))
        self.w.group_by.set_text(", ".join(self.group_keys))
        folder = self.session.folder or self.settings.get("last_folder", None)
        self.folder_row.set_path(folder)
        self.out_row.set_path(self._default_output(folder))
        self._show_watch_state()
        if self.session.scan is not None:
            self._show_scan(self.session.scan)
        else:
            self.messages.set_lines(["Choose a folder of raw frames and press Enter."])
        self.load_aliases(quiet=True)

    def stop(self):
        self.stop_watch()
        self._rescan_pending = None
        if self.task is not None and self.task.busy:
            self.task.cancel()
        self.settings.set(group_keys=", ".join(self.group_keys),
                          exptime_tolerance=float(self.w.tolerance.get_value()),
                          recursive=self.w.recursive.get_state(),
                          last_folder=self.session.folder,
                          live_masters=self.w.live.get_state(),
                          poll=self.w.poll.get_state())
        self.gui_up = False

    def close(self):
        self.fv.stop_global_plugin(str(self))
        return True

    def __str__(self):
        return "ccdbrowser"

    # -- state the other plugins and tests read ------------------------------
    @property
    def busy(self):
        """True while a scan runs, or the watch is starting or stopping."""
        return ((self.task is not None and self.task.busy)
                or self.watch_state in ("starting", "stopping"))

    @property
    def watching(self):
        """True while a watcher runs (from started until it is told to stop)."""
        return self.watch_state == "on"

    @property
    def scan_result(self):
        """The last scan (shared with the other CCD plugins), or None."""
        return self.session.scan

    def cancel(self):
        """Stop the scan in progress, and a watch that is still starting."""
        if self.task is not None:
            self.task.cancel()
        if self.watch_state in ("scanning", "starting"):
            self.stop_watch()

    # -- scanning ------------------------------------------------------------
    def set_folder(self, folder):
        """Show ``folder`` in the entry and scan it."""
        self.folder_row.set_path(folder)
        return self.scan()

    def folder_cb(self, row, path):
        self.scan()

    def scan(self, reuse=False, folder=None, quiet=False):
        """Scan the folder in the entry (or ``folder``) off the GUI thread.

        Parameters
        ----------
        reuse : bool
            Pass the previous result so unchanged files are not re-read.
        folder : str, optional
            Scan this folder instead of the one in the entry.
        quiet : bool
            Leave the message area alone (rescans of the watch).

        Returns
        -------
        bool
            False if nothing was started (no folder, or a scan running:
            a quiet rescan is then done once the running scan ends).
        """
        folder = folder or self.folder_row.get_path()
        if not folder:
            self.messages.set_lines(["Type or choose a folder first."])
            return False
        if self.task.busy:
            if quiet:
                self._rescan_pending = (reuse, quiet)
            return False
        folder = os.path.abspath(folder)
        previous = None
        if reuse and self.session.folder == folder:
            previous = self.session.scan
        recursive = self.w.recursive.get_state()
        overrides = dict(self.session.overrides)
        aliases = self.session.aliases
        if not quiet:
            self.messages.set_lines([f"Scanning {folder} ..."])

        def work(progress, cancel):
            return scan_folder(folder, recursive=recursive, previous=previous,
                               overrides=overrides, aliases=aliases,
                               progress=progress, cancel=cancel)

        return self.task.run(work, label="Scanning",
                             on_done=lambda result: self._scanned(folder, result, quiet),
                             on_error=self._scan_failed)

    def refresh(self):
        """Rescan the folder, re-reading only new or changed files."""
        return self.scan(reuse=True)

    def _scanned(self, folder, result, quiet):
        self._quiet_show = quiet
        try:
            self.session.set_scan(folder, result)
        finally:
            self._quiet_show = False
        if self.watch_state == "scanning" and folder == self.watch_folder:
            self._launch_watcher()
        if self._rescan_pending is not None and self.gui_up:
            reuse, quiet = self._rescan_pending
            self._rescan_pending = None
            self.scan(reuse=reuse, folder=self.session.folder, quiet=quiet)

    def _scan_failed(self, message, cancelled):
        self._rescan_pending = None
        if self.watch_state == "scanning":
            self._watch_stopped_cb(None, "the folder could not be scanned")
        if cancelled:
            self.messages.set_lines(["Scan cancelled; the tree shows the previous scan."])
        else:
            self.messages.set_lines([f"Scan failed: {message}"])

    def _scan_changed_cb(self, session, scan):
        if self.gui_up:
            if self.watch_state == "off":
                self.out_row.set_path(self._default_output(session.folder))
            self._show_scan(scan)

    # -- the tree --------------------------------------------------------------
    def group_by_cb(self, w):
        self.set_group_keys(parse_group_keys(w.get_text()))

    def set_group_keys(self, keys):
        """Regroup the current scan by ``keys`` (outermost first)."""
        self.group_keys = tuple(keys) or DEFAULT_GROUP_KEYS
        self.w.group_by.set_text(", ".join(self.group_keys))
        if self.session.scan is not None:
            self._show_scan(self.session.scan)

    def tolerance_cb(self, w, value):
        if self.session.scan is not None:
            self._show_scan(self.session.scan)

    def tolerances(self):
        """How close numeric values must be to share a group (`group_frames`)."""
        tolerances = dict(DEFAULT_TOLERANCES)
        tolerances["exptime"] = float(self.w.tolerance.get_value())
        return tolerances

    def _show_scan(self, scan):
        if scan is None:
            # the session was reset: nothing to show
            self.groups = []
            self._path_frames, self._path_labels, self._leaf_frames = {}, {}, {}
            self.w.tree.clear()
            return
        selected = self.w.tree.get_selected_paths()
        self.groups = group_frames(scan.frames, self.group_keys, self.tolerances())
        self._path_frames, self._path_labels, self._leaf_frames = {}, {}, {}
        root = os.path.abspath(scan.folder) if scan.folder else ""
        tree = {}
        for group in self.groups:
            self._add_group(tree, (), group, root)
        self.w.tree.setup_table(_COLUMNS, len(self.group_keys) + 1, "name")
        self.w.tree.set_tree(tree)
        self.w.tree.expand_all(True)
        self.w.tree.set_optimal_column_widths()
        for path, frame in self._leaf_frames.items():
            if frame.guessed:
                self.w.tree.set_cell_color(list(path), "type", fg="darkorange", bold=True)
            elif frame.type_source == "user":
                self.w.tree.set_cell_color(list(path), "type", fg="blue")
        # a rescan keeps the rows the user selected (without reloading them)
        known = set(self._leaf_frames) | set(self._path_frames)
        self.w.tree.set_selected([p for p in selected if tuple(p) in known])
        # a quiet rescan (watch) updates the scan summary, never other messages
        if not self._quiet_show or self.messages.lines == self._summary_lines:
            self._summary_lines = self._scan_lines(scan)
            self.messages.set_lines(self._summary_lines)

    def _add_group(self, parent, path, group, root):
        key = group.label
        node = {"name": key, "count": len(group.frames)}
        path = path + (key,)
        self._path_frames[path] = group.frames
        self._path_labels[path] = [g for g in path]
        parent[key] = node
        if group.children:
            for child in group.children:
                self._add_group(node, path, child, root)
            return
        for frame in group.frames:
            name = os.path.relpath(frame.path, root) if root else frame.path
            node[name] = {"name": name, "count": "", "type": type_text(frame),
                          "filter": frame.filter or "",
                          "exptime": format_number(frame.exptime),
                          "temp": format_number(frame.ccd_temp, "{:.1f}")}
            self._leaf_frames[path + (name,)] = frame

    def _scan_lines(self, scan):
        counts = scan.counts()
        lines = [f"{scan.folder}: {len(scan.frames)} frames ("
                 + (", ".join(f"{counts[t]} {t}" for t in FRAME_TYPES if t in counts)
                    or "none") + ")"]
        guessed = [f for f in scan.frames if f.guessed]
        if guessed:
            lines.append(f"{len(guessed)} frame(s) had no type in the header; the "
                         "type was guessed (orange). Check them and use 'Set type' "
                         "if a guess is wrong.")
        if scan.products:
            lines.append(f"{len(scan.products)} file(s) made by ginga-ccdcal "
                         "(masters, calibrated frames) skipped.")
        if scan.problems:
            lines.append(f"{len(scan.problems)} file(s) could not be used:")
            lines.extend(f"  {os.path.basename(p.path)}: {p.message}"
                         for p in scan.problems)
        return lines

    def frames_at(self, path):
        """Frames under the tree row ``path`` (a list of keys)."""
        path = tuple(path)
        if path in self._leaf_frames:
            return [self._leaf_frames[path]]
        return list(self._path_frames.get(path, []))

    def selected_frames(self):
        """Frames of the selected file rows."""
        paths = self.w.tree.get_selected_paths()
        return [self._leaf_frames[tuple(p)] for p in paths
                if tuple(p) in self._leaf_frames]

    def select_cb(self, w, res_dict):
        paths = [tuple(p) for p in w.get_selected_paths()]
        if not paths:
            return
        path = paths[-1]
        if path in self._leaf_frames:
            frame = self._leaf_frames[path]
            self.messages.set_lines(frame_summary(frame))
            if len(paths) == 1:
                self.load_frame(frame)
            return
        frames = self._path_frames.get(path, [])
        self.messages.set_lines(group_summary(self._path_labels.get(path, path), frames))

    def select_path(self, path):
        """Select the row ``path`` as a click would (loads a file, summarises a group)."""
        self.w.tree.set_selected([list(path)])
        self.select_cb(self.w.tree, self.w.tree.get_selected())

    def path_of(self, frame_path):
        """The tree path of the file ``frame_path`` (None if not shown)."""
        frame_path = os.path.abspath(frame_path)
        for path, frame in self._leaf_frames.items():
            if os.path.abspath(frame.path) == frame_path:
                return list(path)
        return None

    def load_frame(self, frame):
        """Load ``frame`` in the current channel with Ginga's loader.

        Raw frames stay out of the channels of products: when the current
        channel shows masters or calibrated frames, the frame goes to the
        raw channel (`raw_channel`).
        """
        self.fv.nongui_do(self.fv.load_file, frame.path, chname=self.raw_channel())

    def raw_channel(self):
        """The channel raw frames are shown in: the current one, unless it
        holds products -- ``Image_cal`` (results) gives ``Image``, the
        masters channel gives ``Image``.
        """
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

    # -- type overrides ------------------------------------------------------
    def set_type_cb(self):
        frames = self.selected_frames()
        if not frames:
            self.messages.set_lines(["Select one or more files (not groups) first."])
            return
        self.set_frame_type(frames, self.w.type.get_text())

    def set_frame_type(self, frames, frametype):
        """Give ``frames`` the type ``frametype`` and rescan (kept for rescans)."""
        if frametype not in FRAME_TYPES:
            raise CcdcalError(f"unknown frame type {frametype!r}")
        for frame in frames:
            self.session.overrides[frame.path] = frametype
        self.messages.set_lines([f"{len(frames)} frame(s) set to {frametype}; "
                                 "regrouping..."])
        return self.scan(reuse=True)

    # -- watch mode ------------------------------------------------------------
    def _default_output(self, folder):
        """The output folder shown for raw ``folder``.

        The session's (the user's choice, or the default of the scanned
        folder) when ``folder`` is the scanned one, else the default
        sibling ``<folder>_reduced``.
        """
        if not folder:
            return self.session.output_folder
        if self.session.folder == os.path.abspath(folder):
            return self.session.output_folder
        return default_output_folder(folder)

    def output_folder_cb(self, row, path):
        self.session.output_folder = path
        # the default masters folder lives in the output folder
        self.session.masters_built()

    def watch_cb(self, w, state):
        if state:
            self.start_watch()
        else:
            self.stop_watch()

    def start_watch(self):
        """Watch the raw folder: calibrate and show each new light.

        The folder is scanned first if the tree does not show it.  The
        watcher starts in a worker thread (a network drive may take a
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
        folder = self.folder_row.get_path()
        if not folder or not os.path.isdir(folder):
            self.watch_log_line(f"Cannot watch {folder}: no such folder." if folder
                                else "Choose the raw folder to watch first.")
            self._show_watch_state()
            return False
        if self.task.busy:
            self.watch_log_line("A scan is running: tick Watch once it is done.")
            self._show_watch_state()
            return False
        self.watch_folder = os.path.abspath(folder)
        if self.session.folder == self.watch_folder and self.session.scan is not None:
            self._launch_watcher()
        else:
            # the tree shows the watched folder, so new frames can join it
            self.watch_state = "scanning"
            self.scan(folder=self.watch_folder)
            self._show_watch_state()
        return True

    def _launch_watcher(self):
        raw = self.watch_folder
        out = self.out_row.get_path() or self._default_output(raw)
        if out != self.session.output_folder:
            self.session.output_folder = out
            self.session.masters_built()
        masters_dir = self.session.masters_folder
        self.watch_chname = result_channel_name(
            self.raw_channel(), self.settings.get("channel_suffix", CAL_SUFFIX))
        live = self.w.live.get_state()
        poll = self.w.poll.get_state()
        recursive = self.w.recursive.get_state()
        aliases = self.session.aliases
        interval = float(self.settings.get("poll_interval", 0.5))
        self._watch_gen += 1
        gen = self._watch_gen
        self.watch_state = "starting"
        self._watch_masters = None
        self.watch_log.get_widget().show()
        self.watch_log_line(f"Starting to watch {raw}: lights calibrated into {out} "
                            f"with the masters in {masters_dir}, shown in "
                            f"{self.watch_chname}" + ("; live masters" if live else ""))
        self._show_watch_state()

        def start():
            try:
                watcher = FolderWatcher(
                    raw, out, masters_dir=masters_dir, poll=poll, poll_interval=interval,
                    rebuild_masters=live, existing=False, aliases=aliases,
                    recursive=recursive,
                    on_result=lambda r: self.fv.gui_do(self._watch_result_cb, gen, r),
                    on_event=lambda t: self.fv.gui_do(self._watch_event_cb, gen, t))
                watcher.start()
            except CcdcalError as exc:
                self.fv.gui_do(self._watch_stopped_cb, None, str(exc))
            except Exception as exc:  # a bug: log it fully, tell the user briefly
                self.logger.error(f"CCDBrowser: cannot start watching: {exc}\n"
                                  + traceback.format_exc())
                self.fv.gui_do(self._watch_stopped_cb, None,
                               f"unexpected error ({exc.__class__.__name__}: {exc}); "
                               "details are in Ginga's log")
            else:
                self.fv.gui_do(self._watch_started_cb, watcher)

        self.fv.nongui_do(start)

    def _watch_started_cb(self, watcher):
        if self.watch_state != "starting":
            # unticked (or closed) while it started
            self._stop_watcher(watcher)
            return
        self.watcher = watcher
        self.watch_state = "on"
        self._watch_masters = _master_versions(watcher.masters)
        self._show_watch_state()

    def stop_watch(self):
        """Stop watching; the watcher's threads are joined in a worker thread.

        The frame being calibrated is finished (and shown) first.  Returns
        False if there was nothing to stop.
        """
        state = self.watch_state
        if state == "scanning":
            self.watch_state = "off"
            self.watch_log_line("Watch not started.")
        elif state == "starting":
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
        elif watcher is not None:
            counts = ", ".join(f"{n} {status}" for status, n in watcher.counts.items() if n)
            self.watch_log_line(f"Stopped watching {watcher.raw_dir}"
                                + (f" ({counts})." if counts else "; no new frames."))
        self._show_watch_state()

    def _show_watch_state(self):
        """Bring the watch widgets in line with `watch_state`."""
        if not self.gui_up:
            return
        state = self.watch_state
        self.w.watch.set_state(state in ("scanning", "starting", "on"))
        for widget in (self.w.live, self.w.poll, self.out_row.entry, self.out_row.browse):
            widget.set_enabled(state == "off")
        watcher = self.watcher
        if state == "on" and watcher is not None:
            counts = watcher.counts
            text = (f"Watching {watcher.raw_dir} ({watcher.mode}): "
                    f"{counts['calibrated']} calibrated, "
                    f"{counts['calibration']} calibration frame(s), "
                    f"{counts['problem']} problem(s)")
        else:
            text = {"scanning": "Scanning the folder before watching...",
                    "starting": "Starting...", "stopping": "Stopping...",
                    "off": "Not watching."}.get(state, state)
        self.w.watch_status.set_text(text)

    def watch_log_line(self, text):
        """Add a time-stamped line to the watch log (shown from now on)."""
        if not self.gui_up:
            return
        self.watch_log.get_widget().show()
        self.watch_log.add_line(f"{time.strftime('%H:%M:%S')} {text}")

    def _watch_event_cb(self, gen, text):
        if gen == self._watch_gen:
            self.watch_log_line(text)

    def _watch_result_cb(self, gen, result):
        """A file was handled by the watcher (GUI thread)."""
        if gen != self._watch_gen or not self.gui_up:
            return
        self.watch_result = result
        self.watch_log.get_widget().show()
        for line in watch_result_lines(result, time.strftime("%H:%M:%S")):
            self.watch_log.add_line(line)
        if result.status == "calibrated":
            show_calibrated(self.fv, result.ccd, result.output, self.watch_chname,
                            self.settings.get("autocut_method", "zscale"))
        if result.status == "calibration" and result.stale:
            self.session.report_stale(result.stale)
        if result.status in ("calibrated", "exists", "calibration"):
            self._watch_masters_changed()
            if self.session.folder == self.watch_folder:
                # the new frame joins the tree; unchanged files are not re-read
                self.scan(reuse=True, folder=self.watch_folder, quiet=True)
        self._show_watch_state()

    def _watch_masters_changed(self):
        """Tell the other plugins when the watcher rebuilt masters (live masters)."""
        watcher = self.watcher
        if watcher is None:
            return
        versions = _master_versions(watcher.masters)
        if versions != self._watch_masters:
            self._watch_masters = versions
            self.session.masters_built()

    # -- the user's header spellings ---------------------------------------------
    def load_aliases(self, quiet=False):
        """Read the spellings file into the editor and the session.

        A missing file means no spellings; an unreadable one is reported
        and ignored.  ``quiet``: say nothing unless there is a problem,
        and then add a line rather than replace the messages.
        """
        self.aliases_path = classify.default_aliases_path()
        aliases = None
        problem = None
        if os.path.exists(self.aliases_path):
            try:
                aliases = classify.load_aliases(self.aliases_path)
            except CcdcalError as exc:
                problem = str(exc)
        self.session.aliases = aliases
        self.w.aliases.set_text(aliases_text(aliases))
        self.w.aliases_help.set_text(
            "One 'header value = ours' per line; types: bias, dark, flat, light.\n"
            f"Saved in {self.aliases_path} (the command line reads it too).")
        if problem:
            line = f"Header spellings not used: {problem}"
            if quiet:
                self.messages.add_line(line)
            else:
                self.messages.set_lines([line])
        elif not quiet:
            count = sum(len(v) for v in (aliases or {}).values())
            self.messages.set_lines([f"{count} spelling(s) read from {self.aliases_path}."])
        return aliases

    def save_aliases(self):
        """Save the editor's spellings and rescan the folder with them.

        Returns False (and saves nothing) if a line cannot be read.
        """
        try:
            aliases = parse_aliases_text(self.w.aliases.get_text())
            path = classify.save_aliases(aliases, self.aliases_path
                                         or classify.default_aliases_path())
        except CcdcalError as exc:
            self.messages.set_lines([f"Spellings not saved: {exc}"])
            return False
        except OSError as exc:
            self.messages.set_lines([f"Spellings not saved: cannot write "
                                     f"{exc.filename} ({exc.strerror})"])
            return False
        self.aliases_path = path
        self.session.aliases = aliases
        if self.watcher is not None:
            # read by the watcher for each new file
            self.watcher.aliases = aliases
        count = sum(len(v) for v in aliases.values())
        lines = [f"{count} spelling(s) saved in {path}."]
        folder = self.session.folder or self.folder_row.get_path()
        self.messages.set_lines(lines)
        if folder:
            # from scratch: unchanged files must be classified again
            self.scan(folder=folder)
            self.messages.set_lines(lines + [f"Rescanning {folder} with them ..."])
        return True
