"""The Ginga layer of the CCD calibration workbench: plugins and viewer.

Installed with the ``gui`` extra (``pip install 'ginga-ccdcal[gui]'``),
which brings Ginga and a Qt binding; the rest of the package (the core)
needs neither.  The plugins call the core and lay out what it returns:
they compute no calibration number and word no result their own way
(`ginga_ccdcal.describe`).

Ginga finds the plugins through the ``ginga.rv.plugins`` entry points (see
``setup.cfg``): each entry point is one of the functions below, returning
the plugin spec the reference viewer registers.  The modules are imported
as ``ginga_ccdcal.gui.<Name>`` (``pfx``), so they are ordinary package
modules rather than files put on ``sys.path``.  `ginga_ccdcal.gui.viewer`
starts the reference viewer with them (``ginga-ccdcal gui``).

``CCDBrowser`` (global)
    scan a folder of raw frames, group them by header keywords, correct
    their types; each frame's calibration state.
``CCDWatch`` (global)
    calibrate each new light as the camera writes it and show it
    (quick-look at the telescope).
``CCDMasters`` (global)
    build master bias/dark/flat frames from the browser's scan.
``CCDCalibrate`` (local)
    calibrate the light frame shown in a channel with the matching masters,
    or show the calibration step by step.
``CCDInspect`` (global)
    characterise the CCD from a night's calibration frames (read noise,
    gain, dark current, hot and bad pixels, bias structure, vignetting).
"""

from ginga import toolkit
from ginga.misc.Bunch import Bunch

if toolkit.get_family() is None:
    # ginga.gw.Widgets binds to a widget set the first time it is imported.
    # Inside the reference viewer the set is chosen before any plugin
    # module loads; imported on their own (tests, docs, scripts) our
    # modules would bind it to none for the whole process, so choose the
    # way the viewer does.  An explicit choice made later (ginga -t gtk3)
    # still wins: nothing here imports ginga.gw.
    toolkit.choose()

__all__ = ["browser_spec", "watch_spec", "masters_spec", "calibrate_spec", "inspect_spec",
           "CATEGORY"]

#: The category our plugins appear under (the "Plugins" menu for the
#: global ones, the "Operation" button for CCD Calibrate).
CATEGORY = "CCD Calibration"
_PFX = __name__


def _global_spec(klass, title):
    """A global plugin of ours: in the right-hand panel, under `CATEGORY`."""
    return Bunch(module=klass, klass=klass, pfx=_PFX, ptype="global",
                 workspace="right", start=False, category=CATEGORY,
                 menu=f"{title} [G]", tab=title, enabled=True)


def browser_spec():
    """Plugin spec of the CCD Browser (global, right-hand panel)."""
    return _global_spec("CCDBrowser", "CCD Browser")


def watch_spec():
    """Plugin spec of CCD Watch (global, right-hand panel)."""
    return _global_spec("CCDWatch", "CCD Watch")


def masters_spec():
    """Plugin spec of the CCD master builder (global, right-hand panel)."""
    return _global_spec("CCDMasters", "CCD Masters")


def calibrate_spec():
    """Plugin spec of the one-click calibration (local, Dialogs tab)."""
    return Bunch(module="CCDCalibrate", klass="CCDCalibrate", pfx=_PFX,
                 ptype="local", workspace="dialogs", category=CATEGORY,
                 menu="CCD Calibrate", tab="CCD Calibrate", enabled=True)


def inspect_spec():
    """Plugin spec of the CCD characterisation (global, right-hand panel)."""
    return _global_spec("CCDInspect", "CCD Inspect")
