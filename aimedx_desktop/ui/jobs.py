"""What the worker thread runs: opening, converting and exporting, as plain functions (no Qt).

The engine is imported lazily so that the window can appear before torch has loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimedx_desktop.engine.scan import Modality, Scan

Progress = Callable[[int, int], None]
SliceReady = Callable[[int, Any], None]


def open_path(path: Path, series_uid: str | None = None) -> Scan | list[Any]:
    """The Scan at `path`, or the folder's SeriesInfo list when it holds several series."""
    from aimedx_desktop.engine.io import list_series, read_scan

    if path.is_dir() and series_uid is None:
        series = list_series(path)
        if len(series) > 1:
            return series
    return read_scan(path, series_uid=series_uid)


@dataclass(frozen=True)
class ModelEntry:
    """A bundle the user can pick: its folder and card, or why it cannot be used."""

    path: Path
    card: dict[str, Any] | None
    problem: str | None = None

    @property
    def label(self) -> str:
        if self.card is None:
            return f"{self.path.name} (unusable)"
        return f"{self.card.get('name', self.path.name)} {self.card.get('version', '')}".strip()

    def card_text(self) -> str:
        if self.card is None:
            return f"{self.path}\n\n{self.problem}"
        return f"{self.path}\n\n{json.dumps(self.card, indent=2, ensure_ascii=False)}"


def discover_models(imported: list[str]) -> list[ModelEntry]:
    """Bundled models (the default first), then the user's imported ones."""
    from aimedx_desktop.engine.bundle import BundleError, bundled_models, read_card

    entries = []
    seen: set[Path] = set()
    for path in [*bundled_models(), *(Path(p) for p in imported)]:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            entries.append(ModelEntry(path, read_card(path)))
        except BundleError as error:
            entries.append(ModelEntry(path, None, str(error)))
    return entries


def device_description() -> str:
    """'GPU: <name>' or 'CPU', as Translator(device='auto') will use."""
    from aimedx_desktop.engine.device import resolve_device
    import torch

    device = resolve_device("auto")
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return "CPU"


class TranslatorCache:
    """Keeps the last loaded Translator so that converting again does not reload weights; a
    bundle saved anew over the same folder (a retrained model re-imported) is loaded again."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._translator: Any = None

    def get(self, bundle_path: Path) -> Any:
        from aimedx_desktop.engine.bundle import load_bundle
        from aimedx_desktop.engine.translator import Translator

        key = (bundle_path.resolve(), *_file_signatures(bundle_path))
        if self._key != key:
            self._translator = Translator(load_bundle(bundle_path), device="auto")
            self._key = key
        return self._translator


def _file_signatures(folder: Path) -> list[tuple[str, int, int]]:
    """(name, size, modification time) of a bundle's files: what changes when it is saved anew."""
    signatures = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            status = path.stat()
            signatures.append((path.name, status.st_size, status.st_mtime_ns))
    return signatures


def convert(
    cache: TranslatorCache,
    bundle_path: Path,
    scan: Scan,
    source: Modality,
    progress: Progress,
    cancel: Any,
    on_slice: SliceReady,
) -> Scan:
    """`scan` read as `source` (the user's choice of direction), as the model takes it, translated.

    The synthetic scan carries the source's warnings, including intensity.prepare_source's note
    when 8-bit CT gray levels were calibrated to HU.
    """
    from aimedx_desktop.engine.intensity import prepare_source

    translator = cache.get(bundle_path)
    if scan.modality is not source:  # the user's choice replaces what the reader said or guessed
        kept = tuple(warning for warning in scan.warnings if not warning.startswith("modality "))
        chosen = f"read as {source.value}, as chosen in the window (the reader had {scan.modality.value})"
        scan = dataclasses.replace(scan, modality=source, warnings=(*kept, chosen))
    prepared = prepare_source(scan, translator.bundle.contract)
    return translator.translate(prepared, source.other, progress=progress, cancel=cancel, on_slice=on_slice)


@dataclass(frozen=True)
class ExportRequest:
    """What the export dialog asked for."""

    fmt: str
    out_dir: Path
    bits: int = 8
    window: tuple[float, float] | None = None
    deidentify: bool = False
    uncertainty: bool = False


def export(scan: Scan, request: ExportRequest, overwrite: bool, progress: Progress, cancel: Any) -> list[Path]:
    from aimedx_desktop.engine.io.export import export_scan

    return export_scan(
        scan,
        request.out_dir,
        fmt=request.fmt,
        window=request.window,
        bits=request.bits,
        deidentify=request.deidentify,
        overwrite=overwrite,
        progress=progress,
        cancel=cancel,
        uncertainty=request.uncertainty,
    )
