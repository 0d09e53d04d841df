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
  that differ by a hair (300 and 300.1 s) fall in one group.
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

The scan is shared with the other CCD plugins: "CCD Masters" builds
masters from it and "CCD Calibrate" calibrates its light frames.

**User Configuration**

Settings live in ``plugin_CCDBrowser.cfg`` in Ginga's settings folder:

* ``group_keys`` (``"frametype, exptime"``): default grouping.
* ``recursive`` (``True``): scan sub-folders.
* ``last_folder`` (``None``): folder shown when the plugin opens.
"""

import os

from ginga import GingaPlugin
from ginga.gw import Widgets

from ..errors import CcdcalError
from ..group import DEFAULT_GROUP_KEYS, group_frames
from ..scan import scan_folder
from .common import (FRAME_TYPES, FolderRow, MessageArea, TaskPanel,
                     add_close_help, button_row, get_session, panel_box,
                     plugin_button)

__all__ = ["CCDBrowser", "parse_group_keys", "group_summary", "frame_summary"]

_COLUMNS = [("File / group", "name"), ("Frames", "count"), ("Type", "type"),
            ("Filter", "filter"), ("Exposure", "exptime"), ("CCD temp", "temp")]


def parse_group_keys(text):
    """``"frametype, EXPTIME"`` -> ``('frametype', 'exptime')``; empty -> default.

    Derived names are kept lower-case, header keywords as the user typed
    them (look-ups are case-insensitive anyway).
    """
    keys = tuple(k.strip() for k in text.replace(";", ",").split(",") if k.strip())
    return keys or DEFAULT_GROUP_KEYS


def _fmt_number(value, fmt="{:g}"):
    if value is None:
        return ""
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _type_text(frame):
    if frame.type_source == "guess":
        return f"{frame.frametype} (guessed)"
    if frame.type_source == "user":
        return f"{frame.frametype} (set by you)"
    return frame.frametype


def _span(values, unit, fmt="{:g}"):
    values = sorted(v for v in values if v is not None)
    if not values:
        return "not in headers"
    if values[0] == values[-1]:
        return f"{fmt.format(values[0])} {unit}"
    return f"{fmt.format(values[0])} to {fmt.format(values[-1])} {unit}"


def frame_summary(frame):
    """Lines describing one frame, for the message area."""
    source = {"guess": "guessed from the pixels", "user": "set by you",
              "unknown": "not in the header"}.get(frame.type_source,
                                                  f"from {frame.type_source}")
    return [f"{frame.name}: {frame.frametype} ({source})",
            f"exposure {_fmt_number(frame.exptime)} s, filter {frame.filter}, "
            f"CCD temperature {_fmt_number(frame.ccd_temp, '{:.1f}')} C",
            f"{frame.shape[1]}x{frame.shape[0]} px, binning "
            f"{frame.binning[0]}x{frame.binning[1]}, HDU {frame.hdu}",
            frame.path]


def group_summary(path_labels, frames):
    """Lines describing a group of frames, for the message area.

    This is a header summary (counts, ranges), not image statistics.
    """
    lines = [" / ".join(path_labels) + f": {len(frames)} frame(s)"]
    if not frames:
        return lines
    types = {}
    for f in frames:
        types[f.frametype] = types.get(f.frametype, 0) + 1
    lines.append("types: " + ", ".join(f"{n} {t}" for t, n in sorted(types.items())))
    guessed = sum(1 for f in frames if f.guessed)
    if guessed:
        lines.append(f"{guessed} type(s) guessed from the pixels")
    lines.append("exposure: " + _span([f.exptime for f in frames], "s"))
    temps = [f.ccd_temp for f in frames]
    lines.append("CCD temperature: " + _span(temps, "C", "{:.1f}"))
    filters = sorted({str(f.filter) for f in frames if f.filter is not None})
    lines.append("filters: " + (", ".join(filters) if filters else "none"))
    shapes = sorted({f"{f.shape[1]}x{f.shape[0]} bin {f.binning[0]}x{f.binning[1]}"
                     for f in frames})
    lines.append("image size: " + ", ".join(shapes))
    size = sum(f.size for f in frames)
    lines.append(f"on disk: {size / 1e6:.1f} MB")
    return lines


class CCDBrowser(GingaPlugin.GlobalPlugin):
    """Folder scan, header-grouped tree, type overrides (see module help)."""

    def __init__(self, fv):
        super().__init__(fv)
        prefs = self.fv.get_preferences()
        self.settings = prefs.create_category("plugin_CCDBrowser")
        self.settings.add_defaults(group_keys=", ".join(DEFAULT_GROUP_KEYS),
                                   recursive=True, last_folder=None)
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

        self.w.scan = Widgets.Button("Scan")
        self.w.scan.set_tooltip("Scan the folder from scratch")
        self.w.scan.add_callback("activated", lambda w: self.scan())
        self.w.refresh = Widgets.Button("Refresh")
        self.w.refresh.set_tooltip("Rescan, reading only new or changed files")
        self.w.refresh.add_callback("activated", lambda w: self.refresh())
        self.w.expand = Widgets.Button("Expand all")
        self.w.expand.add_callback("activated", lambda w: self.w.tree.expand_all(True))
        self.w.collapse = Widgets.Button("Collapse")
        self.w.collapse.add_callback("activated",
                                     lambda w: self.w.tree.expand_all(False))
        top.add_widget(button_row(self.w.scan, self.w.refresh, self.w.expand,
                                  self.w.collapse), stretch=0)

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
        self.w.set_type = Widgets.Button("Set type")
        self.w.set_type.set_tooltip("Use this type for the selected files "
                                    "(kept for rescans)")
        self.w.set_type.add_callback("activated", self.set_type_cb)
        row.add_widget(self.w.set_type, stretch=0)
        self.w.masters = plugin_button(self.fv, "Masters...", "CCDMasters",
                                       "Open CCD Masters to build masters from this scan")
        row.add_widget(Widgets.Label(""), stretch=1)
        row.add_widget(self.w.masters, stretch=0)
        top.add_widget(row, stretch=0)

        self.messages = MessageArea("Messages")
        top.add_widget(self.messages.get_widget(), stretch=0)

        add_close_help(self, top)

        container.add_widget(top, stretch=1)
        self.gui_up = True

    def start(self):
        self.group_keys = parse_group_keys(self.settings.get("group_keys", ""))
        self.w.group_by.set_text(", ".join(self.group_keys))
        folder = self.session.folder or self.settings.get("last_folder", None)
        self.folder_row.set_path(folder)
        if self.session.scan is not None:
            self._show_scan(self.session.scan)
        else:
            self.messages.set_lines(["Choose a folder of raw frames and press Enter."])

    def stop(self):
        if self.task is not None and self.task.busy:
            self.task.cancel()
        self.settings.set(group_keys=", ".join(self.group_keys),
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
        if self.task is not None:
            self.task.cancel()

    # -- scanning ------------------------------------------------------------
    def set_folder(self, folder):
        """Show ``folder`` in the entry and scan it."""
        self.folder_row.set_path(folder)
        return self.scan()

    def folder_cb(self, row, path):
        self.scan()

    def scan(self, reuse=False):
        """Scan the folder in the entry off the GUI thread.

        Parameters
        ----------
        reuse : bool
            Pass the previous result so unchanged files are not re-read.

        Returns
        -------
        bool
            False if nothing was started (no folder, or a scan running).
        """
        folder = self.folder_row.get_path()
        if not folder:
            self.messages.set_lines(["Type or choose a folder first."])
            return False
        if self.busy:
            return False
        folder = os.path.abspath(folder)
        previous = None
        if reuse and self.session.folder == folder:
            previous = self.session.scan
        recursive = self.w.recursive.get_state()
        overrides = dict(self.session.overrides)
        self.messages.set_lines([f"Scanning {folder} ..."])

        def work(progress, cancel):
            return scan_folder(folder, recursive=recursive, previous=previous,
                               overrides=overrides, progress=progress, cancel=cancel)

        return self.task.run(work, label="Scanning",
                             on_done=lambda result: self.session.set_scan(folder, result),
                             on_error=self._scan_failed)

    def refresh(self):
        """Rescan the folder, re-reading only new or changed files."""
        return self.scan(reuse=True)

    def _scan_failed(self, message, cancelled):
        if cancelled:
            self.messages.set_lines(["Scan cancelled; the tree shows the previous scan."])
        else:
            self.messages.set_lines([f"Scan failed: {message}"])

    def _scan_changed_cb(self, session, scan):
        if self.gui_up:
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

    def _show_scan(self, scan):
        self.groups = group_frames(scan.frames, self.group_keys)
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
        self.messages.set_lines(self._scan_lines(scan))

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
            node[name] = {"name": name, "count": "", "type": _type_text(frame),
                          "filter": frame.filter or "",
                          "exptime": _fmt_number(frame.exptime),
                          "temp": _fmt_number(frame.ccd_temp, "{:.1f}")}
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
        """Load ``frame`` in the current channel with Ginga's loader."""
        channel = self.fv.get_current_channel()
        chname = channel.name if channel is not None else None
        self.fv.nongui_do(self.fv.load_file, frame.path, chname=chname)

    # -- type overrides ------------------------------------------------------
    def set_type_cb(self, w):
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

