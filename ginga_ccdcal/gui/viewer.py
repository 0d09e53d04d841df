"""Start the Ginga reference viewer with the CCD calibration plugins.

The plugins reach Ginga through the ``ginga.rv.plugins`` entry points
declared in ``setup.cfg``, so a plain ``ginga`` command shows them too;
this module adds what that command lacks:

* starting the viewer *in-process* and handing back a `RunningViewer`
  that tests and scripts can drive (pump the Qt event loop, wait for a
  condition, take a screenshot) instead of blocking in ``mainloop``;
* opening the CCD Browser on a folder at start-up;
* running on a machine without a display (Qt's ``offscreen`` platform)
  and, with ``screenshot=``, waiting for the work to finish, saving the
  main window to a PNG and exiting -- how the documentation screenshots
  are made.

Qt allows one ``QApplication`` per process, so there is at most one
viewer per process: `create_viewer` refuses a second one.
"""

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings

from .qtcompat import BindingError, binding_problem

__all__ = ["ensure_qt_platform", "BindingError", "TITLE", "RunningViewer", "create_viewer",
           "current_viewer", "start_viewer", "run_demo", "main", "PLUGIN_NAMES"]

#: Our plugins, as the reference viewer names them.
PLUGIN_NAMES = ("CCDBrowser", "CCDWatch", "CCDMasters", "CCDCalibrate", "CCDInspect")

_current = None


def ensure_qt_platform(environ=None):
    """Choose Qt's ``offscreen`` platform when there is no display.

    Must run before the ``QApplication`` exists.  An explicit
    ``QT_QPA_PLATFORM`` is left alone.

    Parameters
    ----------
    environ : dict, optional
        The environment to inspect and update (default ``os.environ``).

    Returns
    -------
    str or None
        The platform Qt will use, None for its own default.
    """
    if environ is None:
        environ = os.environ
    if environ.get("QT_QPA_PLATFORM"):
        return environ["QT_QPA_PLATFORM"]
    if (sys.platform.startswith("linux")
            and not environ.get("DISPLAY")
            and not environ.get("WAYLAND_DISPLAY")):
        environ["QT_QPA_PLATFORM"] = "offscreen"
        return "offscreen"
    return None


#: Qt messages that say nothing to a user (the offscreen platform repeats
#: this one for every window it lays out).
_QT_NOISE = ("This plugin does not support propagateSizeHints()",)


def _filter_qt_messages():
    """Drop Qt's known-harmless chatter; pass every other message on."""
    from qtpy import QtCore

    def handler(mode, context, message):
        if message not in _QT_NOISE:
            sys.stderr.write(message + "\n")

    QtCore.qInstallMessageHandler(handler)


class _ErrorCollector(logging.Handler):
    """Keep the viewer's ERROR log records so callers can check for them."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(self.format(record))


class RunningViewer:
    """A reference viewer set up in this process, driven by the caller.

    Attributes
    ----------
    fv : ginga.rv.Control.GingaShell
        The Ginga shell (what plugins call ``self.fv``).
    rv : ginga.rv.main.ReferenceViewer
    logged_errors : list of str
        Every message the viewer logged at ERROR level -- an uncaught
        exception in a plugin callback lands here.
    """

    def __init__(self, rv, fv, collector, tmp_basedir=None):
        self.rv = rv
        self.fv = fv
        self._collector = collector
        self._tmp_basedir = tmp_basedir
        self.closed = False

    @property
    def logged_errors(self):
        return self._collector.messages

    @property
    def window(self):
        """The main window's Qt widget."""
        return self.fv.w.root.get_widget()

    def pump(self, seconds=0.0):
        """Process GUI events for about ``seconds`` (at least one round)."""
        end = time.monotonic() + seconds
        while True:
            self.fv.update_pending(timeout=0.005)
            if time.monotonic() >= end:
                break

    def wait_for(self, predicate, timeout=30.0, what="the condition"):
        """Pump events until ``predicate()`` is true.

        Raises
        ------
        TimeoutError
            With ``what`` in the message, if ``timeout`` seconds pass.
        """
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            self.fv.update_pending(timeout=0.01)
        return True

    def global_plugin(self, name, start=True):
        """The object of global plugin ``name``, started first if asked."""
        if start and not self.fv.gpmon.is_active(name):
            self.fv.start_global_plugin(name, raise_tab=True)
            self.pump()
        return self.fv.gpmon.get_plugin(name)

    def local_plugin(self, chname, name, start=True):
        """The object of local plugin ``name`` in channel ``chname``."""
        channel = self.fv.get_channel(chname)
        if start and not channel.opmon.is_active(name):
            self.fv.start_local_plugin(chname, name, None)
            self.pump()
        return channel.opmon.get_plugin(name)

    def open_browser(self, folder):
        """Start the CCD Browser and scan ``folder`` (returns the plugin)."""
        browser = self.global_plugin("CCDBrowser")
        browser.set_folder(os.fspath(folder))
        return browser

    def screenshot(self, path, widget=None):
        """Save the main window (or a Qt ``widget``) to the PNG ``path``."""
        self.pump(0.2)
        widget = self.window if widget is None else widget
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if not widget.grab().save(os.fspath(path)):
            raise OSError(f"could not write screenshot {path}")
        return path

    def close(self):
        """Stop plugins, worker threads and the log listener."""
        global _current
        if self.closed:
            return
        self.closed = True
        try:
            # the user may have quit already (File > Quit stops the shell)
            if not self.fv.ev_quit.is_set():
                self.fv.stop()
        finally:
            # The Log tab's listener thread: ReferenceViewer.run() stops it
            # when its event loop ends, a loop a driven viewer never enters.
            listener = getattr(self.rv, "_gui_log_listener", None)
            if listener is not None:
                listener.stop()
                self.rv._gui_log_listener = None
            if self.fv.w.root is not None:
                self.window.hide()
            self.fv.app.process_events()
            _current = None


def current_viewer():
    """The viewer of this process made by `create_viewer`, or None."""
    return _current


#: Title of the main window.
TITLE = "Ginga CCD calibration"


def _viewer_class():
    """`ginga.rv.main.ReferenceViewer` with our plugins and a hook or two.

    Ginga's own start-up (``ReferenceViewer.main``: command-line options
    -> settings -> ``setup`` -> ``process_args`` -> ``run``) is used as it
    is; the subclass only

    * collects the log's ERROR records (``setup``),
    * opens the CCD Browser once the window is up (``process_args``),
    * and, for a viewer a script or a test drives, returns from ``run``
      instead of entering the event loop.
    """
    from ginga.rv import main as rvmain

    class CcdcalViewer(rvmain.ReferenceViewer):
        def __init__(self, collector, blocking, on_start=None):
            super().__init__(layout=rvmain.default_layout, plugins=rvmain.plugins,
                             appname="ginga", channels=["Image"])
            self.add_default_plugins()
            # our plugins come in here, through their entry points
            self.add_separately_distributed_plugins()
            self._collector = collector
            self._blocking = blocking
            self._on_start = on_start

        def setup(self):
            self.logger.addHandler(self._collector)
            self.settings.set(title=TITLE)
            return super().setup()

        def process_args(self, args):
            super().process_args(args)
            if self._on_start is not None:
                self._on_start(self.ginga_shell)

        def run(self):
            if self._blocking:
                super().run()
                return
            self.ginga_shell.set_gui_thread()
            # As run() does: warnings go back to stderr, not the log.
            rvmain.disable_warnings()

    return CcdcalViewer


def _ginga_options(rv, *, basedir, channels, geometry, loglevel, log_stderr,
                   restore_layout):
    """Ginga's own command-line options (``ReferenceViewer.add_default_options``)."""
    parser = argparse.ArgumentParser(add_help=False)
    rv.add_default_options(parser)
    argv = ["--basedir", basedir, "--channels", ",".join(channels),
            "--loglevel", str(int(loglevel)), "--suppress-fits-warnings"]
    if geometry is not None:
        argv += ["--geometry", geometry]
    if not restore_layout:
        argv.append("--norestore")
    if log_stderr:
        argv.append("--stderr")
    return parser.parse_args(argv)


def _check_binding():
    """Raise `BindingError` (naming the fix) if the Qt binding would crash us."""
    problem = binding_problem()
    if problem:
        raise BindingError(problem)


def _prepare(basedir, channels, geometry, loglevel, log_stderr, restore_layout,
             blocking, on_start=None):
    """Make the reference viewer and its options (the binding was checked)."""
    ensure_qt_platform()
    _filter_qt_messages()
    tmp_basedir = None
    if basedir is None:
        tmp_basedir = tempfile.TemporaryDirectory(prefix="ginga-ccdcal-")
        basedir = tmp_basedir.name
    basedir = os.path.expanduser(os.fspath(basedir))
    os.makedirs(basedir, exist_ok=True)
    collector = _ErrorCollector()
    rv = _viewer_class()(collector, blocking, on_start)
    options = _ginga_options(rv, basedir=basedir, channels=channels,
                             geometry=geometry, loglevel=loglevel,
                             log_stderr=log_stderr, restore_layout=restore_layout)
    return rv, options, collector, tmp_basedir


def create_viewer(*, basedir=None, channels=("Image",), geometry=None,
                  loglevel=logging.WARNING, log_stderr=False,
                  restore_layout=False):
    """Set up the reference viewer in this process without blocking.

    Ginga starts as its ``ginga`` command starts it
    (``ReferenceViewer.main``), except that it does not enter the event
    loop: the caller drives it (`RunningViewer.pump`, `RunningViewer.wait_for`).

    Parameters
    ----------
    basedir : str, optional
        Ginga's settings folder.  None uses a fresh temporary one, so the
        user's saved layout and preferences do not change what a script
        or a test sees; pass ``"~/.ginga"`` for the user's own.
    channels : sequence of str
        Channels to create at start-up.
    geometry : str, optional
        X-style ``"WIDTHxHEIGHT"`` for the main window.
    loglevel : int
    log_stderr : bool
        Also log to stderr.
    restore_layout : bool
        Restore the layout Ginga saved in ``basedir``.

    Returns
    -------
    RunningViewer

    Raises
    ------
    RuntimeError
        A viewer already exists in this process.
    BindingError
        The Qt binding is one the viewer cannot run on (the message names
        the fix).
    """
    global _current
    _check_binding()
    if _current is not None:
        raise RuntimeError("a reference viewer already runs in this process "
                           "(Qt allows one application per process)")
    rv, options, collector, tmp_basedir = _prepare(
        basedir, list(channels), geometry, loglevel, log_stderr, restore_layout,
        blocking=False)
    rv.main(options, [])
    # Ginga's own divide-by-zero while laying out an empty channel is noise.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="ginga.ImageView")
    _current = RunningViewer(rv, rv.ginga_shell, collector, tmp_basedir)
    _current.pump(0.1)
    _settle_startup()
    return _current


def _settle_startup():
    """Freeze the start-up objects now, so no later collection on the GUI
    thread walks them (`ginga_ccdcal.gui.common.collect_garbage`)."""
    from .common import collect_garbage
    collect_garbage()


def _browser_idle(viewer):
    browser = viewer.fv.gpmon.get_plugin("CCDBrowser")
    return browser.scan_result is not None and not browser.busy


def start_viewer(folder=None, *, screenshot=None, basedir=None,
                 geometry=None, timeout=120.0, loglevel=logging.WARNING):
    """Run the reference viewer with the CCD plugins, optionally on a folder.

    Parameters
    ----------
    folder : str, optional
        Open the CCD Browser on this folder of raw frames.
    screenshot : str, optional
        Instead of running interactively: wait for the scan to finish,
        save the main window to this PNG and return.
    basedir : str, optional
        Ginga's settings folder; default the user's ``~/.ginga`` when
        interactive, a throw-away one for a screenshot.
    geometry : str, optional
        ``"WIDTHxHEIGHT"`` of the main window.
    timeout : float
        Seconds to wait for the work before a screenshot (then it fails).
    loglevel : int

    Returns
    -------
    int
        Exit status: 0; 1 when the screenshot work timed out; 2 when the
        viewer cannot start (no display and no ``screenshot``, or a Qt
        binding it cannot run on), after one line on stderr saying why.
    """
    if screenshot is None and not _has_display():
        # Qt's offscreen platform would run an event loop nobody can see
        print("ginga-ccdcal: no display; use --screenshot FILE", file=sys.stderr)
        return 2
    try:
        _check_binding()
        if screenshot is None:
            return _run_interactive(folder, basedir, geometry, loglevel)
        viewer = create_viewer(basedir=basedir, geometry=geometry,
                               loglevel=loglevel, log_stderr=True)
    except BindingError as exc:
        print(f"ginga-ccdcal: {exc}", file=sys.stderr)
        return 2
    try:
        if folder is not None:
            viewer.open_browser(folder)
            try:
                viewer.wait_for(lambda: _browser_idle(viewer), timeout,
                                "the folder scan")
            except TimeoutError as exc:
                print(f"ginga-ccdcal: {exc}", file=sys.stderr)
                return 1
        viewer.screenshot(screenshot)
        print(f"screenshot saved to {screenshot}")
        return 0
    finally:
        viewer.close()


def _run_interactive(folder, basedir, geometry, loglevel):
    """Ginga's own start-up and event loop, the browser opened on ``folder``."""
    def on_start(fv):
        _settle_startup()
        if folder is not None:
            fv.start_global_plugin("CCDBrowser", raise_tab=True)
            fv.gpmon.get_plugin("CCDBrowser").set_folder(os.fspath(folder))

    if basedir is None:
        basedir = os.path.join("~", ".ginga")
    rv, options, _, _ = _prepare(basedir, ["Image"], geometry, loglevel, True,
                                 restore_layout=True, blocking=True,
                                 on_start=on_start)
    try:
        rv.main(options, [])
    except SystemExit as exc:  # ReferenceViewer.run() ends with sys.exit(0)
        return exc.code or 0
    return 0


def _has_display():
    """True if Qt would draw on a screen (not its invisible offscreen platform)."""
    return ensure_qt_platform(dict(os.environ)) != "offscreen"


def run_demo(folder="ccdcal-demo", *, screenshot=None, scale=0.25,
             timeout=300.0, loglevel=logging.WARNING):
    """The whole workflow in the viewer, on the sample night.

    Writes the Feder sample night to ``folder/raw`` (unless it is there),
    scans it in the CCD Browser, builds the masters with CCD Masters into
    ``folder/reduced/masters``, opens the first light frame and calibrates
    it with CCD Calibrate, then calibrates the rest of the night ("Calibrate
    all") -- the same calls the plugins' buttons make.

    Parameters
    ----------
    folder : str
        Working folder (created).
    screenshot : str, optional
        Save the window to this PNG when done and exit.  Without a display
        this defaults to ``folder/demo.png``; with one, the viewer stays
        open instead.
    scale : float
        Size of the sample frames relative to the real camera.
    timeout : float
        Seconds allowed for each step.

    Returns
    -------
    int
        0 when every step worked, 1 otherwise (the reason is printed).
    """
    from ..sample import make_sample_night
    from ..fitsfile import is_fits_name

    folder = os.path.abspath(os.fspath(folder))
    raw = os.path.join(folder, "raw")
    if not (os.path.isdir(raw) and any(is_fits_name(n) for n in os.listdir(raw))):
        print(f"writing the sample night to {raw} ...")
        make_sample_night(raw, scale=scale)
    if screenshot is None and not _has_display():
        screenshot = os.path.join(folder, "demo.png")

    viewer = create_viewer(basedir=None if screenshot else os.path.join("~", ".ginga"),
                           geometry="1500x850", loglevel=loglevel, log_stderr=True)
    try:
        from .common import get_session
        get_session(viewer.fv).output_folder = os.path.join(folder, "reduced")

        def step(what, plugin):
            viewer.wait_for(lambda: not plugin.busy, timeout, what)
            text = "\n".join(plugin.messages.lines)
            print(f"{what}:\n  " + text.replace("\n", "\n  "))

        browser = viewer.open_browser(raw)
        step("scan", browser)
        lights = get_session(viewer.fv).frames("light")
        if not lights:
            print("ginga-ccdcal demo: the sample night has no light frames", file=sys.stderr)
            return 1
        masters = viewer.global_plugin("CCDMasters")
        masters.build()
        step("masters", masters)
        viewer.fv.change_channel("Image")
        browser.select_path(browser.path_of(lights[0].path))
        viewer.wait_for(lambda: viewer.fv.get_channel("Image").viewer.get_image() is not None,
                        timeout, "the first light frame to load")
        calibrate = viewer.local_plugin("Image", "CCDCalibrate")
        # it reads the frame and the masters off the GUI thread first
        viewer.wait_for(lambda: not calibrate.busy, timeout, "CCD Calibrate to look")
        if not calibrate.calibrate():
            print("ginga-ccdcal demo: " + calibrate.w.missing.get_text(), file=sys.stderr)
            return 1
        step("calibration", calibrate)
        if calibrate.result_path is None:
            return 1
        # Then the rest of the night, as the "Calibrate all" button does.
        calibrate.calibrate_all()
        step("calibrate all", calibrate)
        if screenshot is None:
            viewer.fv.mainloop()
            return 0
        viewer.fv.ds.raise_tab("Dialogs")
        viewer.screenshot(screenshot)
        print(f"screenshot saved to {screenshot}")
        return 0
    except TimeoutError as exc:
        print(f"ginga-ccdcal demo: {exc}", file=sys.stderr)
        return 1
    finally:
        viewer.close()


def main(argv=None):
    """Command line: ``python -m ginga_ccdcal.gui.viewer [FOLDER] [--screenshot PNG]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ginga_ccdcal.gui.viewer",
        description="Ginga reference viewer with the CCD calibration plugins.")
    parser.add_argument("folder", nargs="?", help="folder of raw frames to browse")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="save the window to PNG once the scan is done, then exit")
    parser.add_argument("--geometry", metavar="WxH", help="main window size")
    parser.add_argument("--basedir", help="Ginga settings folder")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait before giving up on a screenshot")
    args = parser.parse_args(argv)
    return start_viewer(args.folder, screenshot=args.screenshot,
                        basedir=args.basedir, geometry=args.geometry,
                        timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
