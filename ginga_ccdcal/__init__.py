"""ginga_ccdcal: a CCD calibration workbench for the Ginga FITS viewer.

The GUI-free core lives in the submodules of this package (``scan``,
``classify``, ``group``, ``combine``, ``masters``, ``match``,
``calibrate``, ``describe``) and needs neither Ginga nor Qt nor
matplotlib; the Ginga plugins and viewer in ``ginga_ccdcal.gui`` (extra
``gui``), the notebook widgets in ``ginga_ccdcal.notebook`` (extra
``notebook``) and the command line in :mod:`ginga_ccdcal.cli` only call it.
"""

__version__ = "0.1.0"
