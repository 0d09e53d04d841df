"""A night's frames grouped by header keywords, and a Ginga viewer beside them."""

import os
from html import escape

import ipywidgets as widgets

from .. import classify
from ..errors import CcdcalError
from ..fitsfile import read_image
from ..group import DEFAULT_GROUP_KEYS, group_frames
from ..scan import ScanResult, scan_folder
from .viewer import GingaView

__all__ = ["FrameBrowser", "frame_header_rows", "parse_group_keys"]

# Header cards worth showing beside the derived values (besides the ones
# `classify` reads): when and what was observed, and the detector setup.
_CONTEXT_KEYWORDS = ("DATE-OBS", "OBJECT", "XBINNING", "YBINNING", "NAXIS1", "NAXIS2",
                     "INSTRUME", "TELESCOP", "SWCREATE")
_INDENT = "\u2003"   # an em space: the <select> list keeps it, unlike plain spaces


def parse_group_keys(text):
    """``"frametype, EXPTIME"`` -> ``('frametype', 'EXPTIME')``; empty -> the default.

    Examples
    --------
    >>> parse_group_keys("imagetyp; exptime")
    ('imagetyp', 'exptime')
    """
    keys = tuple(k.strip() for k in text.replace(";", ",").split(",") if k.strip())
    return keys or DEFAULT_GROUP_KEYS


def _number(value, fmt="{:g}"):
    return "" if value is None else fmt.format(value)


def frame_header_rows(frame):
    """What the core understood of one frame, and the header cards behind it.

    Returns
    -------
    list of (str, str, str)
        ``(what, value, where it came from)``: type, exposure, filter,
        CCD temperature, binning, size, then the header cards that
        `ginga_ccdcal.classify` reads and a few that say what was observed.
    """
    source = {"guess": "guessed from the pixels", "user": "set by you",
              "unknown": "not in the header"}.get(frame.type_source, frame.type_source)
    rows = [("type", frame.frametype, source),
            ("exposure", f"{_number(frame.exptime)} s", "header"),
            ("filter", str(frame.filter), "header"),
            ("CCD temperature", f"{_number(frame.ccd_temp, '{:.1f}')} C", "header"),
            ("binning", f"{frame.binning[0]} x {frame.binning[1]}", "header"),
            ("size", f"{frame.shape[1]} x {frame.shape[0]} px (HDU {frame.hdu})", "data")]
    keywords = (classify.TYPE_KEYWORDS + classify.EXPTIME_KEYWORDS
                + classify.FILTER_KEYWORDS + classify.TEMPERATURE_KEYWORDS
                + _CONTEXT_KEYWORDS)
    for key in dict.fromkeys(keywords):
        if key in frame.header:
            rows.append((key, str(frame.header[key]), "card"))
    return rows


def _rows_html(rows):
    pad = "padding: 1px 6px; text-align: left"
    cells = "".join(f"<tr><td style='{pad}'><b>{escape(a)}</b></td>"
                    f"<td style='{pad}'>{escape(b)}</td>"
                    f"<td style='{pad}; color: #777'>{escape(c)}</td></tr>"
                    for a, b, c in rows)
    return (f"<table class='ccdcal-header' style='border-collapse: collapse; "
            f"font-size: 90%; line-height: 1.3'>{cells}</table>")


class FrameBrowser:
    """Frames grouped by header keywords (nested, with counts); click to view.

    Parameters
    ----------
    source : str, path-like or `~ginga_ccdcal.scan.ScanResult`
        A folder to scan (headers only) or a scan already made.
    group_keys : sequence of str or str
        Outermost first: derived names (``frametype``, ``exptime``,
        ``filter``, ``ccd_temp``, ``binning``) or any header keyword.

    Attributes
    ----------
    scan : ScanResult
    groups : list of `~ginga_ccdcal.group.Group`
    view : GingaView
        Shows the frame last clicked.
    widget : ipywidgets.Widget
        What the notebook displays (``browser`` alone in a cell does it).

    Examples
    --------
    >>> browser = FrameBrowser("night/", "frametype, filter")   # doctest: +SKIP
    >>> browser.select(browser.scan.of_type("light")[0].path)    # doctest: +SKIP
    """

    def __init__(self, source, group_keys=DEFAULT_GROUP_KEYS):
        self.scan = source if isinstance(source, ScanResult) else scan_folder(source)
        if isinstance(group_keys, str):
            group_keys = parse_group_keys(group_keys)
        self.keys_text = widgets.Text(value=", ".join(group_keys), description="Group by",
                                      layout=widgets.Layout(width="380px"))
        self.keys_text.on_submit(lambda _: self.regroup(self.keys_text.value))
        regroup = widgets.Button(description="Regroup", layout=widgets.Layout(width="90px"))
        regroup.on_click(lambda _: self.regroup(self.keys_text.value))
        self.tree = widgets.Select(options=[], rows=22,
                                   layout=widgets.Layout(width="330px"))
        self.tree.observe(self._selected_cb, names="value")
        self.view = GingaView(width=400, height=280, title="click a frame")
        self.summary = widgets.HTML(value="", layout=widgets.Layout(max_width="360px"))
        self.status = widgets.HTML(value="")
        self.widget = widgets.VBox([
            widgets.HBox([self.keys_text, regroup]), self.status,
            widgets.HBox([self.tree, self.view.widget, self.summary])],
            layout=widgets.Layout(border="1px solid #ccc", padding="6px"))
        self.widget.add_class("ccdcal-browser")
        self._frames = {f.path: f for f in self.scan.frames}
        self.groups = []
        self.regroup(group_keys)

    def regroup(self, group_keys):
        """Group again by other keywords (a string is split at commas)."""
        if isinstance(group_keys, str):
            group_keys = parse_group_keys(group_keys)
        self.group_keys = tuple(group_keys)
        self.keys_text.value = ", ".join(self.group_keys)
        self.groups = group_frames(self.scan.frames, self.group_keys)
        self.tree.options = self.tree_lines()
        lines = [f"{len(self.scan.frames)} frames in {escape(str(self.scan.folder))}"]
        lines += [f"not used: {escape(str(p))}" for p in self.scan.problems]
        self.status.value = "<br>".join(lines)

    def tree_lines(self):
        """The tree as the list shows it: ``[(text, ('group'|'frame', id)), ...]``.

        Groups read ``'exptime = 30  (10 frames)'``, indented by depth,
        with their frames below the innermost group.
        """
        lines = []
        for top in self.groups:
            for depth, group in top.walk():
                lines.append((f"{_INDENT * depth}\u25be {group.label}  "
                              f"({len(group.frames)} frames)", ("group", id(group))))
                if not group.children:
                    for frame in group.frames:
                        mark = "  [guessed]" if frame.guessed else ""
                        lines.append((f"{_INDENT * (depth + 1)}{frame.name}{mark}",
                                      ("frame", frame.path)))
        return lines

    def select(self, path):
        """Show the frame at ``path`` as if it had been clicked."""
        self.tree.value = ("frame", os.fspath(path))

    def _selected_cb(self, change):
        kind, ident = change["new"] or (None, None)
        if kind == "frame":
            self.show_frame(self._frames[ident])
        elif kind == "group":
            group = next(g for top in self.groups for _, g in top.walk() if id(g) == ident)
            table = ScanResult(self.scan.folder, frames=group.frames).table()
            table["file"] = [os.path.basename(p) for p in table["file"]]
            self.summary.value = (f"<b>{escape(group.label)}: {len(group.frames)} frames"
                                  f"</b>{table._repr_html_()}")

    def show_frame(self, frame):
        """Load ``frame`` into the viewer and its header summary beside it."""
        try:
            data, _, _ = read_image(frame.path)
        except CcdcalError as exc:
            self.summary.value = f"<b>cannot show it:</b> {escape(str(exc))}"
            return
        exptime = f", {frame.exptime:g} s" if frame.exptime is not None else ""
        self.view.show(data, title=f"{frame.name}: {frame.frametype}{exptime}")
        self.summary.value = _rows_html(frame_header_rows(frame))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
