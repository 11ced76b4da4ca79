"""What the app remembers between runs, on top of QSettings (which tests point at a temp file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.nodes import DEFAULT_AET, Node

ORGANISATION = "AI-MEDX"
APPLICATION = "AI-MEDX Desktop"
MAX_RECENT = 10
DEFAULT_INBOX = Path.home() / "AI-MEDX Inbox"


def default_qsettings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


def pushed_recent(recent: list[str], path: str, limit: int = MAX_RECENT) -> list[str]:
    """`path` first, without duplicates, at most `limit` entries."""
    return [path, *(p for p in recent if p != path)][:limit]


class AppSettings:
    """Typed access to the few things the app keeps; lists are stored as JSON (INI-safe)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else default_qsettings()

    def _get_list(self, key: str) -> list[str]:
        try:
            value = json.loads(str(self.store.value(key, "[]")))
        except json.JSONDecodeError:
            return []
        return [str(v) for v in value] if isinstance(value, list) else []

    def _set(self, key: str, value: Any) -> None:
        self.store.setValue(key, value)
        self.store.sync()

    def _get_bool(self, key: str, default: bool) -> bool:
        value = self.store.value(key, default)
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1")

    @property
    def notice_accepted(self) -> bool:
        return self._get_bool("notice_accepted", False)

    @notice_accepted.setter
    def notice_accepted(self, value: bool) -> None:
        self._set("notice_accepted", bool(value))

    @property
    def recent_files(self) -> list[str]:
        return self._get_list("recent_files")

    def add_recent(self, path: Path) -> None:
        self._set("recent_files", json.dumps(pushed_recent(self.recent_files, str(path))))

    def clear_recent(self) -> None:
        self._set("recent_files", "[]")

    @property
    def imported_models(self) -> list[str]:
        return self._get_list("imported_models")

    def add_imported_model(self, path: Path) -> None:
        models = [p for p in self.imported_models if p != str(path)] + [str(path)]
        self._set("imported_models", json.dumps(models))

    @property
    def model(self) -> str:
        return str(self.store.value("model", ""))

    @model.setter
    def model(self, path: str) -> None:
        self._set("model", path)

    @property
    def last_dir(self) -> str:
        return str(self.store.value("last_dir", str(Path.home())))

    @last_dir.setter
    def last_dir(self, path: str) -> None:
        self._set("last_dir", path)

    @property
    def linked(self) -> bool:
        return self._get_bool("linked", True)

    @linked.setter
    def linked(self, value: bool) -> None:
        self._set("linked", bool(value))

    @property
    def overlays(self) -> bool:
        return self._get_bool("overlays", True)

    @overlays.setter
    def overlays(self, value: bool) -> None:
        self._set("overlays", bool(value))

    @property
    def nodes(self) -> list[Node]:
        """The configured DICOM nodes; an entry that no longer parses is left out."""
        try:
            entries = json.loads(str(self.store.value("dicom_nodes", "[]")))
        except json.JSONDecodeError:
            return []
        nodes = []
        for entry in entries if isinstance(entries, list) else []:
            try:
                nodes.append(Node.from_dict(entry))
            except (KeyError, TypeError, ValueError, NetworkError):
                continue
        return nodes

    @nodes.setter
    def nodes(self, nodes: list[Node]) -> None:
        self._set("dicom_nodes", json.dumps([node.to_dict() for node in nodes]))

    @property
    def calling_aet(self) -> str:
        return str(self.store.value("calling_aet", DEFAULT_AET))

    @calling_aet.setter
    def calling_aet(self, title: str) -> None:
        self._set("calling_aet", title)

    @property
    def inbox(self) -> Path:
        """The folder the Inbox lists (and `aimedx listen --inbox` should fill)."""
        return Path(str(self.store.value("inbox", str(DEFAULT_INBOX))))

    @inbox.setter
    def inbox(self, folder: Path) -> None:
        self._set("inbox", str(folder))
