"""NIfTI reading: reorientation to axial display order and RAS→LPS geometry."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from aimedx_desktop.engine.io import ScanReadError, read_scan
from aimedx_desktop.engine.scan import Modality


def labelled_volume() -> np.ndarray:
    """(x, y, z) = (4, 5, 3) voxels whose value encodes their index: 100 x + 10 y + z."""
    x, y, z = np.meshgrid(np.arange(4), np.arange(5), np.arange(3), indexing="ij")
    return (100 * x + 10 * y + z).astype(np.int16)


def save(tmp_path, affine: np.ndarray, name: str = "vol.nii.gz", data: np.ndarray | None = None):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(labelled_volume() if data is None else data, affine), path)
    return path


@pytest.mark.parametrize("flip_x", [False, True])
def test_axial_display_layout_and_lps_geometry(tmp_path, flip_x):
    """RAS (or LAS) storage comes out as slices I→S, rows A→P, columns R→L."""
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]
    data = labelled_volume()
    if flip_x:  # the same voxels stored with x running right→left
        affine[0, 0], affine[0, 3] = -2.0, 10.0 + 2.0 * 3
        data = data[::-1]
    scan = read_scan(save(tmp_path, affine, data=data), modality="mr")
    assert scan.shape == (3, 5, 4)  # (slices, rows, cols) = (z, y, x)
    # slice 0 is the most inferior (z = 0), row 0 the most anterior (y = 4), col 0 the patient's
    # rightmost (RAS x grows towards the right: x = 3)
    assert scan.voxels[0, 0, 0] == 100 * 3 + 10 * 4 + 0
    assert scan.voxels[2, 4, 3] == 100 * 0 + 10 * 0 + 2
    geometry = scan.geometry
    np.testing.assert_allclose(geometry.orientation, (1, 0, 0, 0, 1, 0), atol=1e-12)
    assert geometry.pixel_spacing == (3.0, 2.0) and geometry.slice_thickness == 4.0
    # first voxel of slice 0: RAS (10 + 2 * 3, 20 + 3 * 4, 30) -> LPS (-16, -32, 30); 4 mm apart upwards
    np.testing.assert_allclose(geometry.positions, [[-16.0, -32.0, 30.0 + 4 * k] for k in range(3)])
    assert scan.provenance.source_format == "nifti" and scan.description == "vol"


def test_other_storage_orders_give_the_same_axial_scan(tmp_path):
    """Stored as (z, y, x), voxel axis 0 running S and axis 2 running R: same result as RAS."""
    reference = read_scan(save(tmp_path, np.eye(4), name="ras.nii"), modality="mr")
    affine = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    scan = read_scan(save(tmp_path, affine, data=labelled_volume().transpose(2, 1, 0)), modality="mr")
    np.testing.assert_array_equal(scan.voxels, reference.voxels)
    np.testing.assert_allclose(scan.geometry.positions, reference.geometry.positions)
    np.testing.assert_allclose(scan.geometry.orientation, (1, 0, 0, 0, 1, 0), atol=1e-12)


def test_a_2d_image_is_a_volume_of_one_slice(tmp_path):
    volume = read_scan(save(tmp_path, np.eye(4), name="vol.nii", data=labelled_volume()[:, :, :1]), modality="mr")
    flat = read_scan(save(tmp_path, np.eye(4), name="flat.nii", data=labelled_volume()[:, :, 0]), modality="mr")
    assert flat.shape == (1, 5, 4)
    np.testing.assert_array_equal(flat.voxels, volume.voxels)


def test_modality_defaults_to_mr_with_a_warning_and_scaling_is_applied(tmp_path):
    path = tmp_path / "a" / "b" / "scan.nii"  # no CT or MR token in the last three names
    path.parent.mkdir(parents=True)
    image = nib.Nifti1Image(labelled_volume(), np.eye(4))
    image.header.set_slope_inter(2.0, -1000.0)
    nib.save(image, path)
    scan = read_scan(path)
    assert scan.modality is Modality.MR and scan.warnings == ("modality not stated; assuming MR",)
    assert scan.voxels.min() == -1000.0 and scan.voxels.max() == 2 * 342 - 1000.0
    assert read_scan(path, modality="ct").modality is Modality.CT


def test_4d_and_broken_files_are_refused(tmp_path):
    path = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), path)
    with pytest.raises(ScanReadError, match=r"^series.nii.gz: NIfTI of shape \(4, 4, 3, 2\): only a single 3-D"):
        read_scan(path, modality="mr")
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ScanReadError, match="^broken.nii.gz: "):
        read_scan(broken)


def test_real_head_mr_volumes(shared_data):
    head = read_scan(shared_data / "head_mr" / "t1_head_seg3d.nii.gz")
    assert head.modality is Modality.MR and head.shape == (160, 232, 160)
    np.testing.assert_allclose(head.geometry.orientation, (1, 0, 0, 0, 1, 0), atol=1e-6)
    np.testing.assert_allclose(head.geometry.pixel_spacing, (0.898, 1.0), atol=1e-3)
    assert np.all(np.diff(head.geometry.positions[:, 2]) > 0)  # inferior → superior
    stroke = read_scan(shared_data / "head_mr" / "t2_brain_stroke.nii.gz")
    assert stroke.shape == (140, 160, 124)  # 124 x 160 x 140 stored RAS: z slices of y rows, x cols
    row, col = np.asarray(stroke.geometry.orientation[:3]), np.asarray(stroke.geometry.orientation[3:])
    assert row[0] > 0.99 and col[1] > 0.9  # oblique, but close to axial
    assert abs(float(row @ col)) < 1e-6 and stroke.voxels.max() > 0


def test_nan_and_infinite_voxels_are_replaced_with_a_warning(tmp_path):
    data = labelled_volume().astype(np.float32)
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf, -np.inf
    scan = read_scan(save(tmp_path, np.eye(4), data=data), modality="mr")
    assert np.isfinite(scan.voxels).all()
    finite = data[np.isfinite(data)]
    assert sorted(scan.voxels.ravel().tolist()) == sorted([finite.min(), finite.max(), finite.min(), *finite.tolist()])
    (warning,) = scan.warnings
    assert warning.startswith("3 voxel(s) were NaN or infinite") and f"minimum {finite.min():g}" in warning


# -- headers that promise more than the file holds or the machine has ------------------------


def header_only(path, shape: tuple[int, ...], dtype=np.int16, data: bytes = b"") -> "Path":
    """A NIfTI-1 file whose header promises `shape` voxels, followed by `data` only."""
    import gzip

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    content = header.binaryblock + bytes(4) + data
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


@pytest.fixture
def plenty_of_memory(monkeypatch):
    """The machine's free memory is the one boundary a test cannot set: here it is 1 TB."""
    from aimedx_desktop.engine import limits

    monkeypatch.setattr(limits, "available_memory", lambda: 10**12)


def refused_without_allocating(path, match: str) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ScanReadError, match=match):
            read_scan(path, modality="mr")
        assert tracemalloc.get_traced_memory()[1] < 50_000_000
    finally:
        tracemalloc.stop()


def test_a_header_promising_more_voxels_than_a_scan_may_have(tmp_path):
    refused_without_allocating(
        header_only(tmp_path / "huge.nii.gz", (2048, 2048, 512)),
        r"^huge.nii.gz: 2048×2048×512 voxels according to the header \(8.6 GB as 32-bit values\): more than the 1,073,741,824",
    )


def test_a_header_promising_more_than_a_small_file_can_hold(tmp_path, plenty_of_memory):
    refused_without_allocating(
        header_only(tmp_path / "tiny.nii", (32767, 32767, 1), np.uint8, bytes(8)),
        r"^tiny.nii: damaged NIfTI file: the header promises 32767×32767×1 voxels \(1,073,676,289 bytes\), but the file holds only 8 bytes of voxels$",
    )
    refused_without_allocating(
        header_only(tmp_path / "bomb.nii.gz", (1024, 1024, 512)),
        r"^bomb.nii.gz: damaged NIfTI file: the header promises 1024×1024×512 voxels \(1,073,741,824 bytes\), but a \d+-byte gzip file cannot hold",
    )


def test_a_volume_larger_than_the_memory_left_is_refused(tmp_path, monkeypatch):
    from aimedx_desktop.engine import limits

    path = save(tmp_path, np.eye(4))  # 4×5×3 voxels: 960 bytes to read
    monkeypatch.setattr(limits, "available_memory", lambda: 500)
    with pytest.raises(ScanReadError, match=r"^vol.nii.gz: 4×5×3 voxels according to the header: reading them needs about 1.0 kB, more than the 0.5 kB of memory available; not read$"):
        read_scan(path, modality="mr")
    monkeypatch.setattr(limits, "available_memory", lambda: 2000)
    assert read_scan(path, modality="mr").shape == (3, 5, 4)
