"""Jupyter widgets for the CCD lab, on the same core as the plugins and the CLI.

Install with ``pip install ginga-ccdcal[notebook]`` (ipywidgets, ipyevents
and what Ginga's Jupyter viewer `ginga.web.jupyterw` needs).

`FrameBrowser`
    A night's frames grouped by any header keywords (nested, with counts);
    a click shows the frame in a Ginga viewer beside its header summary.
`MasterBuilder`
    Builds master bias, darks and flats in a background thread, with a
    progress bar and a Cancel button, and shows each master it made.
`CalibrateView`
    Calibrates a light with the masters `~ginga_ccdcal.match.match_light`
    picks and shows raw and calibrated side by side, with the reasons.
`StepsView`
    The teaching view: raw, - bias, - dark, / flat, side by side with the
    same contrast and one sentence per step.
`GingaView`
    One Ginga Jupyter viewer with a title, for any 2-D array or CCDData.

Every number these widgets show is computed by the core
(`ginga_ccdcal.scan`, `~ginga_ccdcal.group`, `~ginga_ccdcal.masters`,
`~ginga_ccdcal.match`, `~ginga_ccdcal.calibrate`, `~ginga_ccdcal.steps`);
they only lay it out.
"""

try:
    import ipyevents  # noqa: F401  (Ginga's Jupyter viewer needs it)
    import ipywidgets  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(f"ginga_ccdcal.notebook needs the 'notebook' extra ({exc.name} "
                      "is missing): pip install 'ginga-ccdcal[notebook]'") from exc

from .browser import FrameBrowser, frame_header_rows, parse_group_keys
from .calibrate import CalibrateView, StepsView
from .masters import MasterBuilder
from .tasks import BackgroundTask
from .viewer import GingaView

__all__ = ["FrameBrowser", "MasterBuilder", "CalibrateView", "StepsView",
           "GingaView", "BackgroundTask", "frame_header_rows", "parse_group_keys"]
