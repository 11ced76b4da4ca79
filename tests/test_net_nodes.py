"""AET@HOST:PORT parsing and the AE title rules (PS3.5): no network involved."""

from __future__ import annotations

import pytest

from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.nodes import Node, check_aet, parse_node


@pytest.mark.parametrize(
    "text, aet, host, port",
    [
        ("PACS@192.168.1.20:104", "PACS", "192.168.1.20", 104),
        ("  ORTHANC@pacs.example.org:4242 ", "ORTHANC", "pacs.example.org", 4242),
        ("A@B@host:11112", "A@B", "host", 11112),  # '@' may be part of an AE title
        ("STORESCP@[::1]:11112", "STORESCP", "::1", 11112),
    ],
)
def test_parse_node(text, aet, host, port):
    node = parse_node(text)
    assert (node.aet, node.host, node.port) == (aet, host, port)
    assert parse_node(node.address) == node


@pytest.mark.parametrize(
    "text, reason",
    [
        ("PACS@host", "AET@HOST:PORT"),
        ("host:104", "AET@HOST:PORT"),
        ("PACS@host:http", "not a number"),
        ("PACS@host:70000", "between 1 and 65535"),
        ("PACS@:104", "not a host"),
        ("@host:104", "empty"),
        ("A_TITLE_OF_17_CHAR@host:104", "longer than 16"),
        ("BACK\\SLASH@host:104", "no backslash"),
        ("PAČS@host:104", "printable ASCII"),
    ],
)
def test_bad_nodes_are_refused_in_one_line(text, reason):
    with pytest.raises(NetworkError, match=reason.replace("\\", "\\\\")) as caught:
        parse_node(text)
    assert "\n" not in str(caught.value)


def test_ae_title_spaces_are_insignificant_and_nodes_round_trip_through_settings():
    assert check_aet("  AIMEDX ") == "AIMEDX"
    with pytest.raises(NetworkError, match="empty"):
        check_aet("    ")
    node = Node(" PACS ", " 10.0.0.5 ", "104", name=" Radiology ")
    assert node == Node("PACS", "10.0.0.5", 104, "Radiology")
    assert Node.from_dict(node.to_dict()) == node
    assert node.label == "Radiology (PACS@10.0.0.5:104)"
    assert Node("PACS", "::1", 104).address == "PACS@[::1]:104"
