"""NIfTI-1/2 volumes (.nii, .nii.gz) as axial stacks in DICOM patient coordinates.

The voxel axes are permuted and flipped (never resampled) to the nearest of: slices running
inferior→superior, rows anterior→posterior, columns patient right→left, which is how a DICOM
axial image is shown (radiological convention). Geometry is then the reoriented affine turned
from NIfTI's RAS into DICOM's LPS, so an oblique volume keeps its true, slightly oblique cosines.
"""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from aimedx_desktop.engine.io._common import guess_modality, replace_non_finite
from aimedx_desktop.engine.io.errors import ScanReadError
from aimedx_desktop.engine.limits import scan_size_problem
from aimedx_desktop.engine.scan import Geometry, Modality, Provenance, Scan

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_AXIAL_DISPLAY = ("S", "P", "L")  # voxel axes (slice, row, col) point towards these
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def is_nifti_path(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: Path, modality: Modality | None = None) -> Scan:
    """A NIfTI volume, reoriented to axial slices (see the module docstring).

    Without `modality`, it is guessed from the path and MR is the default (most NIfTI here is
    MR); the guess is recorded in the scan's warnings, as is any NaN or infinite voxel replaced
    by the finite minimum or maximum (see `replace_non_finite`). The size the header promises is
    checked against the file and the machine before any voxel is read.
    """
    try:
        image = nib.load(path)
        stored_shape = image.shape
        if len(stored_shape) == 2:  # one slice saved as a 2-D image: a volume of one slice
            image = nib.Nifti1Image(image.dataobj.reshape((*stored_shape, 1)), image.affine, image.header)
        if any(n > 1 for n in stored_shape[3:]):
            raise ScanReadError(path, f"NIfTI of shape {stored_shape}: only a single 3-D volume can be read")
        _check_promised_size(path, image)
        image = image.as_reoriented(ornt_transform(io_orientation(image.affine), axcodes2ornt(_AXIAL_DISPLAY)))
        voxels = np.asarray(image.get_fdata(dtype=np.float32))
    except ScanReadError:
        raise
    except FileNotFoundError as exc:
        raise ScanReadError(path, "no such file") from exc
    except ImageFileError as exc:
        raise ScanReadError(path, "not a NIfTI file") from exc
    except Exception as exc:  # nibabel, gzip and zlib raise many types on damaged files
        raise ScanReadError(path, f"damaged NIfTI file ({type(exc).__name__}: {exc})") from exc
    voxels, non_finite = replace_non_finite(voxels.reshape(voxels.shape[:3]))
    warnings = [non_finite] if non_finite else []
    notes: tuple[str, ...] = ()
    if modality is None:
        modality, guess, note = guess_modality(path)
        warnings.append(guess)
        notes = (note,)
    return Scan(
        voxels=voxels,
        modality=modality,
        geometry=_lps_geometry(image.affine, len(voxels)),
        provenance=Provenance((str(path),), "nifti", notes=notes),
        description=path.name.split(".")[0],
        warnings=tuple(warnings),
    )


GZIP_MAX_RATIO = 1032
"""Deflate never expands more than 1032:1: a .nii.gz cannot hold more voxel bytes than this times its size."""


def _check_promised_size(path: Path, image: nib.Nifti1Image) -> None:
    """Refuse a header that promises more voxels than the file can hold, than a scan may have,
    or than this machine can read; before reading any."""
    shape = tuple(int(n) for n in image.shape[:3])
    problem = scan_size_problem(shape)
    if problem is not None:
        raise ScanReadError(path, problem)
    data_bytes = math.prod(shape) * image.get_data_dtype().itemsize
    size = path.stat().st_size
    compressed = path.name.lower().endswith(".gz")
    can_hold = size * GZIP_MAX_RATIO if compressed else size - int(getattr(image.dataobj, "offset", 0))
    if data_bytes > can_hold:
        shown = "×".join(map(str, shape))
        reason = f"a {size:,}-byte gzip file cannot hold" if compressed else f"the file holds only {max(0, can_hold):,} bytes of"
        raise ScanReadError(path, f"damaged NIfTI file: the header promises {shown} voxels ({data_bytes:,} bytes), but {reason} voxels")


def _lps_geometry(affine: np.ndarray, n_slices: int) -> Geometry:
    """DICOM geometry of voxel axes (slice, row, col) under a RAS `affine` (nibabel has made
    zero voxel sizes 1, and a zero or non-finite affine fails the reorientation as damaged)."""
    axes = _RAS_TO_LPS @ affine[:3, :3]  # columns: the LPS step of one voxel along each axis
    origin = _RAS_TO_LPS @ affine[:3, 3]
    steps = np.linalg.norm(axes, axis=0)
    row_direction, column_direction = axes[:, 2] / steps[2], axes[:, 1] / steps[1]
    return Geometry(
        pixel_spacing=(float(steps[1]), float(steps[2])),
        orientation=tuple(float(v) for v in np.concatenate([row_direction, column_direction])),  # type: ignore[arg-type]
        positions=origin + np.arange(n_slices)[:, None] * axes[:, 0],
        slice_thickness=float(steps[0]),
    )
