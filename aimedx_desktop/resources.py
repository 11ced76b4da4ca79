"""Where the bundled models, samples and icons live: in the source tree or the frozen app."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    """resources/ beside the package, inside a PyInstaller bundle, or $AIMEDX_RESOURCES."""
    override = os.environ.get("AIMEDX_RESOURCES")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def models_dir() -> Path:
    return resources_dir() / "models"


def samples_dir() -> Path:
    return resources_dir() / "samples"


def default_sample(root: Path | None = None) -> Path | None:
    """The bundled sample the app opens and the self-test converts: a CT series folder first,
    else any other sample folder or file; None when no sample is bundled."""
    root = samples_dir() if root is None else root
    if not root.is_dir():
        return None
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith(".") and p.suffix.lower() != ".md"]
    entries.sort(key=lambda p: (not p.is_dir(), "ct" not in p.name.lower()))
    return entries[0] if entries else None
