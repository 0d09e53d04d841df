"""GUI pieces the three CCD plugins share, written once.

* `Session` -- the state the plugins share inside one viewer (the
  browser's scan, the user's type overrides, where masters and calibrated
  frames go), with callbacks so each plugin follows the others.
  `get_session(fv)` gives the viewer's one session.
* `TaskPanel` -- progress bar, status line and Cancel button, plus the
  runner that does work off the GUI thread and comes back to it.
* `FolderRow` -- caption, path entry, "Browse..." button.
* `MessageArea` -- a read-only text area for problems and summaries.
* `panel_box`, `finish_panel`, `add_close_help`, `button_row`, `action_button`,
  `plugin_button`, `float_spin` -- the small widget patterns every plugin
  panel repeats.
* `show_calibrated` -- a calibrated frame shown in its ``<channel>_cal``
  channel with cut levels that show the sky (CCD Calibrate, CCD Watch);
  `calibrated_image` makes its Ginga image off the GUI thread.
* `with_cut_levels`, `show_image`, `load_and_show` -- an image's cut
  levels worked out off the GUI thread, and images shown without one
  long freeze.
* `collect_garbage` -- garbage collected on the GUI thread, cheaply.
* `show_banner`, `clear_banner` -- a warning written over a channel's
  image (a light calibrated with steps missing, a watch with no masters).
* `ChecklistStrip` -- "bias ✓ dark ✓ flat ✗" for one set-up, the same in
  every CCD plugin.
* `report_problem` -- a problem line also sent to Ginga's Errors tab.

Nothing here does calibration: the work functions handed to `TaskPanel`
call the GUI-free core.
"""

import gc
import os
import sys
import textwrap
import threading
import traceback
import weakref

from astropy.io import fits
from ginga.AstroImage import AstroImage
from ginga.AutoCuts import get_autocuts
from ginga.gw import Widgets
from ginga.misc.Callback import Callbacks

from ..classify import FRAME_TYPES
from ..describe import CROSS, TICK, checklist_items
from ..errors import Cancelled, CcdcalError
from ..masters import load_masters
from ..match import match_light
from ..progress import CancelToken

__all__ = ["Session", "get_session", "default_output_folder", "TaskPanel",
           "FolderRow", "MessageArea", "FRAME_TYPES", "button_row", "panel_box",
           "add_close_help", "finish_panel", "show_help", "OwnHelp", "wrapping_label",
           "action_button", "plugin_button", "float_spin", "CAL_SUFFIX",
           "ChecklistStrip", "show_banner", "clear_banner", "banner_text",
           "report_problem", "STATE_COLORS", "result_channel_name",
           "prepare_result_channel", "show_calibrated", "collect_garbage",
           "calibrated_image", "with_cut_levels", "show_image", "load_and_show"]

#: Suffix of the channel calibrated frames of a channel are shown in.
CAL_SUFFIX = "_cal"

_sessions = weakref.WeakKeyDictionary()


def default_output_folder(raw_folder):
    """Where products of ``raw_folder`` go unless the user says otherwise.

    A sibling ``<raw>_reduced`` folder: raw data folders are often
    read-only, and keeping products out of them means a rescan never
    meets them.
    """
    raw_folder = os.path.abspath(os.fspath(raw_folder)).rstrip(os.sep)
    return raw_folder + "_reduced"


class Session(Callbacks):
    """What the CCD plugins of one viewer share.

    Callbacks (always made on the GUI thread):

    ``scan-changed(session, scan)``
        a new scan result (or None) for ``folder``.
    ``masters-changed(session, folder)``
        masters were built in, or the user chose, ``masters_folder``.
    ``masters-stale(session, masters)``
        raw frames newer than these masters (a list of
        `~ginga_ccdcal.masters.MasterFrame`) just arrived (watch mode).
    ``states-changed(session, paths)``
        the calibration state of these raw frames changed (`frame_states`).
    ``scan-wanted(session, folder, quiet)``
        a plugin (CCD Watch) wants ``folder`` scanned again -- new frames
        arrived; the browser rescans it, re-reading only new files.

    Attributes
    ----------
    folder : str or None
        The raw folder the browser scanned.
    scan : ginga_ccdcal.scan.ScanResult or None
    overrides : dict
        ``{path: frametype}`` the user set in the browser; every rescan
        passes them to `~ginga_ccdcal.scan.scan_folder`.
    output_folder, masters_folder : str or None
        Where calibrated frames and masters go; None means the default
        for ``folder`` (`default_output_folder`, its ``masters``).
    aliases : dict or None
        The user's header spellings (`ginga_ccdcal.classify.load_aliases`)
        as the browser loaded or saved them; pass them to the core
        wherever a frame is read (``aliases=``).
    frame_states : dict
        ``{raw path: (state, why)}``: what the last calibration of a raw
        frame gave (`ginga_ccdcal.describe.FRAME_STATES`), set by CCD
        Calibrate and CCD Watch, shown by the browser.
    """

    def __init__(self):
        super().__init__()
        for name in ("scan-changed", "masters-changed", "masters-stale",
                     "states-changed", "scan-wanted"):
            self.enable_callback(name)
        self.frame_states = {}
        self._masters_cache = {}
        self._masters_lock = threading.Lock()
        self.folder = None
        self.scan = None
        self.overrides = {}
        self.aliases = None
        self._output_folder = None
        self._masters_folder = None

    def reset(self):
        """Forget the scan, the overrides, the states and the chosen folders."""
        self.overrides = {}
        self.frame_states = {}
        self._output_folder = self._masters_folder = None
        self.set_scan(None, None)
        self.make_callback("masters-changed", self.masters_folder)

    # -- folders -----------------------------------------------------------
    @property
    def output_folder(self):
        if self._output_folder:
            return self._output_folder
        if self.folder:
            return default_output_folder(self.folder)
        return None

    @output_folder.setter
    def output_folder(self, folder):
        self._output_folder = os.fspath(folder) if folder else None

    @property
    def masters_folder(self):
        if self._masters_folder:
            return self._masters_folder
        out = self.output_folder
        return os.path.join(out, "masters") if out else None

    def set_masters_folder(self, folder):
        """Choose where masters live and tell the plugins."""
        self._masters_folder = os.fspath(folder) if folder else None
        self.make_callback("masters-changed", self.masters_folder)

    def masters_built(self):
        """Tell the plugins that ``masters_folder`` has new content."""
        self.make_callback("masters-changed", self.masters_folder)

    def report_stale(self, masters):
        """Tell the plugins that new raw frames make ``masters`` out of date."""
        self.make_callback("masters-stale", list(masters))

    def set_frame_state(self, path, state, why=""):
        """Record what calibrating raw frame ``path`` gave, and tell the plugins."""
        path = os.path.abspath(os.fspath(path))
        self.frame_states[path] = (state, why or "")
        self.make_callback("states-changed", [path])

    def frame_state(self, path):
        """``(state, why)`` of raw frame ``path``, or None if never calibrated here."""
        return self.frame_states.get(os.path.abspath(os.fspath(path)))

    def want_scan(self, folder, quiet=True):
        """Ask the browser to rescan ``folder`` (new frames arrived)."""
        self.make_callback("scan-wanted", os.fspath(folder), quiet)

    # -- scan --------------------------------------------------------------
    def set_scan(self, folder, scan):
        """Record a new scan of ``folder`` and tell the plugins."""
        folder = os.fspath(folder) if folder else None
        if folder is not None and folder != self.folder:
            # overrides name files of the old folder
            self.overrides = {p: t for p, t in self.overrides.items()
                              if folder and p.startswith(folder + os.sep)}
        self.folder = folder
        self.scan = scan
        self.make_callback("scan-changed", scan)

    def frames(self, frametype=None):
        """Frames of the current scan (of one type if given)."""
        if self.scan is None:
            return []
        if frametype is None:
            return list(self.scan.frames)
        return self.scan.of_type(frametype)

    def masters(self):
        """Masters found in ``masters_folder`` (empty if none); see `masters_in`."""
        return self.masters_in(self.masters_folder)

    def masters_in(self, folder):
        """The masters in ``folder``, read again only when the folder changed.

        Every plugin asks on each image change; re-reading every master's
        header each time is what made the GUI stall on large nights.  The
        folder's signature (names, sizes, modification times: one
        directory listing) says when the cached list is out of date.  Safe
        to call from worker threads.
        """
        if not folder:
            return []
        folder = os.path.abspath(os.fspath(folder))
        signature = _folder_signature(folder)
        with self._masters_lock:
            cached = self._masters_cache.get(folder)
        if cached is not None and cached[0] == signature:
            return list(cached[1])
        masters = load_masters(folder)
        with self._masters_lock:
            self._masters_cache[folder] = (signature, masters)
        return list(masters)


def _folder_signature(folder):
    """``(name, size, mtime)`` of each file in ``folder``: changes when a
    master is added, rebuilt or removed (one listing, no file read)."""
    try:
        with os.scandir(folder) as entries:
            return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                                for e in entries if e.is_file()))
    except OSError:
        return None


def get_session(fv):
    """The `Session` shared by the CCD plugins of viewer ``fv``."""
    session = _sessions.get(fv)
    if session is None:
        session = _sessions[fv] = Session()
    return session


def wrapping_label(text=""):
    """A left-aligned label whose long lines wrap instead of widening the panel."""
    label = Widgets.Label(text, halign="left")
    widget = label.get_widget()
    if hasattr(widget, "setWordWrap"):      # Qt; other toolkits keep one line
        widget.setWordWrap(True)
    return label


def button_row(*buttons):
    """An HBox of buttons, left-aligned."""
    row = Widgets.HBox()
    row.set_spacing(3)
    for button in buttons:
        row.add_widget(button, stretch=0)
    row.add_widget(Widgets.Label(""), stretch=1)
    return row


def panel_box():
    """The VBox a plugin panel is built in (the border and spacing all ours use)."""
    box = Widgets.VBox()
    box.set_border_width(4)
    box.set_spacing(4)
    return box


def action_button(text, tooltip, action):
    """A button calling ``action()`` (no arguments) when pressed."""
    button = Widgets.Button(text)
    if tooltip:
        button.set_tooltip(tooltip)
    button.add_callback("activated", lambda w: action())
    return button


#: The documentation page of the plugins, once built from this package's
#: source (``python3 -m sphinx -b html docs docs/_build/html``).
DOCS_PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docs", "_build", "html", "plugins.html")


def show_help(plugin):
    """Show this package's documentation of ``plugin``, never Ginga's manual.

    Ginga's own Help offers its online manual, which has no page for our
    plugins.  With the package's documentation built (a source checkout),
    the plugin's section of it opens in the web browser; otherwise the
    plugin's own help text (its module docstring, the same text) opens in
    a Ginga tab.  Returns the URL or the tab's name.
    """
    doc = sys.modules[type(plugin).__module__].__doc__ or ""
    name = type(plugin).__name__
    if os.path.exists(DOCS_PAGE):
        # section anchors are the titles in lower case: "CCD Browser" -> ccd-browser
        anchor = "ccd-" + name[3:].lower()
        url = "file://" + DOCS_PAGE + "#" + anchor
        plugin.fv.show_help_url(url)
        return url
    plugin.fv.show_help_text(name, doc.strip() + "\n\nThe full documentation of "
                             "ginga-ccdcal: 'The Ginga plugins' in docs/plugins.rst.")
    return f"HELP: {name}"


class OwnHelp:
    """Mixin: Ginga's calls to ``plugin.help()`` show our documentation (`show_help`)."""

    def help(self, text_kind="rst"):
        return show_help(self)


def add_close_help(plugin, box):
    """Add the "Close" / "Help" row at the bottom of ``box``.

    "Close" calls ``plugin.close()``, "Help" ``plugin.help()`` (our plugins'
    is `OwnHelp`'s: this package's documentation).  Returns the row.
    """
    row = button_row(action_button("Close", "Close this plugin", plugin.close),
                     action_button("Help", "How to use this plugin", plugin.help))
    box.add_widget(row, stretch=0)
    return row


def finish_panel(plugin, container, panel):
    """Put a plugin's ``panel`` into Ginga's ``container``, laptop-proof.

    The panel scrolls when the window is smaller than it wants (no panel
    may force the main window taller than a 1280x800 screen), and the
    "Close" / "Help" row stays in view below it.  Returns that row.
    """
    scroll = Widgets.ScrollArea()
    scroll.set_widget(panel)
    area = scroll.get_widget()
    if hasattr(area, "verticalScrollBar"):      # Qt
        # The panel keeps the width it needs (Ginga's splitter gives it);
        # it scrolls up and down, and sideways only if it grows later.
        area.setMinimumWidth(panel.get_widget().minimumSizeHint().width()
                             + area.verticalScrollBar().sizeHint().width() + 4)
    outer = Widgets.VBox()
    outer.set_spacing(2)
    outer.add_widget(scroll, stretch=1)
    row = add_close_help(plugin, outer)
    container.add_widget(outer, stretch=1)
    return row


def plugin_button(fv, text, name, tooltip=None):
    """A button that opens (or raises) the global plugin ``name``."""
    return action_button(text, tooltip,
                         lambda: fv.start_global_plugin(name, raise_tab=True))


def float_spin(value, low, high, step, decimals=1, tooltip=None):
    """A spin box for a float between ``low`` and ``high``."""
    spin = Widgets.SpinBox(dtype=float)
    spin.set_limits(low, high, step)
    spin.set_decimals(decimals)
    spin.set_value(float(value))
    if tooltip:
        spin.set_tooltip(tooltip)
    return spin


def result_channel_name(chname, suffix=CAL_SUFFIX):
    """``'Image'`` -> ``'Image_cal'``: where a channel's calibrated frames go.

    A result channel maps to itself, so results never land in
    ``Image_cal_cal``.
    """
    return chname if chname.endswith(suffix) else chname + suffix


def prepare_result_channel(fv, chname, autocut_method="zscale"):
    """Create channel ``chname`` if needed, with cut levels that show the sky.

    A calibrated frame is mostly sky near zero with a few bright stars:
    min/max cuts would show black, "zscale" shows the background noise
    and faint stars.  The channel takes the cut levels an image brings
    (Ginga's "remember cuts", ``profile_use_cuts``): those `with_cut_levels`
    worked out off the GUI thread, so the viewer does not compute them
    again while the window waits.

    Ginga's Thumbs plugin makes no thumbnails of this channel's images
    (``genthumb`` off, as Ginga advises for channels an automated process
    fills): a thumbnail of a full-size frame is made on the GUI thread,
    through Ginga's own cut levels, 50-150 ms each time an image is shown.
    The channel's arrows and the plugins' own lists page through them.
    """
    channel = fv.get_channel_on_demand(chname)
    settings = channel.viewer.get_settings()
    if settings.get("autocut_method") != autocut_method or settings.get("autocut_params"):
        channel.viewer.set_autocut_params(autocut_method)
    channel.viewer.enable_autocuts("override")
    settings.set(profile_use_cuts=True)
    channel.settings.set(genthumb=False)
    return channel


def with_cut_levels(image, autocut_method="zscale", logger=None):
    """Work out the cut levels of ``image`` the way a channel would, off the GUI thread.

    Ginga's viewer computes the automatic cut levels of each image it is
    given, on the GUI thread (tens of milliseconds on a full-size frame,
    more through its image proxy).  The same Ginga algorithm
    (`ginga.AutoCuts`, default parameters, as `prepare_result_channel`
    sets them) run here on the image's pixels gives the same levels; they
    ride along with the image and `show_image` hands them to the channel.

    Parameters
    ----------
    image : ginga.AstroImage.AstroImage
    autocut_method : str
        A Ginga autocut method ("zscale", "minmax", ...).
    logger : logging.Logger, optional

    Returns
    -------
    ginga.AstroImage.AstroImage
        ``image``, with ``ccdcal_cuts = (method, low, high)`` set.
    """
    autocuts = get_autocuts(autocut_method)(logger or image.logger)
    low, high = autocuts.calc_cut_levels(image)
    image.set(ccdcal_cuts=(autocut_method, float(low), float(high)))
    return image


def _hand_over_cut_levels(channel, image):
    """Give the channel the cut levels `with_cut_levels` worked out, if it
    would compute the same ones itself now.

    Ginga's own rule (``ImageView.apply_profile_or_settings``): a new
    image gets automatic cut levels unless ``autocuts`` is "off" (the
    user set levels by hand in an "override" channel: they stay).  The
    levels are used only when the channel still computes them with the
    method they were made with, default parameters; otherwise the viewer
    computes them as it always does.
    """
    cuts = image.get("ccdcal_cuts", None)
    if cuts is None:
        return
    method, low, high = cuts
    settings = channel.viewer.get_settings()
    if (settings.get("autocuts") != "off" and settings.get("profile_use_cuts")
            and settings.get("autocut_method") == method
            and not settings.get("autocut_params")):
        channel.get_image_profile(image).set(cuts=(low, high))


def load_and_show(fv, paths, chname, autocut_method="zscale", on_done=None):
    """Load FITS files into channel ``chname`` off the GUI thread; show the last.

    Ginga's loader (``load_file``) reads each file in a worker thread and
    adds it to the channel (so Ginga can page through them and reload
    them); their cut levels are worked out there too (`with_cut_levels`).
    The last one readable is then shown (`show_image`).  Call on the GUI
    thread; ``on_done()`` runs on it when all is done.
    """
    prepare_result_channel(fv, chname, autocut_method)

    def loader(path, **kwargs):
        return with_cut_levels(fv.load_image(path, **kwargs), autocut_method, fv.logger)

    def work():
        last = None
        try:
            for path in paths:
                # None when unreadable: Ginga said why in its Errors tab
                last = fv.load_file(path, chname=chname, display_image=False,
                                    image_loader=loader) or last
        finally:
            fv.gui_do(done, last)

    def done(image):
        if image is not None:
            show_image(fv, image, chname, added=True, then=on_done)
        elif on_done is not None:
            on_done()

    fv.nongui_do(work)


def show_image(fv, image, chname, raise_channel=True, added=False, then=None):
    """Show ``image`` in channel ``chname`` without one long freeze (GUI thread).

    Ginga, adding an image to a channel that is not the current one,
    makes it current *and* runs every queued GUI job inside that same
    call: the viewer's draw, the thumbnail, the Info panel of a new
    channel, one after the other while the window waits.  So the channel
    is made current first, and the image follows in a later turn of the
    event loop; each of Ginga's jobs then runs in its own turn.  Cut
    levels `with_cut_levels` worked out come along (`_hand_over_cut_levels`).

    Parameters
    ----------
    fv : ginga.rv.Control.GingaShell
    image : ginga.AstroImage.AstroImage
    chname : str
    raise_channel : bool
        Make ``chname`` the current channel.
    added : bool
        ``image`` is in the channel already: switch to it.
    then : callable, optional
        Called (no arguments, GUI thread) once the image is shown.
    """
    channel = fv.get_channel_on_demand(chname)

    def raise_channel_then_show():
        if raise_channel:
            fv.change_channel(chname)
        # queued only now, so not run inside change_channel's own round
        _hand_over_cut_levels(channel, image)
        if added:       # already in the channel (``load_file(display_image=False)``)
            fv.gui_do(channel.switch_image, image)
        else:
            fv.gui_do(fv.add_image, image.get("name"), image, chname=chname)
        if then is not None:
            fv.gui_do(then)

    # not inside the caller's turn either: its own work comes first
    fv.gui_do(raise_channel_then_show)


def calibrated_image(ccd, path, autocut_method="zscale", logger=None):
    """The Ginga image of a calibrated frame, made off the GUI thread.

    Made from the frame in memory (no re-read of what was just written)
    and named ``<raw name>_cal``; its ``path`` is the file written, so
    Ginga can reload it if it drops it from memory.  Its cut levels come
    with it (`with_cut_levels`).

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        Data and header (its provenance) of the calibrated frame.
    path : str
        The file it was written to.
    autocut_method : str
        Cut levels of the channel it goes to (`prepare_result_channel`).
    logger : logging.Logger, optional

    Returns
    -------
    ginga.AstroImage.AstroImage
    """
    image = AstroImage(logger=logger)
    image.load_hdu(fits.PrimaryHDU(data=ccd.data, header=ccd.header))
    name = os.path.splitext(os.path.basename(path))[0] + "_cal"
    image.set(name=name, path=path)
    return with_cut_levels(image, autocut_method, logger)


def show_calibrated(fv, image, chname, autocut_method="zscale", then=None):
    """Show a calibrated frame (`calibrated_image`) in ``chname`` and make it current.

    GUI thread; the image appears in the next turn of the event loop
    (`show_image`).

    Parameters
    ----------
    fv : ginga.rv.Control.GingaShell
    image : ginga.AstroImage.AstroImage
        Made by `calibrated_image` in a worker thread.
    chname : str
    autocut_method : str
        Cut levels of the channel (`prepare_result_channel`).
    then : callable, optional
        Called (no arguments, GUI thread) once the image is shown.

    Returns
    -------
    ginga.AstroImage.AstroImage
    """
    prepare_result_channel(fv, chname, autocut_method)
    show_image(fv, image, chname, then=then)
    return image


def collect_garbage():
    """Collect garbage now (on the GUI thread), walking only what is new.

    A full collection walks every object Python tracks: with Ginga,
    astropy and Qt loaded that is 300 000 objects at start-up and over a
    million after a while, 150 ms to a second during which the viewer
    cannot draw or answer a click.  Nearly all of them live as long as
    the viewer (modules, classes, windows, the scan), so what survives a
    collection is frozen (`gc.freeze`): the next collection walks only
    the objects made since.  Reference counting still frees frozen
    objects as usual (images a channel drops, a scan replaced); only a
    reference cycle among objects that survived an earlier collection is
    never reclaimed -- and so never freed off the GUI thread either.
    The viewer calls this right after start-up
    (`ginga_ccdcal.gui.viewer`), every `TaskPanel` before its work.
    """
    gc.collect()
    gc.freeze()


class RunsTasks:
    """Mixin for plugins whose long work runs through a `TaskPanel` (``self.task``).

    Gives the ``busy`` flag tests and other plugins wait on, and ``cancel``;
    a plugin with more going on extends them.
    """

    task = None

    @property
    def busy(self):
        """True while the plugin's background work runs."""
        return self.task is not None and self.task.busy

    def cancel(self):
        """Ask the background work to stop (it stops between units)."""
        if self.task is not None:
            self.task.cancel()


class TaskPanel:
    """Progress bar + status + Cancel, and the runner behind them.

    ``run(work, on_done=..., on_error=...)`` calls ``work(progress,
    cancel)`` on a Ginga worker thread; ``progress(done, total, message)``
    moves the bar (updates are coalesced onto the GUI thread), the Cancel
    button sets ``cancel``.  When ``work`` ends, ``on_done(result)`` or
    ``on_error(message, cancelled)`` runs on the GUI thread.  A
    `~ginga_ccdcal.errors.CcdcalError` becomes its message; anything else
    is a bug: its traceback goes to the log, its one-line summary to the
    user.

    Parameters
    ----------
    fv : ginga.rv.Control.GingaShell
    name : str
        Used in log messages.
    """

    def __init__(self, fv, name="task"):
        self.fv = fv
        self.logger = fv.logger
        self.name = name
        self._token = None
        self._busy = False
        self._lock = threading.Lock()
        self._oneshot = f"ccdcal-progress-{id(self)}"

        self.widget = Widgets.VBox()
        self.widget.set_spacing(2)
        row = Widgets.HBox()
        row.set_spacing(4)
        self.bar = Widgets.ProgressBar()
        self.bar.set_value(0.0)
        row.add_widget(self.bar, stretch=1)
        self.cancel_button = Widgets.Button("Cancel")
        self.cancel_button.set_tooltip("Stop the work in progress")
        self.cancel_button.add_callback("activated", lambda w: self.cancel())
        self.cancel_button.set_enabled(False)
        row.add_widget(self.cancel_button, stretch=0)
        self.widget.add_widget(row, stretch=0)
        self.status = wrapping_label()
        self.widget.add_widget(self.status, stretch=0)

    @property
    def busy(self):
        """True while a task runs (until its completion callback ran)."""
        return self._busy

    def get_widget(self):
        return self.widget

    def run(self, work, *, on_done, on_error=None, label="Working"):
        """Start ``work(progress, cancel)`` off the GUI thread.

        Returns False (and starts nothing) if a task is already running.
        """
        with self._lock:
            if self._busy:
                return False
            self._busy = True
        # Free Qt objects of closed channels and plugins now, on the GUI
        # thread: work that allocates a lot (matplotlib) would otherwise
        # trigger the collection in the worker thread, and Qt objects
        # destroyed off the GUI thread crash the viewer.
        collect_garbage()
        token = self._token = CancelToken()
        self.bar.set_value(0.0)
        self.status.set_text(f"{label}...")
        self.cancel_button.set_enabled(True)

        def progress(done, total, message=""):
            fraction = (done / total) if total else 0.0
            self.fv.gui_do_oneshot(self._oneshot, self._show_progress,
                                   fraction, label, message)

        def worker():
            result = error = None
            cancelled = False
            try:
                result = work(progress, token)
            except Cancelled as exc:
                error, cancelled = str(exc), True
            except CcdcalError as exc:
                error = str(exc)
            except Exception as exc:  # a bug: log it fully, tell the user briefly
                self.logger.error(f"{self.name}: unexpected error: {exc}\n"
                                  + traceback.format_exc())
                error = (f"unexpected error ({exc.__class__.__name__}: {exc}); "
                         "details are in Ginga's log")
            self.fv.gui_do(self._finish, result, error, cancelled,
                           on_done, on_error, label)

        self.fv.nongui_do(worker)
        return True

    def cancel(self):
        """Ask the running task to stop at its next check."""
        if self._token is not None and self._busy:
            self._token.cancel()
            self.status.set_text("Cancelling...")

    def _show_progress(self, fraction, label, message):
        if not self._busy:
            return
        self.bar.set_value(max(0.0, min(1.0, fraction)))
        self.status.set_text(f"{label}: {message}" if message else label)

    def _finish(self, result, error, cancelled, on_done, on_error, label):
        self._busy = False
        self._token = None
        self.cancel_button.set_enabled(False)
        if error is None:
            self.bar.set_value(1.0)
            self.status.set_text(f"{label}: done")
            on_done(result)
        else:
            self.status.set_text(f"{label}: cancelled" if cancelled
                                 else f"{label}: failed")
            if on_error is not None:
                on_error(error, cancelled)


class FolderRow:
    """``Caption [path entry] [Browse...]`` choosing a folder.

    The ``activated`` callback, ``(row, path)``, fires when the user
    presses Enter in the entry or picks a folder in the dialog.

    Parameters
    ----------
    caption : str
    tooltip : str, optional
    """

    def __init__(self, caption, tooltip=None):
        self._callbacks = Callbacks()
        self._callbacks.enable_callback("activated")
        self.widget = Widgets.HBox()
        self.widget.set_spacing(4)
        self.widget.add_widget(Widgets.Label(caption), stretch=0)
        self.entry = Widgets.TextEntry()
        if tooltip:
            self.entry.set_tooltip(tooltip)
        self.entry.add_callback("activated", lambda w: self._activated())
        self.widget.add_widget(self.entry, stretch=1)
        self.browse = Widgets.Button("Browse...")
        self.browse.set_tooltip("Choose the folder in a dialog")
        self.browse.add_callback("activated", lambda w: self.popup_dialog())
        self.widget.add_widget(self.browse, stretch=0)
        self._dialog = None

    def add_callback(self, name, fn, *args, **kwargs):
        self._callbacks.add_callback(name, fn, *args, **kwargs)

    def get_widget(self):
        return self.widget

    def get_path(self):
        """The folder in the entry (user ``~`` expanded), or None if empty."""
        text = self.entry.get_text().strip()
        return os.path.expanduser(text) if text else None

    def set_path(self, path):
        self.entry.set_text("" if path is None else os.fspath(path))

    def popup_dialog(self):
        self._dialog = Widgets.FileDialog(title="Choose a folder")
        self._dialog.set_mode("directory")
        start = self.get_path()
        if start and os.path.isdir(start):
            self._dialog.set_directory(start)
        self._dialog.add_callback("activated", self._dialog_cb)
        self._dialog.popup()

    def _dialog_cb(self, w, paths):
        if paths:
            self.set_path(paths[0])
            self._activated()

    def _activated(self):
        self._callbacks.make_callback("activated", self.get_path())


class MessageArea:
    """A read-only text area for summaries and problems (never tracebacks).

    Parameters
    ----------
    title : str
        Frame caption.
    max_height : int
        Height in pixels it may grow to (it scrolls beyond), so the
        plugin's main view keeps the room.
    """

    def __init__(self, title="Messages", max_height=150):
        self.widget = Widgets.Frame(title)
        self.text = Widgets.TextArea(wrap=True, editable=False)
        self.text.set_min_size(0, 60)
        self.text.set_max_size(None, max_height)
        self.widget.set_widget(self.text)
        self._lines = []

    def get_widget(self):
        return self.widget

    def set_lines(self, lines):
        """Replace the content with ``lines`` (an iterable of str)."""
        self._lines = [str(line) for line in lines]
        self.text.set_text("\n".join(self._lines))
        # the first line is the summary: keep it in view
        self.text.set_scroll_pos(0)

    def add_line(self, line):
        self._lines.append(str(line))
        self.text.append_text(str(line))

    def clear(self):
        self.set_lines([])

    @property
    def lines(self):
        """The lines shown."""
        return list(self._lines)

    def get_text(self):
        return "\n".join(self._lines)


#: Colour of each frame state (`ginga_ccdcal.describe.FRAME_STATES`) in a tree.
STATE_COLORS = {"calibrated": "darkgreen", "partly calibrated": "darkorange",
                "not calibrated": "red", "failed": "red"}

#: Tag of the banner object on a channel's canvas, and its font size.
_BANNER_TAG = "_ccdcal_banner"
_BANNER_FONTSIZE = 13


def show_banner(fv, chname, text, color="red"):
    """Write ``text`` over the image of channel ``chname`` until `clear_banner`.

    Ginga canvas text in window coordinates, top left, wrapped to the
    channel's width, on the channel's private canvas, so it stays while
    images change under it: the banner says something about what the
    channel shows *now* (a watch with no masters, a light calibrated with
    steps missing), and whoever shows the next image decides whether it
    stays.
    """
    channel = fv.get_channel_on_demand(chname)
    viewer = channel.viewer
    canvas = viewer.get_private_canvas()
    canvas.delete_object_by_tag(_BANNER_TAG, redraw=False)
    width = viewer.get_window_size()[0] or 600
    # about 0.6 em per character of a 13-point sans-serif font
    chars = max(30, int((width - 40) / (0.6 * _BANNER_FONTSIZE)))
    lines = textwrap.wrap(text, chars, break_long_words=False,
                          break_on_hyphens=False) or [text]
    Text = canvas.get_draw_class("text")
    Compound = canvas.get_draw_class("compoundobject")
    banner = Compound(*[Text(12, 28 + i * (_BANNER_FONTSIZE + 9), text=line,
                             coord="window", color=color, fontsize=_BANNER_FONTSIZE,
                             bgcolor="black", bgalpha=0.75, borderpadding=5)
                        for i, line in enumerate(lines)])
    banner.banner_text = text
    canvas.add(banner, tag=_BANNER_TAG, redraw=True)


def clear_banner(fv, chname):
    """Remove the banner of channel ``chname`` (if any)."""
    if not fv.has_channel(chname):
        return
    canvas = fv.get_channel(chname).viewer.get_private_canvas()
    if canvas.has_tag(_BANNER_TAG):
        canvas.delete_object_by_tag(_BANNER_TAG, redraw=True)


def banner_text(fv, chname):
    """The banner shown over channel ``chname`` (unwrapped), or None."""
    if not fv.has_channel(chname):
        return None
    canvas = fv.get_channel(chname).viewer.get_private_canvas()
    if not canvas.has_tag(_BANNER_TAG):
        return None
    return canvas.get_object_by_tag(_BANNER_TAG).banner_text


def report_problem(fv, text):
    """Send a problem line to Ginga's Errors tab too (without raising it):
    an observer who closed a plugin's panel still finds it there."""
    fv.show_error(text, raisetab=False)


class ChecklistStrip:
    """``Masters: bias ✓  dark ✓  flat ✗`` for one set-up, as every CCD plugin shows it.

    Each step is a label, green with a tick when a master will be applied,
    red with a cross when not; its tooltip is the core's reason
    (`ginga_ccdcal.describe.checklist_items`).  ``set_match(None, why)``
    shows why there is nothing to check (no frame, no masters folder).
    """

    def __init__(self, caption="Masters:"):
        self.widget = Widgets.HBox()
        self.widget.set_spacing(6)
        self.widget.add_widget(Widgets.Label(caption), stretch=0)
        self.steps = {}
        for role in ("bias", "dark", "flat"):
            label = Widgets.Label(f"{role} ?")
            self.steps[role] = label
            self.widget.add_widget(label, stretch=0)
        self.subject = wrapping_label()
        self.widget.add_widget(self.subject, stretch=1)
        self.items = []
        self._asked = 0  # the latest `check`; older answers are dropped

    def get_widget(self):
        return self.widget

    def set_match(self, match, subject=""):
        """Show ``match`` (a `~ginga_ccdcal.match.MatchResult` or None) for ``subject``."""
        self.items = checklist_items(match) if match is not None else []
        applied = {role: (ok, why) for role, ok, why in self.items}
        for role, label in self.steps.items():
            if role not in applied:
                label.set_text(f"{role} ?")
                label.set_color(fg="gray")
                label.set_tooltip(subject or "no frame to check")
                continue
            ok, why = applied[role]
            label.set_text(f"{role} {TICK if ok else CROSS}")
            label.set_color(fg="darkgreen" if ok else "red")
            label.set_tooltip(why)
        self.subject.set_text(subject)

    def check(self, fv, session, light, folder, alive):
        """Match ``light`` to the masters in ``folder`` off the GUI thread, then show it.

        Reading the masters' headers can take a while on a large folder, so
        it never runs on the GUI thread.  The latest call wins: an answer
        that arrives after another check was asked for, or once ``alive()``
        is false (the panel closed), is dropped.
        """
        self._asked += 1
        asked = self._asked

        def work():
            try:
                masters = session.masters_in(folder)
                match = match_light(light, masters) if masters else None
            except CcdcalError:
                match = None
            fv.gui_do(show, match)

        def show(match):
            if asked != self._asked or not alive():
                return
            if match is None:
                self.set_match(None, f"no masters in {folder}")
            else:
                self.set_match(match, f"for {light.name}")

        fv.nongui_do(work)

    def text(self):
        """What the strip says, as one line (tests, logs)."""
        return "  ".join(label.get_text() for label in self.steps.values())
