"""What the worker thread runs for DICOM networking, as plain functions (no Qt).

pynetdicom and the writers are imported when a job runs, never while the window starts: the app
opens no socket and loads no network code until the user starts a network action.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aimedx_desktop.engine.net.nodes import DEFAULT_TIMEOUT, Node
from aimedx_desktop.engine.scan import Scan

Progress = Callable[[int, int], None]
VERIFY_TIMEOUT = 5.0
"""Seconds a Verify (C-ECHO) waits: the user is looking at the dialog."""
_UID = re.compile(r"[0-9]+(\.[0-9]+){3,}")
"""A study UID as the search box takes it: four or more numbers joined by dots (real UIDs have
many more); "2023.001" is a patient ID."""


def send_synthetic(
    scan: Scan,
    node: Node,
    calling_aet: str,
    window: tuple[float, float] | None,
    deidentify: bool,
    progress: Progress,
    cancel: Any,
    on_result: Callable[[Any], None],
) -> Any:
    """Write `scan` as a derived DICOM series to a temporary folder and send it: the SendReport."""
    from aimedx_desktop.engine.io.export import export_scan
    from aimedx_desktop.engine.net.send import collect_files, send_files

    with tempfile.TemporaryDirectory(prefix="aimedx-send-") as folder:
        written = export_scan(scan, folder, fmt="dicom", window=window, deidentify=deidentify, progress=progress, cancel=cancel)
        files = collect_files(written)
        return send_files(files, node, calling_aet, DEFAULT_TIMEOUT, progress=progress, cancel=cancel, on_result=on_result)


def verify(node: Node, calling_aet: str) -> float:
    from aimedx_desktop.engine.net.association import echo

    return echo(node, calling_aet, VERIFY_TIMEOUT)


def search(node: Node, calling_aet: str, text: str, cancel: Any = None) -> list[Any]:
    """Studies on `node` whose study UID is `text` when it looks like a UID, else whose patient ID
    matches it (wildcards allowed); `cancel` stops it between queries."""
    from aimedx_desktop.engine.net.query import find

    text = text.strip()
    if _UID.fullmatch(text):
        return find(node, calling_aet, DEFAULT_TIMEOUT, study_uid=text, cancel=cancel)
    return find(node, calling_aet, DEFAULT_TIMEOUT, patient_id=text, cancel=cancel)


def retrieve(node: Node, calling_aet: str, inbox: Path, series: Sequence[Any], progress: Progress, cancel: Any) -> Any:
    from aimedx_desktop.engine.net.query import retrieve as get

    return get(node, calling_aet, DEFAULT_TIMEOUT, inbox, series, progress=progress, cancel=cancel)
