"""Reading frames: the quick header path must answer as astropy does."""

import gzip
import io

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


# -- hostile and compressed input --------------------------------------------------

def test_printable_escapes_visibly():
    from ginga_ccdcal.fitsfile import printable
    assert printable("M13 R") == "M13 R"
    assert printable("a\tb\nc\rd\x7fe\xe9f\u0141") == "a\\tb\\nc\\rd\\x7fe\\xe9f\\u0141"
    assert printable("C:\\Users\\x") == "C:\\Users\\x"     # backslashes kept as they are


def test_sanitise_header_leaves_a_good_header_alone():
    from ginga_ccdcal.fitsfile import sanitise_header
    header = make_header("maxim", "light", 30.0, "R")
    before = header.tostring()
    assert sanitise_header(header) == []
    assert header.tostring() == before


def _gzip_light(tmp_path, name, data, members=1):
    buffer = io.BytesIO()
    fits.PrimaryHDU(data, header=make_header("maxim", "light", 30.0, "R")).writeto(buffer)
    raw = buffer.getvalue()
    cut = len(raw) // members // 2880 * 2880 or len(raw)
    parts = [raw[:cut], raw[cut:]] if members == 2 else [raw]
    (tmp_path / name).write_bytes(b"".join(gzip.compress(p) for p in parts))
    return tmp_path / name


@pytest.mark.parametrize("members", [1, 2])
def test_gzipped_frames_are_read_as_astropy_reads_them(tmp_path, members):
    data = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50)
    path = _gzip_light(tmp_path, "a.fits.gz", data, members)
    info = read_header(path)
    assert info.shape == (40, 50) and info.hdu == 0
    pixels, header, _ = read_image(path)
    assert (pixels == data).all()
    assert header == fits.getheader(path)


def test_plain_file_named_gz_is_read(tmp_path):
    data = np.ones((4, 6), dtype=np.int16)
    fits.PrimaryHDU(data).writeto(tmp_path / "plain.fits.gz")
    assert read_header(tmp_path / "plain.fits.gz").shape == (4, 6)


def test_budget_refuses_before_decompressing(tmp_path, monkeypatch):
    from ginga_ccdcal import fitsfile
    path = _gzip_light(tmp_path, "b.fits.gz", np.zeros((40, 50), np.uint16))
    # 40 x 50 pixels take 2 + 4 bytes each to calibrate: 12000 bytes.
    monkeypatch.setattr(fitsfile, "decompressed_budget", lambda: 11999)
    with pytest.raises(FrameError, match=r"declares a 50 x 40 image .* memory budget"):
        read_header(path)
    monkeypatch.setattr(fitsfile, "decompressed_budget", lambda: 12000)
    assert read_header(path).shape == (40, 50)


# -- float32 straight from the file --------------------------------------------

def _write(path, hdus):
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return str(path)


def _float_cases():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 65536, (23, 31))
    yield "uint16 (BZERO 32768)", [fits.PrimaryHDU(counts.astype(np.uint16))]
    yield "int16", [fits.PrimaryHDU((counts - 32768).astype(np.int16))]
    yield "uint8", [fits.PrimaryHDU((counts % 256).astype(np.uint8))]
    yield "int8 (BZERO -128)", [fits.PrimaryHDU((counts % 256 - 128).astype(np.int8))]
    yield "float32 with NaN", [fits.PrimaryHDU(np.where(counts > 60000, np.nan,
                                                         counts).astype(np.float32))]
    scaled = fits.PrimaryHDU((counts % 3000).astype(np.float32))
    scaled.scale("int16", bzero=1000)                      # integer BZERO, not 32768
    yield "int16, BZERO 1000", [scaled]
    bscaled = fits.PrimaryHDU(counts.astype(np.float32) / 7.0)
    bscaled.scale("int16", "minmax")                       # BSCALE != 1: astropy reads
    yield "int16, BSCALE", [bscaled]
    blank = fits.PrimaryHDU((counts - 32768).astype(np.int16))
    blank.header["BLANK"] = -32768
    yield "int16, BLANK", [blank]
    yield "int32", [fits.PrimaryHDU((counts * 1000).astype(np.int32))]
    yield "uint32", [fits.PrimaryHDU((counts * 1000).astype(np.uint32))]
    yield "image in HDU 1", [fits.PrimaryHDU(), fits.ImageHDU(counts.astype(np.uint16))]
    yield "3-D, one plane", [fits.PrimaryHDU(counts[None].astype(np.uint16))]


@pytest.mark.parametrize("name, hdus", list(_float_cases()), ids=[c[0] for c in _float_cases()])
@pytest.mark.parametrize("reuse", [False, True])
def test_float32_read_equals_astropy_then_astype(tmp_path, name, hdus, reuse):
    path = _write(tmp_path / "frame.fits", hdus)
    with fits.open(path) as hdul:
        image = next(h for h in hdul if h.data is not None)
        expected = np.asarray(image.data).squeeze().astype(np.float32)
    got, header, _ = read_image(path, dtype=np.float32, reuse=reuse)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)     # NaN where NaN, bit for bit


def test_float32_read_of_a_cut_file_names_it(tmp_path):
    path = _write(tmp_path / "frame.fits", [fits.PrimaryHDU(np.ones((40, 40), np.uint16))])
    with open(path, "r+b") as stream:
        stream.truncate(2880 + 1000)
    with pytest.raises(FrameError, match="truncated"):
        read_image(path, dtype=np.float32)


@pytest.mark.parametrize("name, hdus", list(_float_cases()), ids=[c[0] for c in _float_cases()])
def test_pixel_type_is_what_astropy_gives(tmp_path, name, hdus):
    from ginga_ccdcal.fitsfile import pixel_type
    path = _write(tmp_path / "frame.fits", hdus)
    header = read_header(path).header            # as calibration reads it
    with fits.open(path) as hdul:
        image = next(h for h in hdul if h.data is not None)
        assert pixel_type(header) == np.asarray(image.data).dtype.newbyteorder("=")
