import os

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")  # a cold torch.compile costs ~35 s per model on the CPU

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    """A train_gc.py checkpoint of one step of tests/test_train.py's tiny config."""
    from kdiff_gc.programs.train import main
    from test_train import write_config

    folder = tmp_path_factory.mktemp("run")
    main(["--config", str(write_config(folder)), "--out-dir", str(folder), "--end-step", "1",
          "--demo-every", "0", "--seed", "0"])
    return folder / "model_00000001.pth"
