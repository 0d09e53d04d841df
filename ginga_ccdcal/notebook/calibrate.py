"""Calibrating a light in a notebook: raw beside calibrated, and step by step."""

import os
from html import escape

import ipywidgets as widgets

from ..calibrate import CalibrationOptions, calibrate_frame
from ..fitsfile import read_image
from ..masters import load_masters
from ..match import match_light
from ..scan import ScanResult, scan_folder
from ..steps import calibration_steps, common_cuts
from .tasks import BackgroundTask
from .viewer import GingaView

__all__ = ["CalibrateView", "StepsView"]


def _lines_html(lines, colour=None):
    style = f" style='color:{colour}'" if colour else ""
    return "".join(f"<div{style}>{escape(line)}</div>" for line in lines)


def _not_applied(header):
    """The HISTORY lines in which the calibration says what it did not do."""
    return [str(h) for h in header.get("HISTORY", []) if "NOT applied" in str(h)
            or str(h).startswith("warning:")]


class CalibrateView:
    """Pick a light, press Calibrate: raw and calibrated side by side.

    The masters are those `~ginga_ccdcal.match.match_light` picks from
    ``masters`` (the same rule as the CLI and the plugins); below the
    pictures, which master served each step and why, and anything that was
    not done.  Nothing is written: the result is `result`, a CCDData.

    Parameters
    ----------
    source : str, path-like or `~ginga_ccdcal.scan.ScanResult`
        Raw frames (a folder is scanned); its lights are offered.
    masters : str, path-like or list of `~ginga_ccdcal.masters.MasterFrame`
        A folder of masters (read again at every Calibrate) or a list.
    options : `~ginga_ccdcal.calibrate.CalibrationOptions`, optional

    Attributes
    ----------
    result : astropy.nddata.CCDData or None
        The last calibrated frame.
    match : `~ginga_ccdcal.match.MatchResult` or None
        The masters it was calibrated with.
    """

    def __init__(self, source, masters, options=None):
        self.scan = source if isinstance(source, ScanResult) else scan_folder(source)
        self._masters = masters
        self.options = options or CalibrationOptions()
        self.result = self.match = None
        lights = self.scan.of_type("light")
        self.light = widgets.Dropdown(options=[(f.name, f.path) for f in lights],
                                      description="Light",
                                      layout=widgets.Layout(width="380px"))
        self._frames = {f.path: f for f in lights}
        calibrate = widgets.Button(description="Calibrate", button_style="primary")
        calibrate.on_click(lambda _: self.calibrate())
        self.task = BackgroundTask()
        self.raw_view = GingaView(title="raw")
        self.cal_view = GingaView(title="calibrated")
        self.reasons = widgets.HTML(value="")
        self.widget = widgets.VBox([
            widgets.HBox([self.light, calibrate]), self.task.widget,
            widgets.HBox([self.raw_view.widget, self.cal_view.widget]), self.reasons],
            layout=widgets.Layout(border="1px solid #ccc", padding="6px"))
        self.widget.add_class("ccdcal-calibrate")

    @property
    def masters(self):
        """The masters to choose from (read from the folder if one was given)."""
        if isinstance(self._masters, (str, os.PathLike)):
            return load_masters(os.fspath(self._masters))
        return list(self._masters)

    def calibrate(self, path=None):
        """Calibrate the chosen light (or the one at ``path``) in the background.

        Returns at once; `wait` blocks until it is done.
        """
        if path is not None:
            self.light.value = os.fspath(path)
        if self.light.value is None:
            self.task.label.value = "no light frames to calibrate in this night"
            return False
        frame = self._frames[self.light.value]
        options = self.options

        def work(progress, cancel):
            progress(0, 2, "choosing masters")
            match = match_light(frame, self.masters)
            cancel.check()
            progress(1, 2, "calibrating")
            return frame, match, calibrate_frame(frame, match, options)

        return self.task.run(work, self._calibrated, label=f"calibrating {frame.name}")

    def _calibrated(self, outcome):
        frame, self.match, self.result = outcome
        raw, _, _ = read_image(frame.path)
        self.raw_view.show(raw, title=f"raw: {frame.name}")
        header = self.result.header
        self.cal_view.show(self.result, title=f"calibrated ({header['CALSTAT']})")
        self.reasons.value = (_lines_html(self.match.describe())
                              + _lines_html(_not_applied(header), "#b00"))

    def wait(self, timeout=None):
        """Block until the current calibration ends; True if it has."""
        return self.task.wait(timeout)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class StepsView:
    """One light after each step: raw, - bias, - dark, / flat.

    The frames come from `ginga_ccdcal.steps.calibration_steps` (the
    calibration itself, kept after each step) and share the contrast of
    `~ginga_ccdcal.steps.common_cuts`, so what changes from one picture to
    the next is what the step removed; under each, the step's own sentence.

    Parameters
    ----------
    frame : `~ginga_ccdcal.scan.Frame`
    match : `~ginga_ccdcal.match.MatchResult`
    options : `~ginga_ccdcal.calibrate.CalibrationOptions`, optional

    Attributes
    ----------
    steps : list of `~ginga_ccdcal.steps.Step`
    """

    def __init__(self, frame, match, options=None, width=225, height=170):
        self.steps = calibration_steps(frame, match, options)
        cuts = common_cuts(self.steps)
        self.views = []
        for step, levels in zip(self.steps, cuts):
            view = GingaView(width=width, height=height)
            view.show(step.data, title=step.title, caption=step.note, cuts=levels)
            view.caption.layout = widgets.Layout(width=f"{width}px")
            self.views.append(view)
        self.widget = widgets.HBox([v.widget for v in self.views],
                                   layout=widgets.Layout(flex_flow="row wrap"))
        self.widget.add_class("ccdcal-steps")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
