"""The DICOM node dialogs: the node list editor (with Verify) and the send target picker.

Like dialogs.Dialogs, NetDialogs is the one object the window asks, so that tests answer
without a modal loop. Verify does not talk to the network itself: it calls `verify(node, done)`,
which the window runs on its worker thread; a failure is shown by the window as an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.nodes import Node, check_aet

Verify = Callable[[Node, Callable[[float | None], None], str], bool]
"""verify(node, done, calling_aet): start a C-ECHO of node as calling_aet, False when it cannot
start now; done(seconds or None)."""
PROBLEM_STYLE = "color: #b00000;"
NETWORK_NOTE = "The app connects only to the nodes listed here, and only when you send, verify, search or retrieve."


@dataclass(frozen=True)
class SendRequest:
    node: Node
    deidentify: bool


class NetDialogs:
    """The real, modal network dialogs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent

    def edit_nodes(self, nodes: list[Node], calling_aet: str, verify: Verify) -> tuple[list[Node], str] | None:
        dialog = NodesDialog(nodes, calling_aet, verify, self.parent)
        return (dialog.nodes, dialog.calling_aet) if dialog.exec() == QDialog.DialogCode.Accepted else None

    def send_options(self, nodes: list[Node]) -> SendRequest | None:
        dialog = SendDialog(nodes, self.parent)
        return dialog.request() if dialog.exec() == QDialog.DialogCode.Accepted else None


class NodesDialog(QDialog):
    """The list of nodes (name, AE title, host, port) and our own AE title; edits apply on OK."""

    def __init__(self, nodes: list[Node], calling_aet: str, verify: Verify, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM nodes")
        self.nodes = list(nodes)
        self._verify = verify
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._show)
        self.name, self.aet, self.host = QLineEdit(), QLineEdit(), QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.our_aet = QLineEdit(calling_aet)
        form = QFormLayout()
        for label, field in (("Name", self.name), ("AE title", self.aet), ("Host", self.host), ("Port", self.port)):
            form.addRow(label, field)
        self.add_button, self.remove_button = QPushButton("Add / update"), QPushButton("Remove")
        self.verify_button = QPushButton("Verify (C-ECHO)")
        self.add_button.clicked.connect(self.add_or_update)
        self.remove_button.clicked.connect(self.remove)
        self.verify_button.clicked.connect(self.verify)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.verify_button):
            buttons.addWidget(button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        ok_cancel = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        ok_cancel.accepted.connect(self.accept)
        ok_cancel.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        ours = QFormLayout()
        ours.addRow("This computer's AE title", self.our_aet)
        layout.addLayout(ours)
        layout.addWidget(QLabel(NETWORK_NOTE))
        layout.addWidget(ok_cancel)
        self._refill(0)

    @property
    def calling_aet(self) -> str:
        return self.our_aet.text().strip()

    def _refill(self, row: int) -> None:
        self.list.clear()
        self.list.addItems([node.label for node in self.nodes])
        self.list.setCurrentRow(min(row, len(self.nodes) - 1))
        self.remove_button.setEnabled(bool(self.nodes))
        if not self.nodes:  # the last node removed: its fields must not come back as a node on OK
            for field in (self.name, self.aet, self.host):
                field.clear()

    def _show(self, row: int) -> None:
        if 0 <= row < len(self.nodes):
            node = self.nodes[row]
            self.name.setText(node.name)
            self.aet.setText(node.aet)
            self.host.setText(node.host)
            self.port.setValue(node.port)

    def _say(self, text: str, problem: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(PROBLEM_STYLE if problem else "")

    def node_in_form(self) -> Node | None:
        """The node the fields describe, or None (and the reason shown) when they do not."""
        try:
            return Node(self.aet.text(), self.host.text(), self.port.value(), self.name.text())
        except NetworkError as error:
            self._say(str(error), problem=True)
            return None

    def add_or_update(self) -> None:
        """Replace the node of the same name (or AE title@host:port), else add it."""
        node = self.node_in_form()
        if node is None:
            return
        same = [i for i, n in enumerate(self.nodes) if (n.name and n.name == node.name) or n.address == node.address]
        row = same[0] if same else len(self.nodes)
        self.nodes[row:row + 1] = [node]
        self._refill(row)
        self._say(f"{node.label} saved (applies on OK)")

    def remove(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.nodes):
            removed = self.nodes.pop(row)
            self._refill(row)
            self._say(f"{removed.label} removed (applies on OK)")

    def verify(self) -> None:
        """C-ECHO the node in the fields as the AE title in the dialog (not the saved one: a node
        that knows us only by the new title would refuse the old)."""
        node = self.node_in_form()
        if node is None or not self._calling_aet_ok():
            return
        self.verify_button.setEnabled(False)
        self._say(f"Verifying {node.address}…")
        if not self._verify(node, lambda seconds: self.verified(node, seconds), self.calling_aet):
            self.verify_button.setEnabled(True)
            self._say("Another job is running: verify when it has finished", problem=True)

    def verified(self, node: Node, seconds: float | None) -> None:
        """The outcome of Verify: seconds the C-ECHO took, or None when it failed."""
        self.verify_button.setEnabled(True)
        if seconds is None:
            self._say(f"{node.address} could not be verified", problem=True)
        else:
            self._say(f"✓ {node.address} answered the C-ECHO in {seconds * 1000:.0f} ms")

    def accept(self) -> None:
        """Keep a node typed into the fields but not added (OK means what the dialog shows), and stay
        open, saying why, while that node or our AE title is not valid."""
        if not self._calling_aet_ok():
            return
        if any(field.text().strip() for field in (self.name, self.aet, self.host)):
            node = self.node_in_form()
            if node is None:
                return
            if node not in self.nodes:
                self.add_or_update()
        super().accept()

    def _calling_aet_ok(self) -> bool:
        try:
            check_aet(self.calling_aet, "AE title of this computer")
        except NetworkError as error:
            self._say(str(error), problem=True)
            return False
        return True


class SendDialog(QDialog):
    """Which node to send the synthetic series to, and whether to de-identify it first."""

    def __init__(self, nodes: list[Node], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send synthetic to PACS")
        self.nodes = nodes
        self.node_box = QComboBox()
        self.node_box.addItems([node.label for node in nodes])
        self.deidentify = QCheckBox("De-identify (remove patient identity)")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Send")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Send to:"))
        layout.addWidget(self.node_box)
        layout.addWidget(self.deidentify)
        layout.addWidget(QLabel("The series is written as a derived DICOM series labelled synthetic, then sent."))
        layout.addWidget(buttons)

    def request(self) -> SendRequest:
        return SendRequest(self.nodes[self.node_box.currentIndex()], self.deidentify.isChecked())
