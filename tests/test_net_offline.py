"""No socket is opened unless a node is configured and an action using it is started.

socket.socket and name resolution are replaced by ones that record every attempt (and fail):
the boundary a test cannot otherwise watch. Window start-up, opening, converting, exporting,
the Inbox and `aimedx convert` must record nothing; a C-ECHO, the control, records one.
"""

from __future__ import annotations

import shutil
import socket
import traceback

import pytest
from test_ui_window import (
    TIMEOUT_MS,
    FakeDialogs,
    convert,
    settings_at,
    wait_idle,
)

from aimedx_desktop.cli import main
from aimedx_desktop.engine.net.association import echo
from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.nodes import Node
from aimedx_desktop.ui import app as ui_app
from aimedx_desktop.ui.jobs import ExportRequest


@pytest.fixture
def sockets(monkeypatch) -> list[str]:
    """Every attempt to create a socket or resolve a name, as the stack that made it."""
    attempts: list[str] = []

    def forbidden(*args, **kwargs):
        attempts.append("".join(traceback.format_stack(limit=8)))
        raise OSError("sockets are forbidden in this test")

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs) -> None:
            forbidden()

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    return attempts


def test_start_open_convert_export_and_inbox_open_no_socket(qtbot, sockets, tmp_path, monkeypatch, bundled_samples, tiny_bundle_dir):
    resources = tmp_path / "resources"
    (resources / "samples").mkdir(parents=True)
    shutil.copy(bundled_samples / "head_ct_ge" / "01.dcm", resources / "samples" / "01.dcm")
    monkeypatch.setenv("AIMEDX_RESOURCES", str(resources))
    dialogs = FakeDialogs()
    window = ui_app.create_window(settings_at(tmp_path / "settings.ini"), dialogs)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine_ready, timeout=TIMEOUT_MS)
    assert ui_app.start(window, initial=None)  # opens the sample
    wait_idle(qtbot, window)
    assert window.source_scan is not None
    dialogs.folder = tiny_bundle_dir
    window.ask_import_model()
    convert(qtbot, window)
    for fmt in ("png", "dicom"):
        dialogs.export_request = ExportRequest(fmt, tmp_path / fmt)
        assert window.export(fmt)
        wait_idle(qtbot, window)
        assert any((tmp_path / fmt).iterdir())
    window.settings.inbox = tmp_path / "inbox"
    window.net.inbox.set_folder(tmp_path / "inbox")
    window.net.inbox_action.trigger()
    qtbot.wait(100)
    assert not dialogs.errors, dialogs.errors
    assert sockets == [], sockets[0]


def test_the_command_line_converts_without_a_socket(sockets, tmp_path, bundled_samples, tiny_bundle_dir):
    out = tmp_path / "out"
    assert main(["convert", str(bundled_samples / "head_ct_ge" / "01.dcm"), "--out", str(out), "--format", "dicom",
                 "--model", str(tiny_bundle_dir)]) == 0
    assert sockets == [], sockets[0]


def test_the_patch_catches_a_network_action(sockets):
    """The control: were the patch blind, the tests above could not fail."""
    with pytest.raises(NetworkError):
        echo(Node("PACS", "127.0.0.1", 104), "AIMEDX", 1.0)
    assert sockets
