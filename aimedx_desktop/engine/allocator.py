"""Keep freed tensor memory inside the process (glibc on Linux), so each batch does not fault in
fresh pages.

By default glibc serves large blocks with mmap and hands them back to the kernel when freed, and
its adaptive threshold does not settle for the mix of block sizes a generator allocates: every
4-slice batch then faults in its activations again, one 4 KiB page at a time (about 8,000 page
faults and 15–30 ms per 256×256 slice on the 2-core CPU, measured with getrusage). Serving blocks
up to 32 MiB from the heap and trimming the heap only when more than RETAINED_BYTES are free takes
that to none. The same settings can be made with MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_
before the process starts; when either is set, the user's choice stands.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
HEAP_BLOCK_LIMIT = 32 << 20
"""Blocks up to this size come from the heap (glibc's largest allowed mmap threshold on 64-bit)."""
RETAINED_BYTES = 512 << 20
"""Free memory the heap may keep for the next batch before it is returned to the system."""
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def retain_freed_memory() -> bool:
    """Apply the settings above; False where they do not apply (not glibc, or set by the user)."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in ENVIRONMENT):
        return False
    try:
        # The process's own symbols: finding libc by name would run ldconfig at every start.
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_LIMIT)) and bool(mallopt(M_TRIM_THRESHOLD, RETAINED_BYTES))
