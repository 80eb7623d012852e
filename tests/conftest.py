import os

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")  # a cold torch.compile costs ~35 s per model on the CPU

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
