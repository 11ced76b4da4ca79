"""The Inbox: the studies and series received into the inbox folder; a double click opens one.

New arrivals appear while the panel is shown: a timer polls the folder (engine.net.inbox.InboxIndex:
series folders and their file counts, a header read only for a series not seen before) and
rebuilds the list only when it changed. Polling, not a file-system watcher: it also works on network
shares, where watchers miss changes made by other machines (a scanner's SCP, `aimedx listen`).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from aimedx_desktop.engine.net.inbox import InboxIndex

POLL_MS = 1500
COLUMNS = ("Patient / series", "Date", "Modality", "Images", "Description")
_FOLDER_ROLE = Qt.ItemDataRole.UserRole


class InboxPanel(QWidget):
    """Lists the inbox as studies with their series; emits openRequested(series folder)."""

    openRequested = Signal(Path)
    changeFolderRequested = Signal()

    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder = folder
        self._index = InboxIndex(folder)
        self.folder_label = QLabel("")
        self.folder_label.setWordWrap(True)
        self.change_button = QPushButton("Change…")
        self.change_button.clicked.connect(self.changeFolderRequested)
        row = QHBoxLayout()
        row.addWidget(self.folder_label, 1)
        row.addWidget(self.change_button)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.tree)
        layout.addWidget(QLabel("Double-click a series to open it. `aimedx listen --inbox` fills this folder."))
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.refresh)

    def set_folder(self, folder: Path) -> None:
        self.folder = folder
        self._index = InboxIndex(folder)
        self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 - poll only while someone looks
        self.refresh()
        self.timer.start()
        super().showEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802
        self.timer.stop()
        super().hideEvent(event)

    def refresh(self) -> bool:
        """Re-read the inbox if it changed since the last look; True when the list was rebuilt."""
        try:
            series = self._index.poll()
        except OSError as error:
            self.folder_label.setText(f"Inbox {self.folder}: cannot read it ({error.strerror or error})")
            return False
        if series is None:
            return False
        self._fill(series)
        where = "" if self.folder.is_dir() else " (does not exist yet)"
        self.folder_label.setText(f"Inbox {self.folder}{where}: {len(series)} series")
        return True

    def _fill(self, series: list) -> None:
        self.tree.clear()
        studies: dict[str, QTreeWidgetItem] = {}
        for entry in series:
            study = studies.get(entry.study_uid)
            if study is None:
                patient = f"{entry.patient or '(no name)'} [{entry.patient_id}]"
                study = QTreeWidgetItem([patient, entry.study_date, "", "", ""])
                study.setToolTip(0, entry.study_uid)
                studies[entry.study_uid] = study
                self.tree.addTopLevelItem(study)
            item = QTreeWidgetItem(["series", entry.study_date, entry.modality, str(entry.files), entry.description])
            item.setData(0, _FOLDER_ROLE, str(entry.folder))
            item.setToolTip(0, entry.series_uid)
            study.addChild(item)
            study.setText(2, " ".join(sorted({study.text(2), entry.modality} - {""})))
            study.setText(3, str(int(study.text(3) or 0) + entry.files))
        self.tree.expandAll()
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)

    def series_items(self) -> list[QTreeWidgetItem]:
        study_items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [study.child(j) for study in study_items for j in range(study.childCount())]

    def _double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        if item.childCount() == 1:  # a study with one series opens it
            item = item.child(0)
        folder = item.data(0, _FOLDER_ROLE)
        if folder:
            self.openRequested.emit(Path(folder))
