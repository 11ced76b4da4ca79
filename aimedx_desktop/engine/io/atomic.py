"""All-or-nothing writing of a set of files: stage each under a temporary name, then rename.

Every file of a series is first written completely under a hidden temporary name beside its
final name. Only when all of them are written are they renamed into place, so a failure or a
cancellation while writing (the slow, error-prone part: disk full, no permission) leaves the
target folder exactly as it was. Renames within one folder are quick and atomic.

When overwriting, each old file is first kept under a hidden backup name (a hard link, so the
file itself stays in place until the new one is renamed over it in one step: a crash at any
moment leaves the old file or the new one); a failure while renaming puts the old files back,
and only a complete commit deletes the backups.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from aimedx_desktop.engine.io.errors import ExportError, os_error_reason

class StagedFiles:
    """Files written under temporary names by `stage`, moved into place together by `commit`."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []
        self._committed: list[Path] = []
        self._backups: list[tuple[Path, Path]] = []  # (backup, final) of the files moved aside
        self._retired: list[Path] = []

    def stage(self, final: Path, write: Callable[[Path], None]) -> None:
        """Call write(temporary_path), then flush the file to disk, so that once renamed a power
        cut leaves the old file or the new one, never an empty one. An OSError is reported
        against `final`, the name the user knows."""
        temporary = _hidden_name(final, "partial")
        self._staged.append((temporary, final))
        try:
            write(temporary)
            with temporary.open("r+b") as written:
                os.fsync(written.fileno())
        except OSError as error:
            raise OSError(error.errno, os_error_reason(error), str(final)) from error

    @property
    def paths(self) -> list[Path]:
        """The final names staged so far."""
        return [final for _, final in self._staged]

    def retire(self, paths: list[Path]) -> None:
        """Remove `paths` as part of the commit (moved aside first, deleted once all is in place,
        put back if the commit fails): files of an earlier series this one replaces."""
        self._retired.extend(paths)

    def commit(self, overwrite: bool) -> list[Path]:
        """Rename every staged file to its final name; refuses to replace a file unless `overwrite`.

        A file being replaced is backed up first and a retired one moved aside; the backups are
        deleted once all are in place. From then on the set is committed: an interruption while
        deleting backups must not make `discard` remove the new files."""
        for path in self._retired:
            backup = _hidden_name(path, "bak")
            os.replace(path, backup)
            self._backups.append((backup, path))
        for temporary, final in self._staged:
            if final.is_file() or final.is_symlink():
                if not overwrite:  # appeared since the caller checked
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final))
                self._backups.append((_back_up(final), final))
            os.replace(temporary, final)
            self._committed.append(final)
        committed = self.paths
        backups, self._staged, self._committed, self._backups = self._backups, [], [], []
        for backup, _ in backups:
            with contextlib.suppress(OSError):  # the new series is in place; a leftover backup is harmless
                backup.unlink()
        return committed

    def discard(self) -> None:
        """Remove every temporary file and every file this set renamed into place, then put back
        the old files that were moved aside."""
        for path in [temporary for temporary, _ in self._staged] + self._committed:
            with contextlib.suppress(OSError):  # best effort: never hide the error that got us here
                path.unlink()
        for backup, final in reversed(self._backups):
            with contextlib.suppress(OSError):
                _put_back(backup, final)


def _back_up(path: Path) -> Path:
    """A hidden backup of the file `path`, which keeps its name: a hard link, so that renaming the
    new file over `path` is the only step and no moment leaves `path` missing. Where the file
    system has no hard links (FAT, some network shares), or `path` is a symbolic link, the file
    is moved aside instead."""
    backup = _hidden_name(path, "bak")
    if not path.is_symlink():
        with contextlib.suppress(OSError):
            os.link(path, backup)
            return backup
    os.replace(path, backup)
    return backup


def _put_back(backup: Path, final: Path) -> None:
    """Undo `_back_up`. A backup still linked to `final` (the new file never replaced it) is just
    removed: renaming one link of a file onto another does nothing at all (POSIX rename)."""
    if final.exists() and os.path.samefile(backup, final):
        backup.unlink()
    else:
        os.replace(backup, final)


def remove_leftovers(final: Path) -> None:
    """Delete the temporary files that writes of `final` killed outright (power cut, SIGKILL: no
    clean-up runs) left beside it. Only for a file no other process is writing."""
    for leftover in final.parent.glob(f".{glob.escape(final.name)}.*.partial"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _hidden_name(final: Path, kind: str) -> Path:
    """A hidden, unique name beside `final`: the readers skip names starting with '.'."""
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}.{kind}")


@contextlib.contextmanager
def staged_files() -> Iterator[StagedFiles]:
    """A StagedFiles that is discarded when the block raises (including Cancelled and Ctrl-C)."""
    files = StagedFiles()
    try:
        yield files
    except BaseException:
        files.discard()
        raise


def replace_file(final: Path, write: Callable[[Path], None]) -> None:
    """One file `final` written by write(temporary_path), all or nothing: an interrupted or
    failed write leaves the previous file as it was, and no temporary file behind."""
    with staged_files() as staged:
        staged.stage(final, write)
        staged.commit(overwrite=True)


def write_text(path: Path, text: str) -> None:
    """`text` into the file `path` (UTF-8), all or nothing; ExportError naming it on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    except OSError as error:
        raise ExportError(f"cannot write {path}: {os_error_reason(error)}") from None
