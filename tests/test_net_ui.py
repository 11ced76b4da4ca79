"""The window's network actions offscreen, with real peers on loopback: send to storescp, nodes
and Verify, the Inbox filling while it is shown, search and retrieve from dcmqrscp."""

from __future__ import annotations

import pytest
from net_peers import LOOPBACK, dcmqrscp, free_port, ge_files, storescp, storescu, wait_until
from PySide6.QtWidgets import QTreeWidgetItem
from test_ui_window import (  # noqa: F401 - fixtures
    TIMEOUT_MS,
    convert,
    dialogs,
    open_in_memory,
    settings_at,
    wait_idle,
    window,
    with_tiny_model,
)

from aimedx_desktop.engine.net.listen import StorageServer
from aimedx_desktop.engine.net.nodes import Node
from aimedx_desktop.ui.net_dialogs import NodesDialog, SendRequest

GE_PATIENT = "QMNx85rKkkg"


class FakeNetDialogs:
    """Answers the network dialogs without a modal loop and records what was asked."""

    def __init__(self) -> None:
        self.edited: tuple[list[Node], str] | None = None
        self.edits = 0
        self.send_request: SendRequest | None = None
        self.offered: list[Node] = []

    def edit_nodes(self, nodes, calling_aet, verify):
        self.edits += 1
        return self.edited

    def send_options(self, nodes):
        self.offered = nodes
        return self.send_request


@pytest.fixture
def net_dialogs(window) -> FakeNetDialogs:
    window.net.dialogs = FakeNetDialogs()
    return window.net.dialogs


@pytest.fixture
def converted(qtbot, with_tiny_model, monkeypatch, ct_scan, net_dialogs):
    """A window showing a 5-slice synthetic MR, ready to send."""
    open_in_memory(qtbot, with_tiny_model, monkeypatch, ct_scan)
    convert(qtbot, with_tiny_model)
    assert with_tiny_model.net.send_action.isEnabled()
    return with_tiny_model


def test_send_synthetic_to_storescp(qtbot, converted, net_dialogs, tmp_path):
    win = converted
    with storescp(tmp_path / "scp") as node:
        win.settings.nodes = [Node(node.aet, node.host, node.port, "Local storescp")]
        net_dialogs.send_request = SendRequest(win.settings.nodes[0], deidentify=False)
        assert win.net.send()
        assert win.cancel_action.isEnabled() and not win.net.send_action.isEnabled()
        wait_idle(qtbot, win)
    assert net_dialogs.offered == win.settings.nodes
    assert win.statusBar().currentMessage().startswith("Stored 5 of 5 file(s) on " + node.address)
    assert len(list((tmp_path / "scp").glob("MR.*"))) == 5 and not win.dialogs.errors


def test_send_without_nodes_asks_for_one_first(converted, net_dialogs):
    assert not converted.net.send()
    assert net_dialogs.edits == 1 and net_dialogs.offered == []


def test_a_send_that_cannot_connect_says_why_and_changes_nothing(qtbot, converted, net_dialogs):
    win = converted
    synthetic = win.synthetic_scan
    win.settings.nodes = [Node("PACS", LOOPBACK, free_port())]
    net_dialogs.send_request = SendRequest(win.settings.nodes[0], deidentify=True)
    assert win.net.send()
    wait_idle(qtbot, win)
    [(title, text)] = win.dialogs.errors
    assert title == "Send failed" and "connection refused" in text
    assert win.synthetic_scan is synthetic and win.net.send_action.isEnabled()


def test_cancelling_a_send_says_how_many_were_stored(qtbot, converted, net_dialogs, tmp_path):
    win = converted
    out = tmp_path / "scp"
    with storescp(out, "--sleep-after", "1") as node:
        win.settings.nodes = [node]
        net_dialogs.send_request = SendRequest(node, deidentify=False)
        assert win.net.send()
        wait_until(lambda: len(list(out.glob("MR.*"))) >= 1, "the first file at storescp")
        win.cancel()
        wait_idle(qtbot, win)
        arrived = len(list(out.glob("MR.*")))
    message = win.statusBar().currentMessage()
    assert message.startswith("Send cancelled: ") and f"of 5 file(s) stored on {node.label}" in message
    stored = int(message.split()[2])
    assert stored <= arrived < 5 and not win.dialogs.errors


def test_nodes_dialog_edits_and_verifies(qtbot, window, tmp_path):
    dialog = NodesDialog([], "AIMEDX", window.net.verify, window)
    qtbot.addWidget(dialog)
    dialog.aet.setText("A TITLE LONGER THAN 16")
    dialog.add_or_update()
    assert dialog.nodes == [] and "longer than 16" in dialog.status.text()
    with storescp(tmp_path / "scp") as node:
        dialog.name.setText("Local storescp")
        dialog.aet.setText(node.aet)
        dialog.host.setText(node.host)
        dialog.port.setValue(node.port)
        dialog.add_or_update()
        dialog.verify_button.click()
        qtbot.waitUntil(lambda: dialog.verify_button.isEnabled(), timeout=TIMEOUT_MS)
        assert "answered the C-ECHO in" in dialog.status.text()
    dialog.port.setValue(free_port())
    dialog.verify()
    qtbot.waitUntil(lambda: dialog.verify_button.isEnabled(), timeout=TIMEOUT_MS)
    assert "could not be verified" in dialog.status.text()
    assert window.dialogs.errors[-1][0] == "Verify failed" and "connection refused" in window.dialogs.errors[-1][1]
    assert [n.name for n in dialog.nodes] == ["Local storescp"]
    dialog.our_aet.setText("")
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted and "empty" in dialog.status.text()


def test_edited_nodes_are_kept_in_the_settings(qtbot, window, net_dialogs, tmp_path):
    nodes = [Node("PACS", "10.0.0.5", 104, "Radiology"), Node("ORTHANC", "localhost", 4242)]
    net_dialogs.edited = (nodes, "WORKSTATION1")
    assert window.net.edit_nodes()
    reread = settings_at(tmp_path / "settings.ini")
    assert reread.nodes == nodes and reread.calling_aet == "WORKSTATION1"
    assert window.net.search_panel.node_box.count() == 2


def test_the_inbox_shows_arrivals_and_opens_a_series(qtbot, window, tmp_path, bundled_samples):
    inbox = tmp_path / "inbox"
    window.settings.inbox = inbox
    window.net.inbox.set_folder(inbox)
    window.net.inbox_action.trigger()
    assert window.net.dock.isVisible() and window.net.inbox.timer.isActive()
    assert window.net.inbox.series_items() == [] and "does not exist yet" in window.net.inbox.folder_label.text()
    with StorageServer(inbox, 0, bind=LOOPBACK) as server:
        assert storescu(Node(server.aet, LOOPBACK, server.port), ge_files(bundled_samples)).returncode == 0
    qtbot.waitUntil(lambda: len(window.net.inbox.series_items()) == 1, timeout=TIMEOUT_MS)
    [series] = window.net.inbox.series_items()
    assert (series.text(2), series.text(3)) == ("CT", "28")
    window.net.inbox.tree.itemDoubleClicked.emit(series, 0)
    wait_idle(qtbot, window)
    assert window.source_scan is not None and window.source_scan.n_slices == 28 and not window.dialogs.errors


def test_search_and_retrieve_from_dcmqrscp(qtbot, window, tmp_path, bundled_samples):
    inbox = tmp_path / "inbox"
    window.settings.inbox = inbox
    window.net.inbox.set_folder(inbox)
    panel = window.net.search_panel
    with dcmqrscp(tmp_path / "qr") as node:
        assert storescu(node, ge_files(bundled_samples)).returncode == 0
        window.settings.nodes = [node]
        panel.set_nodes(window.settings.nodes)
        panel.query.setText(GE_PATIENT)
        panel.search()
        wait_idle(qtbot, window)
        study: QTreeWidgetItem = panel.results.topLevelItem(0)
        assert GE_PATIENT in study.text(0) and study.child(0).text(2) == "CT"
        assert not panel.retrieve_button.isEnabled()
        study.setSelected(True)
        assert panel.retrieve_button.isEnabled()
        panel.retrieve_button.click()
        assert not window.net.inbox.change_button.isEnabled()  # the retrieve writes into this folder
        wait_idle(qtbot, window)
        assert window.net.inbox.change_button.isEnabled()
    assert window.statusBar().currentMessage().startswith("Retrieved 28 image(s) of 1 series")
    assert [item.text(3) for item in window.net.inbox.series_items()] == ["28"] and not window.dialogs.errors


def test_about_and_first_start_say_when_the_network_is_used(window, dialogs):
    from aimedx_desktop.ui.dialogs import FIRST_START_NOTICE

    window.show_about()
    for text in (dialogs.infos[-1][1], FIRST_START_NOTICE):
        assert "opens no network connection unless you configure a DICOM node" in text
    assert "(BSD 2-Clause)" in dialogs.infos[-1][1] and "(MIT)" in dialogs.infos[-1][1]  # the samples it opens
    assert [a.text() for a in window.menuBar().actions()[0].menu().actions() if "PACS" in a.text()] == ["&Send synthetic to PACS…"]


def test_ok_keeps_a_node_typed_but_not_added(qtbot, window):
    dialog = NodesDialog([], "AIMEDX", window.net.verify, window)
    qtbot.addWidget(dialog)
    dialog.name.setText("Radiology")
    dialog.aet.setText("PACS")
    dialog.host.setText("10.0.0.5")
    dialog.port.setValue(104)
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted and dialog.nodes == [Node("PACS", "10.0.0.5", 104, "Radiology")]
    removing = NodesDialog(dialog.nodes, "AIMEDX", window.net.verify, window)
    qtbot.addWidget(removing)
    removing.remove()  # the last node: OK must not bring it back from the fields
    removing.accept()
    assert removing.nodes == []


def test_verify_speaks_with_the_ae_title_being_edited(qtbot, window):
    """A node that knows us only by the new title refused the saved one."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    picky = AE("PICKY")
    picky.add_supported_context(Verification)
    picky.require_calling_aet = ["WORKSTN1"]
    port = free_port()
    server = picky.start_server((LOOPBACK, port), block=False)
    try:
        dialog = NodesDialog([], "AIMEDX", window.net.verify, window)
        qtbot.addWidget(dialog)
        dialog.our_aet.setText("WORKSTN1")
        dialog.aet.setText("PICKY")
        dialog.host.setText(LOOPBACK)
        dialog.port.setValue(port)
        dialog.verify()
        qtbot.waitUntil(lambda: dialog.verify_button.isEnabled(), timeout=TIMEOUT_MS)
        assert "answered the C-ECHO in" in dialog.status.text(), window.dialogs.errors
    finally:
        server.shutdown()


def test_search_results_go_when_a_new_search_starts_or_their_node_goes(qtbot, window):
    """A failed search left the last patient's studies up, and Retrieve then asked the newly chosen node."""
    from aimedx_desktop.engine.net.query import SeriesMatch, StudyMatch

    panel = window.net.search_panel
    first, second = Node("PACS", "10.0.0.5", 104, "Radiology"), Node("OTHER", "10.0.0.6", 104, "Other")
    panel.set_nodes([first, second])
    series = SeriesMatch("1.2", "1.2.3", "CT", "1", "HEAD", 28)
    panel.show_results(first, [StudyMatch("1.2", "DOE JANE", "P1", "2024-01-02", "HEAD", (series,))])
    panel.results.topLevelItem(0).setSelected(True)
    asked = []
    panel.retrieveRequested.disconnect()  # the window's jobs are not run here
    panel.searchRequested.disconnect()
    panel.retrieveRequested.connect(lambda node, chosen: asked.append(node))
    panel.retrieve()
    assert asked == [first]
    panel.node_box.setCurrentIndex(1)
    panel.query.setText("OTHERPATIENT")
    panel.search()
    assert panel.results.topLevelItemCount() == 0 and not panel.retrieve_button.isEnabled()
    panel.show_results(first, [StudyMatch("1.2", "DOE JANE", "P1", "2024-01-02", "HEAD", (series,))])
    panel.set_nodes([second])  # Radiology deleted in DICOM nodes…
    assert panel.results.topLevelItemCount() == 0


def test_a_retrieve_with_failed_images_says_so_in_a_dialog(window):
    from pathlib import Path

    from aimedx_desktop.engine.net.query import RetrieveReport

    window.net._retrieved(RetrieveReport(Node("PACS", "10.0.0.5", 104), Path("inbox"), 1, 28, 1, 2.0))
    assert window.dialogs.errors == [("Not every image was retrieved", window.dialogs.errors[0][1])]
    assert "1 image(s) failed" in window.dialogs.errors[0][1]


def test_a_dotted_patient_id_is_searched_as_a_patient_id(monkeypatch):
    from aimedx_desktop.engine.net import query
    from aimedx_desktop.ui import net_jobs

    asked = []

    def find(node, aet, timeout, patient_id="", study_uid="", cancel=None):
        asked.append((patient_id, study_uid))
        return []

    monkeypatch.setattr(query, "find", find)
    node = Node("PACS", "10.0.0.5", 104)
    net_jobs.search(node, "AIMEDX", "2023.001")
    net_jobs.search(node, "AIMEDX", "1.2.840.113619.2.55.3")
    assert asked == [("2023.001", ""), ("", "1.2.840.113619.2.55.3")]
