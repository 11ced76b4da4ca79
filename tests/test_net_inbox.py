"""The inbox on disk: atomic, never overwriting, listing what arrived (no network involved)."""

from __future__ import annotations

import dataclasses
import errno
import os

import pydicom
import pytest
from net_peers import ge_files

from aimedx_desktop.engine.net import inbox as inbox_module
from aimedx_desktop.engine.net.inbox import InboxIndex, instance_path, list_inbox, store_instance


@pytest.fixture
def ge_instance(bundled_samples):
    path = ge_files(bundled_samples)[0]
    return pydicom.dcmread(path, stop_before_pixels=True), path.read_bytes()


def test_stores_once_and_keeps_what_is_there(tmp_path, ge_instance):
    ds, encoded = ge_instance
    assert list_inbox(tmp_path / "inbox") == []
    path, new = store_instance(tmp_path / "inbox", ds, encoded)
    assert new and path == instance_path(tmp_path / "inbox", ds) and path.read_bytes() == encoded
    assert store_instance(tmp_path / "inbox", ds, b"a different encoding") == (path, False)
    assert path.read_bytes() == encoded and os.listdir(path.parent) == [path.name]
    [series] = list_inbox(tmp_path / "inbox")
    assert (series.modality, series.files, series.patient_id) == ("CT", 1, "QMNx85rKkkg")


def test_the_index_answers_only_when_the_inbox_changed(tmp_path, ge_instance):
    ds, encoded = ge_instance
    index = InboxIndex(tmp_path / "inbox")
    assert index.poll() == [] and index.poll() is None
    store_instance(tmp_path / "inbox", ds, encoded)
    [series] = index.poll()
    assert (series.modality, series.files) == ("CT", 1) and index.poll() is None
    second = ds.copy()
    second.SOPInstanceUID = pydicom.uid.generate_uid()
    store_instance(tmp_path / "inbox", second, encoded)
    [grown] = index.poll()
    assert grown == dataclasses.replace(series, files=2)
    (series.folder / ".arriving.dcm.partial").write_bytes(b"")  # a transfer under way is not a change
    assert index.poll() is None
    for path in list(series.folder.iterdir()):
        path.unlink()
    assert index.poll() == []


def test_without_hard_links_the_name_is_claimed_exclusively(tmp_path, ge_instance, monkeypatch):
    """FAT and some network shares have no hard links: the fallback must not overwrite either."""
    ds, encoded = ge_instance

    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(inbox_module.os, "link", no_links)
    path, new = store_instance(tmp_path / "inbox", ds, encoded)
    assert new and path.read_bytes() == encoded
    # the race store_instance guards against: the name taken between its check and the rename
    path.write_bytes(b"someone else's file")
    temporary = path.with_name(".arriving.partial")
    temporary.write_bytes(encoded)
    assert not inbox_module._name_new(temporary, path)
    assert path.read_bytes() == b"someone else's file"


def test_without_hard_links_a_failed_rename_leaves_no_empty_file(tmp_path, ge_instance, monkeypatch):
    """Windows refuses a rename while a reader holds the name open: the empty claim must go, or a
    resend would be answered 'stored' while the inbox holds 0 bytes."""
    ds, encoded = ge_instance

    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    def refused(source, target):
        raise PermissionError(errno.EACCES, "Access is denied", str(target))

    monkeypatch.setattr(inbox_module.os, "link", no_links)
    monkeypatch.setattr(inbox_module.os, "replace", refused)
    with pytest.raises(PermissionError):
        store_instance(tmp_path / "inbox", ds, encoded)
    assert not instance_path(tmp_path / "inbox", ds).exists()
    monkeypatch.undo()
    assert store_instance(tmp_path / "inbox", ds, encoded)[1]  # the resend stores it


def test_a_series_whose_header_could_not_be_read_is_read_again_when_it_changes(tmp_path, ge_instance):
    ds, encoded = ge_instance
    folder = instance_path(tmp_path / "inbox", ds).parent
    folder.mkdir(parents=True)
    (folder / "0.damaged.dcm").write_bytes(b"not DICOM")  # sorts first: the header the listing reads
    index = InboxIndex(tmp_path / "inbox")
    [blank] = index.poll()
    assert (blank.modality, blank.patient_id, blank.files) == ("", "", 1)
    store_instance(tmp_path / "inbox", ds, encoded)
    assert [s.files for s in index.poll()] == [2]
    (folder / "0.damaged.dcm").unlink()
    [series] = index.poll()
    assert (series.modality, series.patient_id, series.files) == ("CT", "QMNx85rKkkg", 1)
