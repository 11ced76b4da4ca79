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
