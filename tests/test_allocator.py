"""Freed tensor memory stays in the process: repeated batches stop faulting in fresh pages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aimedx_desktop.engine.allocator import retain_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")

FAULTS_PER_BATCH = """
import resource, sys, torch
from aimedx_desktop.engine.allocator import retain_freed_memory
from aimedx_desktop.engine.networks import GeneratorConfig, build_generator
if sys.argv[1] == "retain":
    assert retain_freed_memory()
torch.set_num_threads(1)
generator = build_generator(GeneratorConfig(ngf=16, n_blocks=2, upsampling="resize", uncertainty=True)).eval()
batch = torch.randn(4, 1, 256, 256)
with torch.inference_mode():
    generator(batch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        generator(batch)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 2)
"""


def faults_per_batch(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_BATCH, mode],
        capture_output=True, text=True, env=env, timeout=120, cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_retained_memory_ends_the_page_faults_of_each_batch() -> None:
    default, retained = faults_per_batch("default"), faults_per_batch("retain")
    assert default > 1000, f"glibc's default already keeps the memory here ({default} faults per batch)"
    assert retained <= default / 4, (default, retained)


def test_the_users_malloc_environment_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert not retain_freed_memory()
