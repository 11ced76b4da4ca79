"""All-or-nothing file sets (engine.io.atomic) at the moments a crash or Ctrl-C can hit them."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

import pytest

from aimedx_desktop.engine.io import atomic
from aimedx_desktop.engine.io.atomic import remove_leftovers, staged_files


def _write(text: str):
    return lambda temporary: temporary.write_text(text)


def test_a_replaced_file_keeps_its_name_until_the_new_one_takes_it(tmp_path, monkeypatch):
    """A power cut or SIGKILL between two steps must find the old file or the new one, never
    neither (as `train --resume` would: "no checkpoint to resume from")."""
    target = tmp_path / "checkpoint.pt"
    target.write_text("epoch 1")
    real_replace, seen = atomic.os.replace, []

    def replace(source, destination):
        seen.append(target.read_text() if target.exists() else None)
        real_replace(source, destination)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with staged_files() as staged:
        staged.stage(target, _write("epoch 2"))
        staged.commit(overwrite=True)
    assert seen == ["epoch 1"] and target.read_text() == "epoch 2"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_ctrl_c_while_the_backups_are_deleted_keeps_the_committed_files(tmp_path, monkeypatch):
    first, second = tmp_path / "a.dcm", tmp_path / "b.dcm"
    first.write_text("old a")
    second.write_text("old b")
    real_unlink = Path.unlink

    def unlink(path, *args, **kwargs):
        real_unlink(path, *args, **kwargs)
        if path.name.endswith(".bak"):
            raise KeyboardInterrupt  # after the first backup is gone

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(KeyboardInterrupt), staged_files() as staged:
        staged.stage(first, _write("new a"))
        staged.stage(second, _write("new b"))
        staged.commit(overwrite=True)
    monkeypatch.undo()
    assert (first.read_text(), second.read_text()) == ("new a", "new b")


@pytest.mark.parametrize("fails", [False, True])
def test_without_hard_links_files_are_moved_aside_and_put_back_on_failure(tmp_path, monkeypatch, fails):
    """FAT and some network shares refuse links: the old file is moved aside instead."""
    first, second = tmp_path / "a.dcm", tmp_path / "b.dcm"
    first.write_text("old a")
    second.write_text("old b")
    real_replace = atomic.os.replace

    def replace(source, destination):
        if fails and str(source).endswith(".partial") and Path(destination) == second:
            raise OSError(errno.ENOSPC, "No space left on device", str(destination))
        real_replace(source, destination)

    def no_links(*args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError) if fails else contextlib.nullcontext(), staged_files() as staged:
        staged.stage(first, _write("new a"))
        staged.stage(second, _write("new b"))
        staged.commit(overwrite=True)
    assert (first.read_text(), second.read_text()) == (("old a", "old b") if fails else ("new a", "new b"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.dcm", "b.dcm"]


def test_leftovers_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    keep = ["checkpoint.pt", ".checkpoint.pt.0a1b2c3d.bak", ".losses.csv.0a1b2c3d.partial", "checkpoint.pt.partial"]
    for name in [*keep, ".checkpoint.pt.0a1b2c3d.partial", ".checkpoint.pt.ffffffff.partial"]:
        (tmp_path / name).write_text("x")
    remove_leftovers(tmp_path / "checkpoint.pt")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(keep)
