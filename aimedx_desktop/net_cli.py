"""The DICOM network commands: `aimedx send`, `echo`, `listen`, `fetch`, and `convert --send`.

Per-file and per-series lines go to stdout, progress and the closing summary of a failure to
stderr. A node is always named on the command line (AET@HOST:PORT): nothing here opens a
socket otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aimedx_desktop.cli import EXIT_ERROR, EXIT_OK, ProgressLine, stopped_status
from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.nodes import DEFAULT_AET, DEFAULT_TIMEOUT, Node, parse_node

if TYPE_CHECKING:
    from aimedx_desktop.engine.net.send import Outgoing

NODE = "AET@HOST:PORT"


MAX_TIMEOUT = 86_400.0
"""A day: a node silent that long is not coming back, and far larger values overflow the
socket's timer ("timestamp out of range")."""


def seconds(text: str) -> float:
    """An argparse type: a positive number of seconds up to MAX_TIMEOUT. (pynetdicom reads 0 or
    less as "wait forever", which no one asking for a timeout means.)"""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds up to {MAX_TIMEOUT:g}, not {text}")
    return value


def add_node_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calling-aet", default=DEFAULT_AET, help=f"our AE title (default {DEFAULT_AET})")
    parser.add_argument("--timeout", type=seconds, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds to wait for the node at each step (default {DEFAULT_TIMEOUT:g})")


def add_network_commands(commands: argparse._SubParsersAction) -> None:
    send = commands.add_parser("send", help="send DICOM files or folders to a DICOM node (C-STORE)")
    send.add_argument("paths", nargs="+", type=Path, help="DICOM files or folders (searched recursively)")
    send.add_argument("--to", required=True, metavar=NODE, help="the receiving node, e.g. PACS@192.168.1.20:104")
    add_node_options(send)

    echo = commands.add_parser("echo", help="verify a DICOM node (C-ECHO)")
    echo.add_argument("node", metavar=NODE)
    add_node_options(echo)

    listen = commands.add_parser("listen", help="receive CT and MR images from DICOM senders into an inbox folder")
    listen.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    listen.add_argument("--aet", default=DEFAULT_AET, help=f"our AE title, which senders must call (default {DEFAULT_AET})")
    listen.add_argument("--inbox", type=Path, required=True, help="folder to file received images in (STUDY/SERIES/)")
    listen.add_argument("--allow", nargs="+", default=[], metavar="AET", help="accept only these calling AE titles")
    listen.add_argument("--bind", default="0.0.0.0", metavar="ADDRESS", help="address to listen on (default: all)")
    listen.add_argument("--timeout", type=seconds, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds to wait for a sender, also in the middle of a message (default {DEFAULT_TIMEOUT:g})")

    fetch = commands.add_parser("fetch", help="find studies on a PACS (C-FIND) and retrieve their CT/MR series (C-GET)")
    fetch.add_argument("--from", dest="source", required=True, metavar=NODE, help="the PACS to ask")
    what = fetch.add_mutually_exclusive_group(required=True)
    what.add_argument("--patient-id", help="patient ID (wildcards * and ? allowed)")
    what.add_argument("--study-uid", help="study instance UID")
    fetch.add_argument("--series-uid", help="retrieve only this series of the matching studies")
    fetch.add_argument("--inbox", type=Path, help="folder to file retrieved images in (required unless --list)")
    fetch.add_argument("--list", action="store_true", help="only list the matching studies and series")
    add_node_options(fetch)


def run_send(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.net.send import collect_files

    node = parse_node(args.to)
    return send_and_report(collect_files(args.paths), node, args.calling_aet, args.timeout)


def send_and_report(files: Sequence[Outgoing], node: Node, calling_aet: str, timeout: float) -> int:
    """Send `files`, one line per file as the node answers; exit status 0 only when all were stored.

    Ctrl-C aborts the association: the files confirmed until then are the ones reported stored."""
    from aimedx_desktop.engine.net.send import FileResult, send_files

    confirmed: list[FileResult] = []

    def show(result: FileResult) -> None:
        confirmed.append(result)
        detail = "" if result.detail == "stored" else f"  ({result.detail})"
        print(f"{'stored' if result.stored else 'NOT STORED':<10}  {result.path}{detail}", flush=True)

    print(f"sending {len(files)} file(s) to {node.address} as {calling_aet}", file=sys.stderr)
    try:
        report = send_files(files, node, calling_aet, timeout, progress=ProgressLine("sending   ", sys.stderr), on_result=show)
    except KeyboardInterrupt as stop:  # Ctrl-C, or a terminating signal (Terminated)
        stored = sum(result.stored for result in confirmed)
        print(f"\ncancelled: {stored} of {len(files)} file(s) stored on {node.address}, "
              f"{len(files) - stored} not stored", file=sys.stderr)
        return stopped_status(stop)
    print(report.summary())
    if not report.complete:
        print(f"error: {len(files) - report.stored} of {len(files)} file(s) not stored (see above)", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def run_echo(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.net.association import echo

    node = parse_node(args.node)
    seconds = echo(node, args.calling_aet, args.timeout)
    print(f"{node.address} answered the C-ECHO in {seconds * 1000:.0f} ms")
    return EXIT_OK


def run_listen(args: argparse.Namespace) -> int:
    """Until Ctrl-C or a terminating signal (cli.main turns both into KeyboardInterrupt)."""
    from aimedx_desktop.engine.net.listen import StorageServer

    server = StorageServer(args.inbox, args.port, args.aet, args.bind, args.allow, args.timeout,
                           log=lambda line: print(line, flush=True))
    server.start()
    try:
        print(f"listening as {server.aet} on {args.bind}:{server.port}, filing CT and MR images into "
              f"{args.inbox} (Ctrl-C stops)", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print(f"stopped: {server.receiver.stored} object(s) received", file=sys.stderr)
    return EXIT_OK


def run_fetch(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.net.query import find, retrieve

    if not args.list and args.inbox is None:
        raise NetworkError("name the folder to retrieve into with --inbox (or only --list the matches)")
    node = parse_node(args.source)
    studies = find(node, args.calling_aet, args.timeout, patient_id=args.patient_id or "", study_uid=args.study_uid or "")
    asked = f"patient ID {args.patient_id!r}" if args.patient_id else f"study {args.study_uid}"
    if not studies:
        raise NetworkError(f"{node.address} has no study of {asked}")
    chosen = []
    for study in studies:
        print(f"study {study.study_uid}  {study.patient or '(no name)'} [{study.patient_id}]  {study.date}  {study.description}")
        for series in study.series:
            wanted = series.retrievable and args.series_uid in (None, series.series_uid)
            chosen += [series] if wanted else []
            count = "?" if series.images is None else series.images
            note = "" if series.retrievable else "  (not retrieved: the app opens CT and MR)"
            print(f"  series {series.series_uid}  {series.modality or '?'}  {count} image(s)  {series.description}{note}")
    if args.list:
        return EXIT_OK
    if not chosen:
        which = f"series {args.series_uid}" if args.series_uid else "CT or MR series"
        raise NetworkError(f"{node.address}: no {which} in the studies of {asked}")
    report = retrieve(node, args.calling_aet, args.timeout, args.inbox, chosen, progress=ProgressLine("retrieving", sys.stderr))
    print(report.summary())
    return EXIT_OK if report.failed == 0 else EXIT_ERROR


__all__ = ["add_network_commands", "add_node_options", "run_echo", "run_fetch", "run_listen", "run_send", "send_and_report"]
