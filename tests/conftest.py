"""Shared test setup."""

import getpass
import os
import tempfile

import pytest
import torch

# torch.compile's C++ cache (inductor) keys its precompiled header by source, not by ATEN_CPU_CAPABILITY: after a
# run with the default kernels (AVX2/AVX-512), a run with ATEN_CPU_CAPABILITY=default reuses a header without
# at::vec and every compiled kernel fails to build (seen with torch 2.13.0; a fresh cache passes). One cache per
# capability, unless the user chose a cache folder.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}_{os.environ.get('ATEN_CPU_CAPABILITY') or 'auto'}"))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run faster on one intra-op thread, and CI machines are small and shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
