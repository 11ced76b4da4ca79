"""Before Qt starts: can it start here? One clear line instead of Qt's abort.

On a fresh Linux desktop Qt's xcb platform plugin may lack system libraries (Debian does not
install libxcb-icccm4 or libxcb-keysyms1 with a desktop), and Qt then aborts (exit 134) with a
message that blames libxcb-cursor0 whatever is missing. `problem()` asks the dynamic loader
(`ldd`) which libraries of the plugin Qt will load are missing, before Qt is imported, and
says in one line which packages to install (apt, and dnf/zypper names where known). Both
launchers go through it: `aimedx` (scripts/run-app.sh runs it) and the frozen app, whose
executable runs the same entry point.

`signal_problem()` then checks the installed PySide6 itself (6.12.0 corrupts Python's reference
counts at every signal) and the launcher refuses it in one line rather than crash later.

Run as `python -m aimedx_desktop.desktop_check --debian-packages` it prints the Debian packages
of every library in PACKAGES: what CI installs and the READMEs list.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PACKAGES: dict[str, tuple[str, str, str]] = {
    # soname: (Debian/Ubuntu apt, Fedora dnf, openSUSE zypper)
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "libxcb-icccm4"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "libxcb-keysyms1"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "libxcb-cursor0"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "libxcb-image0"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil", "libxcb-render-util0"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "libxcb-util1"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb-xkb1"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb-shape0"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb-randr0"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb", "libxcb-xfixes0"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb", "libxcb-sync1"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb", "libxcb-shm0"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb", "libxcb-render0"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb", "libxcb-glx0"),
    "libxcb.so.1": ("libxcb1", "libxcb", "libxcb1"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11-0"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon0"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libX11-xcb1"),
    "libX11.so.6": ("libx11-6", "libX11", "libX11-6"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libEGL1"),
    "libGL.so.1": ("libgl1", "libglvnd-glx", "libGL1"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl", "libOpenGL0"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "libfontconfig1"),
    "libfreetype.so.6": ("libfreetype6", "freetype", "libfreetype6"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2", "libglib-2_0-0"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2", "libgthread-2_0-0"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "libdbus-1-3"),
}
"""The system libraries PySide6's QtWidgets and its xcb plugin load, and the packages holding them."""

_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def platform_plugin(environ: Mapping[str, str]) -> str | None:
    """The platform plugin Qt will load, when its libraries are worth checking: the first of
    QT_QPA_PLATFORM, else xcb outside a Wayland session. None on a Wayland session (Qt picks
    wayland or xcb itself) and off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    chosen = environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen
    return None if environ.get("WAYLAND_DISPLAY") else "xcb"


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames `ldd` reports as 'not found', once each, in its order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def install_line(missing: list[str], plugin: str) -> str:
    """One line: what is missing and the command that installs it, on each distribution we know."""
    known = [name for name in missing if name in PACKAGES]
    unknown = [name for name in missing if name not in PACKAGES]
    commands = []
    for index, (tool, family) in enumerate((("apt-get", ""), ("dnf", "Fedora: "), ("zypper", "openSUSE: "))):
        packages = " ".join(dict.fromkeys(PACKAGES[name][index] for name in known))
        if packages:
            commands.append(f"{family}sudo {tool} install {packages}")
    advice = commands[0] + (f" ({'; '.join(commands[1:])})" if commands[1:] else "") if commands else ""
    if unknown:
        advice += f"{'; and ' if advice else ''}the package that provides {', '.join(unknown)}"
    pronoun, verb = ("it", "is") if len(missing) == 1 else ("them", "are")
    return (
        f"error: the desktop cannot start: Qt's {plugin} platform plugin needs {_listed(missing)}, which {verb} "
        f"not installed; install {pronoun} with: {advice}; the command line works without {pronoun} (aimedx --help)"
    )


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def qt_binaries(plugin: str) -> list[Path]:
    """PySide6's QtWidgets module and the platform plugin's library, where they exist."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(list(spec.submodule_search_locations)[0])
    candidates = [*root.glob("QtWidgets*.so"), root / "Qt" / "plugins" / "platforms" / f"libq{plugin}.so"]
    return [path for path in candidates if path.is_file()]


def run_ldd(binaries: list[Path]) -> str:
    """ldd's report on `binaries`; empty where ldd is missing (then Qt is left to try)."""
    ldd = shutil.which("ldd")
    if ldd is None or not binaries:
        return ""
    environ = dict(os.environ)
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:  # the frozen app's own copies of libraries come first, as its loader has them
        environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [frozen, environ.get("LD_LIBRARY_PATH")]))
    try:
        done = subprocess.run([ldd, *map(str, binaries)], capture_output=True, text=True, env=environ, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """The one line to print instead of starting Qt, or None when nothing is known to be missing."""
    plugin = platform_plugin(environ)
    if plugin is None:
        return None
    if plugin == "xcb" and not environ.get("DISPLAY"):
        return ("error: no display to show the window on (DISPLAY is not set): start the app from a desktop "
                "session, or use the command line (aimedx --help)")
    missing = missing_libraries(run_ldd(qt_binaries(plugin)))
    return install_line(missing, plugin) if missing else None


EMIT_PROBES = 8


def signal_problem() -> str | None:
    """One line when the installed PySide6 drops a reference to Python's True at every
    Signal.emit (6.12.0 does), else None.

    The app emits thousands of signals (progress, every pan, zoom and mouse move in pyqtgraph);
    once True's count reaches zero Python aborts ("bool_dealloc") and takes unsaved work with it.
    The probe gives back the references a broken emit took, so asking does no harm.
    """
    try:
        import PySide6
        from PySide6.QtCore import QObject, Signal
    except ImportError:
        return None  # no desktop interface: the caller says so

    class Probe(QObject):
        fired = Signal()

    probe = Probe()
    collecting = gc.isenabled()
    gc.disable()  # a collection between the two counts could free references to True by itself
    try:
        before = sys.getrefcount(True)
        for _ in range(EMIT_PROBES):
            probe.fired.emit()
        lost = before - sys.getrefcount(True)
    finally:
        if collecting:
            gc.enable()
    for _ in range(max(lost, 0)):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
    if lost < EMIT_PROBES // 2:
        return None
    return (f"error: PySide6 {PySide6.__version__} is broken: each Qt signal drops a reference to Python's True, "
            "and the app would crash within minutes; install another version: pip install 'PySide6>=6.5,!=6.12.0'")


def debian_packages() -> list[str]:
    """Every Debian package of PACKAGES, once each."""
    return list(dict.fromkeys(apt for apt, _, _ in PACKAGES.values()))


if __name__ == "__main__":
    if sys.argv[1:] != ["--debian-packages"]:
        sys.exit("usage: python -m aimedx_desktop.desktop_check --debian-packages")
    print(" ".join(debian_packages()))
