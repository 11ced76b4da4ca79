"""Real DICOM peers for the network tests: dcmtk's storescp and dcmqrscp on loopback, free ports.

Every peer is a context manager that kills and reaps what it started (its whole process group:
dcmqrscp forks per association) and waits for its port with a deadline, so no test hangs.
A missing dcmtk tool skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from pynetdicom.dsutils import split_dataset

from aimedx_desktop.engine.net.nodes import Node

LOOPBACK = "127.0.0.1"
DEADLINE_S = 60.0
"""How long to wait for a peer or a started aimedx process (torch import included) before failing;
a bound for a broken test, never a pause for a passing one."""
TOOL_TIMEOUT_S = 120


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not found: install dcmtk (apt-get install dcmtk; CI's .ci/run does)")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def wait_until(condition, what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(0.05)


def _listening(port: int) -> bool:
    """Whether some process listens on `port`, read from /proc (Linux) so that no connection is
    made: a probe connection that sends nothing upsets storescp --refuse."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return True
        return False
    for table in tables:
        for line in table.read_text().splitlines()[1:] if table.exists() else []:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


@contextlib.contextmanager
def dcmtk_server(args: Sequence[str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """Run a dcmtk server until the block ends; fail (with its log) if it never listens."""
    with open(log, "wb") as output:
        process = subprocess.Popen(list(args), stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: process.poll() is not None or _listening(port), f"{args[0]} on port {port}")
        if process.poll() is not None:
            raise AssertionError(f"{args[0]} exited with {process.returncode}: {log.read_text(errors='replace')}")
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def storescp(out_dir: Path, *options: str, aet: str = "STORESCP") -> Iterator[Node]:
    """dcmtk's storage SCP writing bit-preserved files (named MODALITY.SOPInstanceUID) to out_dir."""
    port = free_port()
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [require("storescp"), "-aet", aet, "+B", "-od", str(out_dir), *options, str(port)]
    with dcmtk_server(args, port, out_dir.parent / f"storescp-{port}.log"):
        yield Node(aet, LOOPBACK, port)


@contextlib.contextmanager
def dcmqrscp(root: Path, aet: str = "ARCHIVE") -> Iterator[Node]:
    """dcmtk's query/retrieve SCP with an empty archive under root/archive, any peer allowed."""
    port = free_port()
    archive = root / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    config = root / "dcmqrscp.cfg"
    config.write_text(
        f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
        "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\n{aet} {archive} RW (200, 1024mb) ANY\nAETable END\n"
    )
    # Fork mode: dcmtk 3.6.7's --single-process crashes after the first association.
    with dcmtk_server([require("dcmqrscp"), "-c", str(config)], port, root / "dcmqrscp.log"):
        yield Node(aet, LOOPBACK, port)


def storescu(node: Node, files: Sequence[Path], *options: str, aet: str = "STORESCU") -> subprocess.CompletedProcess:
    args = [require("storescu"), "-aet", aet, "-aec", node.aet, *options, node.host, str(node.port), *map(str, files)]
    return subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)


def dataset_bytes(path: Path) -> bytes:
    """The encoded data set of a Part 10 file, without preamble and file meta (which a receiver rewrites)."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def ge_files(bundled_samples: Path) -> list[Path]:
    """The 28 files of the bundled GE head CT series."""
    return sorted((bundled_samples / "head_ct_ge").glob("*.dcm"))


def secondary_capture(path: Path) -> Path:
    """A tiny Secondary Capture image at `path`: a SOP class the listener does not take."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.ConversionType, ds.PatientName, ds.PatientID = "OT", "WSD", "SC^TEST", "SC1"
    ds.set_pixel_data(np.zeros((8, 8), np.uint8), "MONOCHROME2", 8)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path
