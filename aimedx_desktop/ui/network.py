"""The window's DICOM network actions: send the synthetic series, edit nodes, the Inbox dock with
its PACS search. Every network call runs as a job on the window's worker (progress, cancel).

Nothing here opens a socket by itself: the actions do, when the user starts them with a node
from the settings.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QTabWidget

from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.engine.net.nodes import Node
from aimedx_desktop.ui import net_jobs
from aimedx_desktop.ui.inbox import InboxPanel
from aimedx_desktop.ui.net_dialogs import NetDialogs
from aimedx_desktop.ui.pacs_search import PacsSearchPanel

if TYPE_CHECKING:
    from aimedx_desktop.ui.main_window import MainWindow

SHOWN_FAILURES = 5


def _action(window: MainWindow, text: str, slot: Callable[[], Any]) -> QAction:
    action = QAction(text, window)
    action.triggered.connect(lambda _checked=False: slot())
    return action


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


class NetworkUi:
    """Actions for the File and View menus, and the Inbox dock, attached to `window`."""

    def __init__(self, window: MainWindow, dialogs: NetDialogs | None = None) -> None:
        self.window = window
        self.settings = window.settings
        self.dialogs = dialogs or NetDialogs(window)
        self.send_action = _action(window, "&Send synthetic to PACS…", self.send)
        self.nodes_action = _action(window, "DICOM &nodes…", self.edit_nodes)
        self.inbox = InboxPanel(self.settings.inbox)
        self.inbox.openRequested.connect(window.open_path)
        self.inbox.changeFolderRequested.connect(self.change_inbox)
        self.search_panel = PacsSearchPanel()
        self.search_panel.set_nodes(self.settings.nodes)
        self.search_panel.searchRequested.connect(self.search)
        self.search_panel.retrieveRequested.connect(self.retrieve)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.inbox, "Received")
        self.tabs.addTab(self.search_panel, "Search PACS")
        self.dock = QDockWidget("Inbox", window)
        self.dock.setObjectName("inbox_dock")
        self.dock.setWidget(self.tabs)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        self.inbox_action: QAction = self.dock.toggleViewAction()
        self.inbox_action.setText("&Inbox")
        self.inbox_action.setShortcut("Ctrl+I")

    def update_state(self, busy: bool) -> None:
        self.send_action.setEnabled(not busy and self.window.synthetic_scan is not None)
        self.nodes_action.setEnabled(not busy)
        self.search_panel.set_busy(busy)
        self.inbox.change_button.setEnabled(not busy)  # a retrieve writes into the folder it started with

    def _status(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 10_000)

    # --- nodes --------------------------------------------------------------------------
    def edit_nodes(self) -> bool:
        """The nodes dialog; True when the user saved its edits."""
        edited = self.dialogs.edit_nodes(self.settings.nodes, self.settings.calling_aet, self.verify)
        if edited is None:
            return False
        self.settings.nodes, self.settings.calling_aet = edited
        self.search_panel.set_nodes(edited[0])
        return True

    def verify(self, node: Node, done: Callable[[float | None], None], calling_aet: str | None = None) -> bool:
        """C-ECHO `node` on the worker as `calling_aet` (the title being edited; by default the saved
        one); done(seconds), or done(None) after the error is shown."""
        aet = calling_aet or self.settings.calling_aet
        return self.window.run_job(
            lambda ctx: net_jobs.verify(node, aet), done, "Verify failed", node.label, on_abort=lambda: done(None)
        )

    # --- sending ------------------------------------------------------------------------
    def send(self) -> bool:
        scan = self.window.synthetic_scan
        if scan is None or self.window.worker.busy:
            return False
        if not self.settings.nodes and not self.edit_nodes():
            return False
        nodes = self.settings.nodes
        if not nodes:
            self._status("No DICOM node to send to: add one in File → DICOM nodes…")
            return False
        request = self.dialogs.send_options(nodes)
        if request is None:
            return False
        viewer_window = self.window.synthetic_viewer.window
        window = (viewer_window.centre, viewer_window.width)
        aet, confirmed = self.settings.calling_aet, []

        def job(ctx: Any) -> Any:
            return net_jobs.send_synthetic(scan, request.node, aet, window, request.deidentify, ctx.progress, ctx.cancel, confirmed.append)

        def cancelled_text() -> str:
            stored = sum(result.stored for result in confirmed)
            return f"Send cancelled: {stored} of {scan.n_slices} file(s) stored on {request.node.label}"

        started = self.window.run_job(
            job, self._sent, "Send failed", f"{scan.description or 'synthetic series'} → {request.node.label}",
            cancel=CancelToken(), cancelled_text=cancelled_text, activity=f"the transfer to {request.node.label}",
            lands_outside=True,
        )
        if started:
            self._status(f"Sending {scan.n_slices} synthetic slice(s) to {request.node.label}…")
        return started

    def _sent(self, report: Any) -> None:
        self._status(_sentence(report.summary()))
        if report.complete:
            self.window.synthetic_unsaved = False
        if not report.complete:
            failures = [f"{result.path.name}: {result.detail}" for result in report.results if not result.stored]
            more = f"\n… and {len(failures) - SHOWN_FAILURES} more" if len(failures) > SHOWN_FAILURES else ""
            self.window.dialogs.error("Not every file was stored", f"{report.summary()}\n\n" + "\n".join(failures[:SHOWN_FAILURES]) + more)

    # --- inbox and query/retrieve -------------------------------------------------------
    def change_inbox(self) -> None:
        folder = self.window.dialogs.open_folder(str(self.settings.inbox), "Inbox folder")
        if folder is not None:
            self.settings.inbox = folder
            self.inbox.set_folder(folder)

    def search(self, node: Node, text: str) -> bool:
        aet = self.settings.calling_aet
        started = self.window.run_job(
            lambda ctx: net_jobs.search(node, aet, text, ctx.cancel), lambda studies: self.search_panel.show_results(node, studies),
            "Search failed", f"{text} on {node.label}", cancel=CancelToken(), cancelled_text=lambda: "Search cancelled",
        )
        if started:
            self._status(f"Searching {node.label} for {text}…")
        return started

    def retrieve(self, node: Node, series: list[Any]) -> bool:
        aet, inbox = self.settings.calling_aet, Path(self.settings.inbox)
        started = self.window.run_job(
            lambda ctx: net_jobs.retrieve(node, aet, inbox, series, ctx.progress, ctx.cancel),
            self._retrieved, "Retrieve failed", f"{len(series)} series from {node.label}",
            cancel=CancelToken(), on_abort=self.inbox.refresh, activity=f"the retrieve from {node.label}",
            lands_outside=True,
        )
        if started:
            self._status(f"Retrieving {len(series)} series from {node.label}…")
        return started

    def _retrieved(self, report: Any) -> None:
        self._status(_sentence(report.summary()))
        self.inbox.refresh()
        self.tabs.setCurrentWidget(self.inbox)
        if report.failed:  # as a send says so: a status line is gone in seconds
            self.window.dialogs.error("Not every image was retrieved", report.summary())
