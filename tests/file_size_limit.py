"""`aimedx` in a child process whose files may not grow past a limit: the kernel's own refusal
(EFBIG; Python ignores SIGXFSZ), which is what a full disk looks like to the app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_limited(args: list[str], max_file_bytes: int, timeout: float = 300) -> tuple[int, list[str], str]:
    """(exit status, its `error: ` lines, all of stderr) of `aimedx ARGS` under the limit."""
    script = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({max_file_bytes}, resource.RLIM_INFINITY))\n"
        "from aimedx_desktop.cli import main\n"
        f"sys.exit(main({args!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return done.returncode, [line for line in done.stderr.splitlines() if line.startswith("error: ")], done.stderr
