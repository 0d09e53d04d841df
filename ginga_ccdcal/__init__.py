"""ginga_ccdcal: a CCD calibration workbench for the Ginga FITS viewer.

The GUI-free core lives in the submodules of this package (``scan``,
``classify``, ``group``, ``combine``, ``masters``, ``match``,
``calibrate``); the Ginga plugins in :mod:`ginga_ccdcal.plugins` and the
command line in :mod:`ginga_ccdcal.cli` only call it.
"""

__version__ = "0.1.0"
