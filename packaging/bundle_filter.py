"""Which files the frozen app keeps: imported by aimedx.spec, unit-tested without PyInstaller.

Paths are PyInstaller destination names, relative to the app's _internal folder, with `/`.
"""

from __future__ import annotations

import re

CUDA_LIBRARY = re.compile(
    r"(^|/)(nvidia|triton)/"
    r"|(^|/)lib(cudart|cublas|cublasLt|cudnn\w*|cufft\w*|curand|cusolver\w*|cusparse\w*|cufile\w*|cupti|nccl"
    r"|nvrtc\w*|nvJitLink|nvjpeg|nvshmem\w*|nvToolsExt|torch_cuda\w*|torch_nvshmem|c10_cuda|caffe2_nvrtc)[.-]"
)
"""CUDA libraries wherever they come from: nvidia-* wheels, torch/lib, torchvision.libs."""

NOT_AT_RUN_TIME = re.compile(r"(^|/)(tests?|include)/|\.(h|hpp|cuh|pyi|cmake|a)$")
"""Third-party tests, C/C++ headers, type stubs and build files."""

TEST_MODULE = re.compile(r"(^|\.)tests?(\.|$)")


def keep_file(dest: str, edition: str) -> bool:
    """Whether a collected binary or data file ships in `edition` ('cpu' or 'gpu')."""
    if dest.startswith("resources/"):
        return True
    if edition == "cpu" and CUDA_LIBRARY.search(dest):
        return False
    return not NOT_AT_RUN_TIME.search(dest)


def keep_module(name: str) -> bool:
    """Whether a Python module ships: every one but test packages (`numpy.tests`, `x.test.y`)."""
    return not TEST_MODULE.search(name)
