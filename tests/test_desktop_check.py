"""The launcher's check of Qt's system libraries, without a display: the dynamic loader's report
is faked by an `ldd` on PATH that prints a chosen library list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aimedx_desktop import desktop_check

REPO_ROOT = Path(__file__).resolve().parent.parent
FRESH_DEBIAN = """\
/site-packages/PySide6/Qt/plugins/platforms/libqxcb.so:
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /site-packages/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f12)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f11)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
"""
FRESH_DEBIAN_LINE = (
    "error: the desktop cannot start: Qt's xcb platform plugin needs libxcb-icccm.so.4 and libxcb-keysyms.so.1, "
    "which are not installed; install them with: sudo apt-get install libxcb-icccm4 libxcb-keysyms1 "
    "(Fedora: sudo dnf install xcb-util-wm xcb-util-keysyms; openSUSE: sudo zypper install libxcb-icccm4 libxcb-keysyms1); "
    "the command line works without them (aimedx --help)"
)


@pytest.fixture
def fake_ldd(tmp_path, monkeypatch):
    """Put an `ldd` first on PATH that prints what the test writes to it."""
    folder = tmp_path / "bin"
    folder.mkdir()
    report = tmp_path / "ldd-report.txt"
    script = folder / "ldd"
    script.write_text(f"#!/bin/sh\ncat '{report}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return report


def test_missing_libraries_are_read_from_the_loaders_report():
    assert desktop_check.missing_libraries(FRESH_DEBIAN) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert desktop_check.missing_libraries("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


def test_the_line_names_the_packages_of_each_distribution():
    assert desktop_check.install_line(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"], "xcb") == FRESH_DEBIAN_LINE
    one = desktop_check.install_line(["libxcb-cursor.so.0", "libfoo.so.9"], "xcb")
    assert "needs libxcb-cursor.so.0 and libfoo.so.9, which are not installed" in one
    assert "sudo apt-get install libxcb-cursor0 (Fedora: sudo dnf install xcb-util-cursor;" in one
    assert "; and the package that provides libfoo.so.9" in one and "\n" not in one


@pytest.mark.parametrize(
    ("environ", "plugin"),
    [
        ({"DISPLAY": ":0"}, "xcb"),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "offscreen"),
        ({"QT_QPA_PLATFORM": "xcb:nomitshm;wayland"}, "xcb"),
        ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, None),
    ],
)
def test_the_plugin_qt_will_load(environ, plugin):
    assert desktop_check.platform_plugin(environ) == plugin


def test_the_check_uses_the_loaders_report_on_the_real_plugin(fake_ldd):
    assert any(p.name == "libqxcb.so" for p in desktop_check.qt_binaries("xcb"))
    fake_ldd.write_text(FRESH_DEBIAN)
    assert desktop_check.problem({"DISPLAY": ":0"}) == FRESH_DEBIAN_LINE
    fake_ldd.write_text("\tlibxcb-icccm.so.4 => /lib/libxcb-icccm.so.4 (0x1)\n")
    assert desktop_check.problem({"DISPLAY": ":0"}) is None


def test_no_display_is_said_before_qt_aborts():
    assert desktop_check.problem({}).startswith("error: no display to show the window on (DISPLAY is not set)")


def test_aimedx_prints_the_line_instead_of_starting_qt(fake_ldd):
    """The launcher end to end, with a display that does not exist: Qt would abort (exit 134)."""
    fake_ldd.write_text(FRESH_DEBIAN)
    environ = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-m", "aimedx_desktop"], capture_output=True, text=True, timeout=120,
                          env={**environ, "DISPLAY": ":97"}, cwd=REPO_ROOT)
    assert (done.returncode, done.stderr) == (1, FRESH_DEBIAN_LINE + "\n")


def test_the_installed_pyside6_keeps_its_references_across_signals():
    """PySide6 6.12.0 drops a reference to Python's True at each Signal.emit: a session of
    a few thousand signals then aborts the app (pyproject.toml excludes that version)."""
    before = sys.getrefcount(True)
    assert desktop_check.signal_problem() is None
    assert sys.getrefcount(True) >= before - 2  # asking costs nothing either way


def test_a_broken_emit_is_named_and_its_stolen_references_given_back(monkeypatch):
    """As PySide6 6.12.0 behaves: every emit takes one reference to True away."""
    import PySide6

    real_count = sys.getrefcount
    counted = []

    def count_as_if_each_emit_stole_one(obj):
        if obj is not True:
            return real_count(obj)
        counted.append(True)
        return 1000 if len(counted) == 1 else 1000 - desktop_check.EMIT_PROBES

    gave_back = []
    monkeypatch.setattr(desktop_check.sys, "getrefcount", count_as_if_each_emit_stole_one)
    monkeypatch.setattr(desktop_check.ctypes.pythonapi, "Py_IncRef", lambda obj: gave_back.append(obj.value))
    line = desktop_check.signal_problem()
    assert line.startswith(f"error: PySide6 {PySide6.__version__} is broken: each Qt signal drops a reference")
    assert gave_back == [True] * desktop_check.EMIT_PROBES


def test_no_garbage_collection_runs_between_the_two_counts(monkeypatch):
    """A collection there could free references to True by itself and fail a healthy PySide6."""
    import gc

    real_count, collecting = sys.getrefcount, []

    def count(obj):
        if obj is True:
            collecting.append(gc.isenabled())
        return real_count(obj)

    monkeypatch.setattr(desktop_check.sys, "getrefcount", count)
    assert gc.isenabled()
    desktop_check.signal_problem()
    assert collecting == [False, False] and gc.isenabled()


def test_aimedx_refuses_a_broken_pyside6_in_one_line_and_in_the_log(monkeypatch, capsys, log_home):
    """Started from a desktop menu, no terminal shows the line: the log keeps it."""
    from aimedx_desktop import cli

    line = "error: PySide6 6.12.0 is broken: each Qt signal drops a reference to Python's True, ..."
    monkeypatch.setattr(desktop_check, "problem", lambda: None)
    monkeypatch.setattr(desktop_check, "signal_problem", lambda: line)
    assert cli.main([]) == 1
    assert capsys.readouterr().err == line + "\n"
    assert "the desktop did not start: AI-MEDX Desktop" in (log_home / "aimedx.log").read_text() and line in (log_home / "aimedx.log").read_text()


def test_every_runtime_package_is_documented_and_installed_by_ci():
    packages = desktop_check.debian_packages()
    assert {"libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libegl1"} <= set(packages)
    for document in ("README.md", "packaging/README.md"):
        text = (REPO_ROOT / document).read_text(encoding="utf-8")
        assert [p for p in packages if f"{p}" not in text] == [], document
    assert "aimedx_desktop.desktop_check --debian-packages" in (REPO_ROOT / ".ci" / "run").read_text()
    done = subprocess.run([sys.executable, "-m", "aimedx_desktop.desktop_check", "--debian-packages"],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.stdout.split() == packages
