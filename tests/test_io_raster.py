"""PNG/JPEG/TIFF reading: single images, folders as stacks, colour, and the modality guess."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aimedx_desktop.engine.io import ScanReadError, read_scan
from aimedx_desktop.engine.io.raster import RASTER_SUFFIXES, raster_files
from aimedx_desktop.engine.scan import Modality


def gradient(value: int = 0, shape: tuple[int, int] = (12, 10)) -> np.ndarray:
    return (np.arange(shape[0] * shape[1]).reshape(shape) + value).astype(np.uint8)


def test_8_bit_png_keeps_gray_levels(tmp_path):
    path = tmp_path / "slice.png"
    Image.fromarray(gradient()).save(path)
    scan = read_scan(path, modality="ct")
    assert scan.modality is Modality.CT and scan.shape == (1, 12, 10)
    np.testing.assert_array_equal(scan.voxels[0], gradient())
    assert scan.geometry.pixel_spacing == (1.0, 1.0) and scan.geometry.positions is None
    assert scan.provenance.source_format == "png" and scan.warnings == ()
    assert scan.description == "slice"


def test_16_bit_png_and_tiff(tmp_path):
    values = (np.arange(120).reshape(12, 10) * 500).astype(np.uint16)
    for name in ("deep.png", "deep.tif"):
        Image.fromarray(values).save(tmp_path / name)
        scan = read_scan(tmp_path / name, modality="mr")
        np.testing.assert_array_equal(scan.voxels[0], values)
        assert scan.voxels.max() > 255


def test_jpeg_is_close_to_its_source(tmp_path):
    path = tmp_path / "slice.jpg"
    smooth = (np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8)
    Image.fromarray(smooth).save(path, quality=95)
    scan = read_scan(path, modality="mr")
    assert scan.provenance.source_format == "jpeg"
    assert np.abs(scan.voxels[0] - smooth).mean() < 2.0


def test_colour_is_converted_to_gray_with_a_warning(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "red.png")
    scan = read_scan(tmp_path / "red.png", modality="mr")
    np.testing.assert_allclose(scan.voxels, 0.299 * 200, rtol=1e-6)
    assert scan.warnings == ("colour image converted to gray (BT.601 luma)",)
    gray_rgba = np.dstack([gradient()] * 3 + [np.full((12, 10), 255, np.uint8)])
    Image.fromarray(gray_rgba, "RGBA").save(tmp_path / "gray.png")
    scan = read_scan(tmp_path / "gray.png", modality="mr")
    np.testing.assert_allclose(scan.voxels[0], gradient(), atol=1e-4)
    assert scan.warnings == ("stored as colour with equal channels; read as gray",)


def test_folder_is_a_stack_in_natural_order(tmp_path):
    for i in (10, 2, 1):
        Image.fromarray(gradient(i)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    scan = read_scan(tmp_path, modality="mr")
    assert scan.shape == (3, 12, 10)
    assert [float(v[0, 0]) for v in scan.voxels] == [1.0, 2.0, 10.0]
    assert [p.rsplit("/", 1)[-1] for p in scan.provenance.source_paths] == ["img1.png", "img2.png", "img10.png"]


def test_folder_of_different_sizes_is_refused(tmp_path):
    Image.fromarray(gradient()).save(tmp_path / "a.png")
    Image.fromarray(gradient(shape=(8, 8))).save(tmp_path / "b.png")
    with pytest.raises(ScanReadError, match="^b.png: image is 8x8 pixels but a.png is 10x12"):
        read_scan(tmp_path, modality="mr")


def test_broken_image_names_the_file(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"not a png at all")
    with pytest.raises(ScanReadError, match=r"^fake.png: not a readable PNG/JPEG/TIFF/BMP image$"):
        read_scan(tmp_path / "fake.png")
    good = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ScanReadError, match="^cut.png: cannot decode the image"):
        read_scan(good)


@pytest.mark.parametrize(
    "relative, expected, named",
    [
        ("CT/001.png", Modality.CT, "CT"),
        ("study_mri/head.png", Modality.MR, "study_mri"),
        ("head_ct_ge/t1_reference/x.png", Modality.MR, "t1_reference"),  # the nearest name wins
        ("plain/slice.png", Modality.MR, None),
    ],
)
def test_modality_guessed_from_the_path_with_a_warning(tmp_path, relative, expected, named):
    path = tmp_path / "data" / relative
    path.parent.mkdir(parents=True)
    Image.fromarray(gradient()).save(path)
    scan = read_scan(path)
    assert scan.modality is expected
    (warning,) = scan.warnings
    assert warning == (
        f"modality not stated; guessed {expected.value} from the name {named!r}"
        if named
        else "modality not stated; assuming MR"
    )


def test_real_aanlib_png_file_and_folder(shared_data):
    single = read_scan(shared_data / "aanlib_brain" / "MR" / "16009.png")
    assert single.modality is Modality.MR and single.shape == (1, 256, 256)
    assert single.voxels.min() >= 0 and single.voxels.max() <= 255 and single.voxels.max() > 100
    folder = read_scan(shared_data / "aanlib_brain" / "CT")
    assert folder.modality is Modality.CT and folder.shape == (144, 256, 256)
    assert folder.provenance.source_format == "png" and "guessed CT" in folder.warnings[0]


def test_raster_files_in_natural_order_without_hidden_files(tmp_path):
    for name in ("b10.PNG", "b2.tif", "b1.bmp", "._b1.png", ".hidden.jpg", "b3.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "b4.png").mkdir()
    assert [p.name for p in raster_files(tmp_path)] == ["b1.bmp", "b2.tif", "b10.PNG"]
    assert set(RASTER_SUFFIXES) >= {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def test_macos_resource_forks_do_not_break_a_folder(tmp_path):
    for i in (1, 2):
        Image.fromarray(gradient(i)).save(tmp_path / f"{i:04d}.png")
        (tmp_path / f"._{i:04d}.png").write_bytes(b"\0\5\26\7 AppleDouble, not a PNG")
    assert read_scan(tmp_path, modality="mr").shape == (2, 12, 10)


def test_nan_in_a_float_tiff_is_replaced_with_a_warning(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(3, 4) + 5
    values[1, 1] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "float.tif")
    scan = read_scan(tmp_path / "float.tif", modality="mr")
    assert scan.voxels[0, 1, 1] == 5.0 and np.isfinite(scan.voxels).all()
    (warning,) = scan.warnings
    assert warning == "1 voxel(s) were NaN or infinite: NaN and -inf set to the minimum 5, +inf to the maximum 16"


def test_a_camera_rotation_tag_is_applied_as_viewers_show_it(tmp_path):
    shown = np.tile(np.arange(100, dtype=np.uint8), (60, 1))  # 60 rows × 100 columns, dark on the left
    shown[:10] = 255  # a bright top edge
    stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)  # the sensor's order
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    stored.save(tmp_path / "photo.png", exif=exif)
    np.testing.assert_array_equal(read_scan(tmp_path / "photo.png", modality="mr").voxels[0], shown)


def _png(path, pixels: np.ndarray, colour_type: int) -> None:
    """A PNG written byte by byte: Pillow cannot write 16-bit colour or gray with alpha."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("colour_type, channels, kind", [(2, 3, "RGB"), (4, 2, "gray with alpha"), (6, 4, "RGB with alpha")])
def test_a_16_bit_colour_png_is_refused_rather_than_cut_to_8_bits(tmp_path, colour_type, channels, kind):
    levels = np.repeat(np.arange(0, 61440, 960, dtype=np.uint16).reshape(8, 8)[..., None], channels, axis=2)
    _png(tmp_path / "deep.png", levels, colour_type)
    with pytest.raises(ScanReadError, match=f"deep.png: a 16-bit {kind} PNG would be read at 8 bits"):
        read_scan(tmp_path / "deep.png", modality="mr")
    _png(tmp_path / "gray.png", levels[..., 0], 0)  # 16-bit gray is read at full depth
    np.testing.assert_array_equal(read_scan(tmp_path / "gray.png", modality="mr").voxels[0], levels[..., 0])


def test_a_folder_larger_than_the_memory_left_is_refused_before_reading_it_all(tmp_path, monkeypatch):
    """The machine's free memory is the one boundary a test cannot set: it is replaced."""
    from aimedx_desktop.engine import limits

    for index in range(4):
        Image.fromarray(gradient(index, (64, 64))).save(tmp_path / f"{index}.png")
    monkeypatch.setattr(limits, "available_memory", lambda: 100_000)
    with pytest.raises(ScanReadError, match=r"4×64×64 voxels according to the first image's size: reading them needs about 0.3 MB"):
        read_scan(tmp_path, modality="mr")
    monkeypatch.setattr(limits, "available_memory", lambda: 10_000_000)
    assert read_scan(tmp_path, modality="mr").n_slices == 4


def test_a_16_bit_raster_ct_says_its_values_are_taken_as_hu(tmp_path):
    """No rescale travels in a PNG: HU + 1024, as many tools store it, would read 1024 HU too bright."""
    from aimedx_desktop.engine.intensity import CTContract, IntensityContract, MRContract, prepare_source

    contract = IntensityContract(CTContract(-40.0, 150.0), MRContract())
    offset = (gradient(0, (8, 8)).astype(np.uint16) * 20 + 1024).astype(np.uint16)
    Image.fromarray(offset).save(tmp_path / "ct16.png")
    prepared = prepare_source(read_scan(tmp_path / "ct16.png", modality="ct"), contract)
    np.testing.assert_array_equal(prepared.voxels[0], offset)
    assert any("taken as HU as stored" in w and "lowest value is 1024" in w for w in prepared.warnings)
    eight_bit = prepare_source(read_scan(_saved(tmp_path / "ct8.png", gradient()), modality="ct"), contract)
    assert not any("taken as HU" in w for w in eight_bit.warnings)  # display gray levels: calibrated instead
    mr = prepare_source(read_scan(tmp_path / "ct16.png", modality="mr"), contract)
    assert not any("taken as HU" in w for w in mr.warnings)


def _saved(path, pixels: np.ndarray):
    Image.fromarray(pixels).save(path)
    return path
