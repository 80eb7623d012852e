"""Defaults that depend on the machine: data loader workers per process."""

from types import SimpleNamespace

import pytest
import torch

from kdiff_gc import runtime


@pytest.mark.parametrize("device, cpus, processes, local, workers", [
    ("cpu", 64, 1, None, 0),     # on the CPU a worker takes its core from the model
    ("cuda", 16, 1, None, 8),    # k-diffusion's 8
    ("cuda", 16, 8, None, 1),    # 16 CPUs shared by 8 processes: 2 each, one kept for the process
    ("cuda", 16, 16, "8", 1),    # two nodes of 8: the local count shares this node's CPUs
    ("cuda", 4, 1, None, 3),
    ("cuda", 2, 4, None, 1),     # at least one
])
def test_default_workers(monkeypatch, device, cpus, processes, local, workers):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    if local is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
    accelerator = SimpleNamespace(device=torch.device(device), num_processes=processes)
    assert runtime.default_workers(accelerator) == workers


def test_on_main_turns_refusals_into_one_user_error_and_lets_a_bug_through():
    from kdiff_gc.errors import UserError

    main = SimpleNamespace(is_main_process=True, num_processes=1)

    def fails(error):
        def work():
            raise error
        return work
    with pytest.raises(UserError, match="^no$"):
        runtime.on_main(main, fails(UserError("no")))
    with pytest.raises(UserError, match=r"^out: .*; resume$"):
        runtime.on_main(main, fails(OSError(28, "No space left on device", "out")), "; resume")
    with pytest.raises(RuntimeError, match="unexpected pos"):  # torch.save's error on a full disk
        runtime.on_main(main, fails(RuntimeError("unexpected pos")))
    assert runtime.on_main(main, lambda: 7) == 7
    assert runtime.on_main(SimpleNamespace(is_main_process=False, num_processes=1), lambda: 7) is None


def test_on_every_runs_everywhere_and_turns_a_refusal_into_one_user_error():
    from kdiff_gc.errors import UserError

    one = SimpleNamespace(is_main_process=True, num_processes=1)
    assert runtime.on_every(one, lambda: 7) == 7
    with pytest.raises(UserError, match="^no$"):
        runtime.on_every(one, lambda: (_ for _ in ()).throw(UserError("no")))
    with pytest.raises(ZeroDivisionError):  # a bug goes through as it is where it happened
        runtime.on_every(one, lambda: 1 / 0)
