"""read_scan's dispatch on what a path is, and its errors for paths that hold nothing readable."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from aimedx_desktop.engine.io import ScanReadError, read_scan


@pytest.fixture
def mr_small(tmp_path):
    path = get_testdata_file("MR_small.dcm", download=False)
    if path is None:
        pytest.skip("pydicom does not bundle MR_small.dcm in this install")
    return path


def test_dispatch_by_kind_of_path(tmp_path, mr_small):
    no_extension = tmp_path / "IMG0001"
    shutil.copy(mr_small, no_extension)
    assert read_scan(no_extension).provenance.source_format == "dicom"
    dicom_folder = tmp_path / "dicom"
    dicom_folder.mkdir()
    shutil.copy(mr_small, dicom_folder / "a.dcm")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(dicom_folder / "preview.png")  # DICOM wins
    assert read_scan(dicom_folder).provenance.source_format == "dicom"
    png_folder = tmp_path / "png"
    (png_folder / "thumbnails").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png_folder / "1.png")
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(png_folder / "thumbnails" / "1.png")
    assert read_scan(png_folder, modality="mr").provenance.source_format == "png"
    compact_disc = tmp_path / "cd"  # a logo at the top, the series in DICOM/ (no DICOMDIR)
    (compact_disc / "DICOM" / "S1").mkdir(parents=True)
    Image.fromarray(np.zeros((64, 200), np.uint8)).save(compact_disc / "logo.png")
    shutil.copy(mr_small, compact_disc / "DICOM" / "S1" / "IM1")
    assert read_scan(compact_disc).provenance.source_format == "dicom"
    slices = tmp_path / "slices"  # a folder of slices whose DICOM output was written below it
    (slices / "synth").mkdir(parents=True)
    for index in range(3):
        Image.fromarray(np.full((4, 4), index, np.uint8)).save(slices / f"{index}.png")
    shutil.copy(mr_small, slices / "synth" / "synthetic_mr_0001.dcm")
    assert read_scan(slices, modality="ct").provenance.source_format == "png"
    raw = tmp_path / "raw"  # files without the DICM preamble (implicit VR, as old systems write) beside a logo
    raw.mkdir()
    Image.fromarray(np.zeros((64, 200), np.uint8)).save(raw / "logo.png")
    data_set = DicomBytesIO()
    data_set.is_little_endian, data_set.is_implicit_VR = True, True
    write_dataset(data_set, pydicom.dcmread(mr_small))
    (raw / "IM0").write_bytes(data_set.getvalue())  # no preamble, no file meta
    assert read_scan(raw).provenance.source_format == "dicom"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    assert read_scan(str(tmp_path / "v.nii.gz"), modality="mr").provenance.source_format == "nifti"


def test_paths_with_nothing_readable(tmp_path):
    with pytest.raises(ScanReadError, match="^missing.dcm: no such file or folder$"):
        read_scan(tmp_path / "missing.dcm")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScanReadError, match="^empty: the folder is empty$"):
        read_scan(empty)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "readme.txt").write_text("hello")
    (junk / "data.bin").write_bytes(b"\0" * 300)
    with pytest.raises(ScanReadError, match="^junk: no DICOM images found in this folder$"):
        read_scan(junk)


def test_a_file_that_cannot_be_opened_does_not_stop_a_png_folder(tmp_path, monkeypatch):
    for i in (1, 2):
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "locked").write_bytes(b"?")
    real_open = Path.open

    def open_(self, *args, **kwargs):
        if self.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    assert read_scan(tmp_path, modality="mr").shape == (2, 4, 4)


def test_a_pipe_or_a_device_is_refused_at_once(tmp_path):
    """Reading a FIFO nobody writes to, or /dev/zero, would never end (or fill the memory)."""
    import os
    import threading

    fifo = tmp_path / "scan.dcm"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read(path):
        try:
            read_scan(path)
        except ScanReadError as error:
            outcome.append(error)

    for path, kind in ((fifo, "a named pipe \\(FIFO\\)"), (Path("/dev/zero"), "a device"), (Path("/dev/urandom"), "a device")):
        reader = threading.Thread(target=read, args=(path,), daemon=True)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), f"read_scan({path}) hangs"
        with pytest.raises(ScanReadError, match=rf"^{path.name}: {kind}, not a file or folder; nothing was read$"):
            raise outcome.pop()
