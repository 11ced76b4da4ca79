"""The inbox on disk: atomic, never overwriting, listing what arrived (no network involved)."""

from __future__ import annotations

import errno
import os

import pydicom
import pytest
from net_peers import ge_files

from aimedx_desktop.engine.net import inbox as inbox_module
from aimedx_desktop.engine.net.inbox import inbox_signature, instance_path, list_inbox, store_instance


@pytest.fixture
def ge_instance(bundled_samples):
    path = ge_files(bundled_samples)[0]
    return pydicom.dcmread(path, stop_before_pixels=True), path.read_bytes()


def test_stores_once_and_keeps_what_is_there(tmp_path, ge_instance):
    ds, encoded = ge_instance
    assert inbox_signature(tmp_path / "inbox") == () and list_inbox(tmp_path / "inbox") == []
    path, new = store_instance(tmp_path / "inbox", ds, encoded)
    assert new and path == instance_path(tmp_path / "inbox", ds) and path.read_bytes() == encoded
    assert store_instance(tmp_path / "inbox", ds, b"a different encoding") == (path, False)
    assert path.read_bytes() == encoded and os.listdir(path.parent) == [path.name]
    [series] = list_inbox(tmp_path / "inbox")
    assert (series.modality, series.files, series.patient_id) == ("CT", 1, "QMNx85rKkkg")
    assert inbox_signature(tmp_path / "inbox") == ((str(path.parent), 1),)


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
