"""
``CCDBrowser`` shows a night's raw CCD frames grouped by their headers.

**Plugin Type: Global**

``CCDBrowser`` is a global plugin: one instance, in the right-hand panel.
Open it from the "Plugins" menu under "CCD Calibration", or start the
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
  "(guessed)" in orange; one the file name and pixels gave against the
  header's word is "(not the header's)", also in orange (click the file
  for the reason); one you set is "(set by you)".
* Click a file to load it in the current channel (Ginga's own loader).
* Click a group to see how many frames it holds and a summary of their
  headers (exposure, temperature range, filters, image size).
* To correct a frame's type: select the file(s), pick the type in the
  "Type" box and press "Set type".  The choice is kept for every rescan
  and used by CCD Masters and CCD Calibrate.
* "Refresh" rescans, re-reading only new or changed files.
* Files that cannot be used (truncated, not FITS, not an image) are
  listed under "Messages" with the reason, and in Ginga's "Errors" tab;
  they do not stop the scan.  A folder that cannot be scanned (a typo)
  empties the tree, so nothing of the previous folder stays selected.

**Frame states**

The "State" column says what calibrating each light gave here (CCD
Calibrate, CCD Watch): "calibrated", "partly calibrated: no master flat",
"not calibrated: ..." or "failed: ...", coloured when something is
missing.  The strip above the tree says for the selected light which
masters of the masters folder fit it: "bias ✓ dark ✓ flat ✗".  Watching
the folder as the camera writes into it is CCD Watch's job ("Watch..."
opens it).

**Header spellings**

Open "Header spellings" to teach the browser your camera's words: one
``header value = ours`` per line, under ``[types]`` (ours: bias, dark,
flat, light) or ``[filters]``, e.g. ``FLAT-DK = dark`` or
``Halpha = Ha``.  "Save and rescan" writes them to
``ccdcal_aliases.json`` in Ginga's settings folder (``$GINGA_HOME``,
``~/.ginga`` by default), where the command line reads them too, and
rescans the folder with them.

The scan is shared with the other CCD plugins: "CCD Masters" builds
masters from it, "CCD Calibrate" calibrates its light frames and "CCD
Watch" adds the frames that arrive to it.

**User Configuration**

Settings live in ``plugin_CCDBrowser.cfg`` in Ginga's settings folder:

* ``group_keys`` (``"frametype, exptime"``): default grouping.
* ``exptime_tolerance`` (``0.5``): exposures this close (s) form a group.
* ``recursive`` (``True``): scan sub-folders.
* ``last_folder`` (``None``): folder shown when the plugin opens.
* ``channel_suffix`` (``"_cal"``): raw frames clicked while a
  ``<channel>_cal`` channel is current go to ``<channel>``.
"""

import os

from ginga import GingaPlugin
from ginga.gw import Widgets

from .. import classify
from ..errors import CcdcalError
from ..describe import (aliases_text, format_number, frame_summary, group_summary,
                        parse_aliases_text, parse_group_keys, state_text, type_text)
from ..group import DEFAULT_GROUP_KEYS, DEFAULT_TOLERANCES, group_frames
from ..scan import scan_folder
from .common import (CAL_SUFFIX, ChecklistStrip, FRAME_TYPES, FolderRow, MessageArea,
                     OwnHelp, STATE_COLORS, TaskPanel, action_button, button_row,
                     finish_panel, float_spin, get_session, panel_box, plugin_button,
                     report_problem, wrapping_label)

__all__ = ["CCDBrowser"]

# The state beside the type: what an observer looks for first.
_COLUMNS = [("File / group", "name"), ("Frames", "count"), ("Type", "type"),
            ("State", "state"), ("Filter", "filter"), ("Exposure", "exptime"),
            ("CCD temp", "temp")]


class CCDBrowser(OwnHelp, GingaPlugin.GlobalPlugin):
    """Folder scan, header-grouped tree, type overrides (see module help)."""

    def __init__(self, fv):
        super().__init__(fv)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDBrowser")
        self.settings.add_defaults(group_keys=", ".join(DEFAULT_GROUP_KEYS),
                                   exptime_tolerance=DEFAULT_TOLERANCES["exptime"],
                                   recursive=True, last_folder=None,
                                   channel_suffix=CAL_SUFFIX, thumbnails=False)
        self.settings.load(onError="silent")

        self.session = get_session(fv)
        self.session.add_callback("scan-changed", self._scan_changed_cb)
        self.session.add_callback("states-changed", self._states_changed_cb)
        self.session.add_callback("scan-wanted", self._scan_wanted_cb)
        self.session.add_callback("masters-changed", lambda *a: self.update_checklist())
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
        # problem lines already sent to the Errors tab (quiet rescans repeat them)
        self._reported = set()

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
        # on its own row, so the panel stays narrow on a laptop
        row = Widgets.HBox()
        row.set_spacing(4)
        row.add_widget(Widgets.Label("Exposure +/-"), stretch=0)
        self.w.tolerance = float_spin(
            self.settings.get("exptime_tolerance"), 0.0, 3600.0, 0.1, decimals=2,
            tooltip="Exposures closer than this (seconds) form one group")
        self.w.tolerance.add_callback("value-changed", self.tolerance_cb)
        row.add_widget(self.w.tolerance, stretch=0)
        row.add_widget(Widgets.Label("s"), stretch=0)
        row.add_widget(Widgets.Label(""), stretch=1)
        top.add_widget(row, stretch=0)
        top.add_widget(button_row(self.w.scan, self.w.refresh, self.w.expand,
                                  self.w.collapse), stretch=0)

        self.task = TaskPanel(self.fv, "CCDBrowser")
        top.add_widget(self.task.get_widget(), stretch=0)

        tree = Widgets.TreeView(auto_expand=True, sortable=False,
                                selection="multiple", use_alt_row_color=True)
        tree.add_callback("selected", self.select_cb)
        # a panel that fits a laptop: the tree gives up room first, and scrolls
        tree.set_min_size(0, 80)
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
        self.w.watch = plugin_button(self.fv, "Watch...", "CCDWatch",
                                     "Open CCD Watch to calibrate new lights as they arrive")
        row.add_widget(Widgets.Label(""), stretch=1)
        row.add_widget(self.w.masters, stretch=0)
        row.add_widget(self.w.watch, stretch=0)
        top.add_widget(row, stretch=0)
        self.checklist = ChecklistStrip()
        top.add_widget(self.checklist.get_widget(), stretch=0)

        top.add_widget(self._build_aliases(), stretch=0)

        self.messages = MessageArea("Messages", max_height=90)
        top.add_widget(self.messages.get_widget(), stretch=0)

        finish_panel(self, container, top)
        self.gui_up = True

    def _build_aliases(self):
        exp = Widgets.Expander("Header spellings")
        box = Widgets.VBox()
        box.set_spacing(2)
        self.w.aliases_help = wrapping_label()
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
        self.checklist.set_match(None, "select a light")
        if self.session.scan is not None:
            self._show_scan(self.session.scan)
        else:
            self.messages.set_lines(["Choose a folder of raw frames and press Enter."])
        self.load_aliases(quiet=True)

    def stop(self):
        self._rescan_pending = None
        if self.task is not None and self.task.busy:
            self.task.cancel()
        self.settings.set(group_keys=", ".join(self.group_keys),
                          exptime_tolerance=float(self.w.tolerance.get_value()),
                          recursive=self.w.recursive.get_state(),
                          last_folder=self.session.folder)
        self.gui_up = False

    def close(self):
        self.fv.stop_global_plugin(str(self))
        return True

    def __str__(self):
        return "ccdbrowser"

    # -- state the other plugins and tests read ------------------------------
    @property
    def busy(self):
        """True while a scan runs."""
        return self.task is not None and self.task.busy

    @property
    def scan_result(self):
        """The last scan (shared with the other CCD plugins), or None."""
        return self.session.scan

    def cancel(self):
        """Stop the scan in progress."""
        if self.task is not None:
            self.task.cancel()

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
        lines = {str(problem) for problem in result.problems}
        for line in sorted(lines if not quiet else lines - self._reported):
            report_problem(self.fv, f"CCD Browser: {line}")
        self._reported = lines
        if self._rescan_pending is not None and self.gui_up:
            reuse, quiet = self._rescan_pending
            self._rescan_pending = None
            self.scan(reuse=reuse, folder=self.session.folder, quiet=quiet)

    def _scan_failed(self, message, cancelled):
        self._rescan_pending = None
        if cancelled:
            self.messages.set_lines(["Scan cancelled; the tree shows the previous scan."])
            return
        # The tree must not go on showing (and offering to Set type) the
        # frames of a folder the user has left.
        self.session.set_scan(None, None)
        self.messages.set_lines([f"Scan failed: {message}"])
        report_problem(self.fv, f"CCD Browser: scan failed: {message}")

    def _scan_changed_cb(self, session, scan):
        if self.gui_up:
            self._show_scan(scan)
            self.update_checklist()

    def _scan_wanted_cb(self, session, folder, quiet):
        """CCD Watch saw new frames in ``folder`` (or starts watching it)."""
        if not self.gui_up:
            self.fv.start_global_plugin(str(self), raise_tab=False)
        if quiet and session.folder != os.path.abspath(folder):
            return
        self.folder_row.set_path(folder)
        self.scan(reuse=True, folder=folder, quiet=quiet)

    def _states_changed_cb(self, session, paths):
        if not self.gui_up:
            return
        by_path = {os.path.abspath(f.path): p for p, f in self._leaf_frames.items()}
        for path in paths:
            if path in by_path:
                self._show_state(by_path[path], path)

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
            # the session was reset, or the folder could not be scanned
            self.groups = []
            self._path_frames, self._path_labels, self._leaf_frames = {}, {}, {}
            self.w.tree.clear()
            self._summary_lines = None
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
        for path, frame in self._leaf_frames.items():
            if frame.guessed or getattr(frame, "type_note", None):
                self.w.tree.set_cell_color(list(path), "type", fg="darkorange", bold=True)
            elif frame.type_source == "user":
                self.w.tree.set_cell_color(list(path), "type", fg="blue")
            self._show_state(path, frame.path)
        self.w.tree.set_optimal_column_widths()
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
                          "temp": format_number(frame.ccd_temp, "{:.1f}"), "state": ""}
            self._leaf_frames[path + (name,)] = frame

    def _show_state(self, tree_path, frame_path):
        """The State cell of one file row, coloured when something is missing."""
        state = self.session.frame_state(frame_path)
        if state is None:
            return
        item = self.w.tree._path_to_item(list(tree_path))
        if item is None:
            return
        column = [key for _, key in _COLUMNS].index("state")
        item.setText(column, state_text(*state))
        color = STATE_COLORS.get(state[0])
        if color:
            self.w.tree.set_cell_color(list(tree_path), "state", fg=color,
                                       bold=state[0] != "calibrated")

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
        overruled = [f for f in scan.frames if getattr(f, "type_note", None)]
        if overruled:
            lines.append(f"{len(overruled)} frame(s) are not the type their header "
                         "says (orange, \"not the header's\"): click one for why.")
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
            lines = frame_summary(frame)
            state = self.session.frame_state(frame.path)
            if state is not None:
                lines.insert(1, "calibration here: " + state_text(*state))
            self.messages.set_lines(lines)
            self.update_checklist()
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
        thumbnails = bool(self.settings.get("thumbnails", False))

        def loader(path, **kwargs):
            image = self.fv.load_image(path, **kwargs)
            # Ginga's Thumbs makes a frame's thumbnail on the GUI thread, from
            # cut levels of its own (100-250 ms for a 3085 x 2048 frame, and
            # again whenever the cuts change): the window froze at each
            # click.  The tree here is how a night is paged through, so the
            # frames it shows go without ("thumbnails = True" in
            # plugin_CCDBrowser.cfg brings them back).
            image.set(nothumb=not thumbnails)
            return image

        self.fv.nongui_do(self.fv.load_file, frame.path, chname=self.raw_channel(),
                          image_loader=loader)

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
        """Give ``frames`` the type ``frametype`` and rescan (kept for rescans).

        Only frames of the folder the tree shows; returns False (and
        changes nothing) for any other.
        """
        if frametype not in FRAME_TYPES:
            raise CcdcalError(f"unknown frame type {frametype!r}")
        shown = {os.path.abspath(f.path) for f in self.session.frames()}
        strays = [f for f in frames if os.path.abspath(f.path) not in shown]
        if strays or not frames:
            self.messages.set_lines([f"{strays[0].name if strays else 'nothing'}: not a "
                                     "frame of the folder shown; type not changed."])
            return False
        for frame in frames:
            self.session.overrides[frame.path] = frametype
        self.messages.set_lines([f"{len(frames)} frame(s) set to {frametype}; "
                                 "regrouping..."])
        return self.scan(reuse=True)

    # -- the checklist -------------------------------------------------------------
    def update_checklist(self):
        """Match the selected light to the masters (off the GUI thread) and show it."""
        if not self.gui_up:
            return
        frames = [f for f in self.selected_frames() if f.frametype == "light"]
        if not frames:
            self.checklist.set_match(None, "select a light")
            return
        self.checklist.check(self.fv, self.session, frames[-1],
                             self.session.masters_folder, lambda: self.gui_up)

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
        count = sum(len(v) for v in aliases.values())
        lines = [f"{count} spelling(s) saved in {path}."]
        folder = self.session.folder or self.folder_row.get_path()
        self.messages.set_lines(lines)
        if folder:
            # from scratch: unchanged files must be classified again
            self.scan(folder=folder)
            self.messages.set_lines(lines + [f"Rescanning {folder} with them ..."])
        return True
