"""Search a PACS and pick series to retrieve: the panel only asks; the window runs the jobs."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aimedx_desktop.engine.net.nodes import Node

COLUMNS = ("Patient / series", "Date", "Modality", "Images", "Description")
_SERIES_ROLE = Qt.ItemDataRole.UserRole


class PacsSearchPanel(QWidget):
    """Node, patient ID or study UID, Search; results as studies with their series; Retrieve.

    searchRequested(node, text) and retrieveRequested(node, [SeriesMatch]) ask the window.
    """

    searchRequested = Signal(object, str)
    retrieveRequested = Signal(object, list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nodes: list[Node] = []
        self._searched: Node | None = None  # the node the listed studies came from
        self._busy = False
        self.node_box = QComboBox()
        self.query = QLineEdit()
        self.query.setPlaceholderText("Patient ID (wildcards * ?) or Study Instance UID")
        self.query.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        self.results = QTreeWidget()
        self.results.setHeaderLabels(list(COLUMNS))
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.results.itemSelectionChanged.connect(self._selection_changed)
        self.retrieve_button = QPushButton("Retrieve into the Inbox")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.note = QLabel("Configure a node in File → DICOM nodes… to search.")
        self.note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.query, 1)
        row.addWidget(self.search_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.node_box)
        layout.addLayout(row)
        layout.addWidget(self.results)
        layout.addWidget(self.retrieve_button)
        layout.addWidget(self.note)
        self.set_nodes([])

    def set_nodes(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        if self._searched is not None and self._searched not in nodes:  # its results belong to a node now gone
            self.clear_results()
        self.node_box.clear()
        self.node_box.addItems([node.label for node in nodes])
        self.note.setVisible(not nodes)
        self.set_busy(self._busy)

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.search_button.setEnabled(bool(self.nodes) and not busy)
        self._selection_changed()

    def search(self) -> None:
        if self.nodes and self.query.text().strip() and self.search_button.isEnabled():
            self.clear_results()  # a search that fails must not leave another query's studies up
            self.searchRequested.emit(self.nodes[self.node_box.currentIndex()], self.query.text().strip())

    def clear_results(self) -> None:
        self._searched = None
        self.results.clear()
        self._selection_changed()

    def show_results(self, node: Node, studies: list[Any]) -> None:
        """The studies `node` answered with: Retrieve asks that node for them."""
        self.results.clear()
        self._searched = node
        for study in studies:
            item = QTreeWidgetItem([f"{study.patient or '(no name)'} [{study.patient_id}]", study.date, "", "", study.description])
            item.setToolTip(0, study.study_uid)
            for series in study.series:
                count = "" if series.images is None else str(series.images)
                description = series.description if series.retrievable else f"{series.description} (not CT/MR: not retrieved)"
                child = QTreeWidgetItem([f"series {series.number}", "", series.modality, count, description.strip()])
                child.setData(0, _SERIES_ROLE, series)
                child.setDisabled(not series.retrievable)
                item.addChild(child)
            self.results.addTopLevelItem(item)
        self.results.expandAll()
        if not studies:
            self.results.addTopLevelItem(QTreeWidgetItem(["No matching study"]))
        self._selection_changed()

    def selected_series(self) -> list[Any]:
        """The retrievable series selected, directly or through their study, in list order."""
        chosen = []
        for study in (self.results.topLevelItem(i) for i in range(self.results.topLevelItemCount())):
            for child in (study.child(j) for j in range(study.childCount())):
                series = child.data(0, _SERIES_ROLE)
                if series is not None and series.retrievable and (child.isSelected() or study.isSelected()):
                    chosen.append(series)
        return chosen

    def _selection_changed(self) -> None:
        self.retrieve_button.setEnabled(bool(self.selected_series()) and not self._busy)

    def retrieve(self) -> None:
        series = self.selected_series()
        if series and self._searched is not None:
            self.retrieveRequested.emit(self._searched, series)
