"""What a file may make the app allocate: checked against what its header promises, before allocating.

A header is data from outside. A 60-byte NIfTI may claim 32767² voxels and a model card 10
million residual blocks; taken at their word they take gigabytes before anything fails, or take
the machine down. The readers and the bundle loader ask here first and refuse, saying what was
asked for and why it was refused.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

MAX_VOXELS = 1 << 30
"""No scan this app reads is larger (4.3 GB as 32-bit values; a whole-body CT is ~0.3 G voxels)."""
READ_BYTES_PER_VOXEL = 16
"""Reading a scan holds, at its peak, the stored values, the float32 voxels and a working copy."""
_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping, as far as the system says; None
    when it does not (then only the fixed limits apply). A container's memory limit counts."""
    candidates = []
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit.isdigit():
            candidates.append(int(limit) - int((_CGROUP / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(candidates)) if candidates else None


def memory_problem(needed: int, what: str) -> str | None:
    """Why `what`, needing `needed` bytes, cannot be allocated here; None when it can."""
    available = available_memory()
    if available is not None and needed > available:
        return f"{what} needs about {gigabytes(needed)}, more than the {gigabytes(available)} of memory available"
    return None


def scan_size_problem(shape: tuple[int, ...], source: str = "the header") -> str | None:
    """Why a scan of `shape` voxels (as `source` says) is not read; None when it may be."""
    voxels = math.prod(int(n) for n in shape)
    shown = f"{'×'.join(str(int(n)) for n in shape)} voxels according to {source}"
    if voxels > MAX_VOXELS:
        return f"{shown} ({gigabytes(4 * voxels)} as 32-bit values): more than the {MAX_VOXELS:,} a scan may have; not read"
    problem = memory_problem(voxels * READ_BYTES_PER_VOXEL, f"{shown}: reading them")
    return f"{problem}; not read" if problem else None


def gigabytes(count: int) -> str:
    """A byte count as people say it: 8.6 GB, 0.3 MB, 1.0 kB."""
    if count >= 1e8:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.1f} MB" if count >= 1e5 else f"{count / 1e3:.1f} kB"
