"""Reading frames: the quick header path must answer as astropy does."""

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.errors import FrameError
from ginga_ccdcal.fitsfile import LazyHeader, read_header, read_image
from ginga_ccdcal.sample import SyntheticCamera, feder_header, feder_rows, make_header


def _headers():
    camera = SyntheticCamera((8, 8), overscan_columns=2)
    for style in ("maxim", "iraf", "nina", "sbig"):
        for kind in ("bias", "dark", "flat", "light"):
            yield make_header(style, kind, 30.0, "R", camera=camera)
    for row in feder_rows()[::7]:
        yield feder_header(row)
    odd = fits.Header()
    odd["LONGSTR"] = "x" * 150            # CONTINUE cards
    odd["QUOTED"] = "it's 'here'"
    odd["EMPTY"] = ""
    odd["DEXP"] = (1.5e-3, "real")
    odd["NEG"] = -12
    odd["HIERARCH ESO DET TEMP"] = -120.5
    yield odd
    plain = fits.Header()
    plain["QUOTED"] = "it's 'here'"
    plain["BIGINT"] = 12345678901234
    plain["TRUE"] = True
    plain.add_history("a history line")
    yield plain


@pytest.mark.parametrize("header", list(_headers()))
def test_lazy_header_agrees_with_astropy(header):
    text = header.tostring()
    lazy = LazyHeader(text)
    full = fits.Header.fromstring(text)
    for key in set(full.keys()) | {"MISSING", "EXPTIME", "FILTER"}:
        if key in ("COMMENT", "HISTORY", ""):
            continue
        assert (key in lazy) == (key in full), key
        assert lazy.get(key, "absent") == full.get(key, "absent"), key
        assert type(lazy.get(key)) is type(full.get(key)), key
    assert list(lazy) == list(full)
    assert lazy.copy() == full


def test_read_header_and_image_shapes(tmp_path):
    data = np.arange(12, dtype=np.uint16).reshape(3, 4)
    fits.PrimaryHDU(data).writeto(tmp_path / "a.fits")
    info = read_header(tmp_path / "a.fits")
    assert info.shape == (3, 4) and info.hdu == 0
    pixels, header, hdu = read_image(tmp_path / "a.fits")
    assert pixels.dtype == np.uint16 and (pixels == data).all()
    raw = (tmp_path / "a.fits").read_bytes()
    (tmp_path / "b.fits").write_bytes(raw[:2880])
    with pytest.raises(FrameError, match="truncated FITS"):
        read_image(tmp_path / "b.fits")
