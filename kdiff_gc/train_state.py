"""A training run's state and its one training step, for ``train_gc.py``'s loop and for a loop of one's own.

:class:`TrainState` holds the models, the optimizer, the schedules, the counters and the RNG; its
``state_dict()`` and ``load_state_dict()`` are the checkpoint's keys, and :data:`KINDS` what each holds,
which :func:`load_checkpoint` checks before anything is restored. :func:`train_step` is k-diffusion's
``train.py`` step as a function: loss, backward, clip, optimizer, LR schedule, EMA (docs/algorithm.md §7).
"""

import math
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path

import accelerate
import k_diffusion as K
import torch
from tqdm.auto import tqdm

from . import checkpoint, optim
from .builders import make_inner_model
from .denoiser import ConsistencyDenoiser
from .errors import UserError
from .loss import LossOutput
from .precision import fourier_features_in_fp32
from .runtime import derive_seed, gather, has_accelerator


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _schedule(v) -> bool:
    return isinstance(v, dict) and _count(v.get("last_epoch"))


# the checkpoint's keys (TrainState.state_dict), what each must hold, and whether a resume needs it (the
# others are records, or absent from older checkpoints); the state dicts are also checked by loading them
KINDS = {
    "config": (lambda v: isinstance(v, dict), "an object", True),
    "model": (checkpoint.is_state_dict, "a state dict of tensors", True),
    "model_ema": (checkpoint.is_state_dict, "a state dict of tensors", True),
    "opt": (lambda v: isinstance(v, dict) and {"state", "param_groups"} <= v.keys(),
            "an optimizer state dict", True),
    "sched": (_schedule, "a schedule's state dict", True),  # schedules load any dict: check their count
    "ema_sched": (_schedule, "a schedule's state dict", True),
    "step": (_count, "an integer >= 0", True),
    "batches_done": (_count, "an integer >= 0", True),
    "seed": (_count, "an integer >= 0", True),
    "demo_gen": (lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8,
                 "a generator state (uint8 tensor)", True),
    "rng": (lambda v: isinstance(v, list) and len(v) > 0 and all(
        isinstance(r, dict) and isinstance(r.get("cpu"), torch.Tensor) for r in v), "a list of RNG states",
        True),
    "scaler": (lambda v: v is None or isinstance(v, dict), "a gradient scaler's state dict or null", False),
    "best_fid_1step": (lambda v: isinstance(v, float), "a number", False),
    "batch": (lambda v: isinstance(v, dict) and _count(v.get("processes"))
              and _count(v.get("grad_accum_steps")) and (v.get("size") is None or _count(v["size"])),
              "a batch layout", False),
    "ranks": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
              "a list of each process's checksums", False),
}


def load_checkpoint(path: Path, advice: str = "pass --resume PATH to another checkpoint") -> dict:
    """A training checkpoint, loaded safely, with the keys a resume needs, each of its :data:`KINDS`;
    ``advice`` ends the error message when the file is missing, unreadable, not a training checkpoint or
    damaged."""
    ckpt = checkpoint.safe_load(path, f"checkpoint {path}", f": {advice}")
    required = {key for key, (_, _, needed) in KINDS.items() if needed}
    missing = required - ckpt.keys() if isinstance(ckpt, dict) else required
    if missing:
        raise UserError(f"checkpoint {path} is not a kdiff-gc training checkpoint "
                        f"(it lacks {', '.join(sorted(missing))}): {advice}")
    for key, (ok, what, _) in KINDS.items():
        if key in ckpt and not ok(ckpt[key]):
            raise UserError(f"checkpoint {path} is damaged: {key} is not {what}: {advice}")
    return ckpt


class TrainState:
    """The online model and its EMA (the GC generator), both as :class:`ConsistencyDenoiser`, the optimizer,
    the LR and EMA schedules, the counters (``step``: optimizer steps, ``batches_done``: micro-batches), the
    seed and the demo grids' generator, on an ``accelerate`` accelerator (by default a new one, on the GPU
    when there is one).

    ``inner`` is the network, ``opt`` its optimizer, ``sched`` the LR schedule (default: constant); they and
    the network go through ``accelerator.prepare``. The EMA starts as a copy of the prepared weights (on
    several processes, rank 0's). ``grad_clip`` > 0 clips the gradient norm; ``total_steps`` is the loss's
    ``K``.
    """

    def __init__(self, inner: torch.nn.Module, opt: torch.optim.Optimizer, ema_sched: optim.EmaSchedule, *,
                 total_steps: int, sched: torch.optim.lr_scheduler.LRScheduler | None = None,
                 grad_clip: float = 0.0, sigma_data: float = 0.5, sigma_min: float = 0.002,
                 accelerator: accelerate.Accelerator | None = None, seed: int = 0, config: dict | None = None,
                 compile: bool = False, checkpointing: bool = False, batch_size: int | None = None):
        """``compile``: ``torch.compile`` the online network; ``checkpointing``: k-diffusion's activation
        checkpointing in the loss step. ``config``, ``seed`` and ``batch_size`` (the global batch) are
        recorded in the checkpoint."""
        self.accelerator = acc = accelerator or accelerate.Accelerator(cpu=not has_accelerator())
        self.config, self.seed, self.total_steps = config or {}, seed, total_steps
        self.grad_clip, self.checkpointing, self.batch_size = grad_clip, checkpointing, batch_size
        self.inner_ema = deepcopy(inner).requires_grad_(False)
        if compile:
            inner.compile()
        self.sched = sched or optim.ConstantLRWithWarmup(opt, warmup=0.0)
        self.ema_sched = ema_sched
        self.inner, self.opt = acc.prepare(inner, opt)
        self.inner_ema.load_state_dict(acc.unwrap_model(self.inner).state_dict())
        self.inner_ema.to(acc.device).eval()
        self.model = ConsistencyDenoiser(self.inner, sigma_data, sigma_min)
        self.model_ema = ConsistencyDenoiser(self.inner_ema, sigma_data, sigma_min).eval()
        self.ema_update = optim.EmaUpdate(acc.unwrap_model(self.inner), self.inner_ema)
        self.demo_gen = torch.Generator().manual_seed(derive_seed(seed, 2 ** 32))
        # the coupling's own choices, per process, apart from the noise and levels (common random numbers)
        self.coupling_gen = torch.Generator().manual_seed(derive_seed(seed, 2 ** 33, acc.process_index))
        self.step, self.batches_done = 0, 0
        self.best_fid = math.inf  # the lowest 1-step FID so far (a run's evaluation records it)

    @classmethod
    def from_config(cls, config: dict, accelerator: accelerate.Accelerator | None = None, seed: int = 0, *,
                    lr: float | None = None, init_weights: tuple[dict, Path] | None = None,
                    batch_size: int | None = None, compile: bool = False,
                    checkpointing: bool = False) -> "TrainState":
        """The state a loaded config describes: its k-diffusion model (the same initial weights on every
        process; ``init_weights``, a state dict and its file, replace them), optimizer (``lr`` replaces its
        rate), schedules and clip. Then each process seeds its own noise and GC choices."""
        acc = accelerator or accelerate.Accelerator(cpu=not has_accelerator())
        torch.manual_seed(seed)
        inner = fourier_features_in_fp32(make_inner_model(config))
        if init_weights is not None:  # consistency tuning of a pretrained diffusion model (as ECT)
            checkpoint.load_state(inner, *init_weights)
        torch.manual_seed(derive_seed(seed, acc.process_index))
        opt = optim.make_optimizer(config, inner, lr)
        c = config["consistency"]
        return cls(inner, opt, optim.make_ema_schedule(config), total_steps=c["total_steps"],
                   sched=optim.make_lr_scheduler(config, opt),
                   grad_clip=config["training"]["grad_clip"], sigma_data=config["model"]["sigma_data"],
                   sigma_min=c["sigma_min"], accelerator=acc, seed=seed, config=config,
                   compile=compile, checkpointing=checkpointing, batch_size=batch_size)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def ema_checksums(self) -> dict:
        """Sums of the EMA weights and of their magnitudes: equal on processes that agree."""
        params = list(self.inner_ema.parameters())
        return {"ema_checksum": sum(p.double().sum().item() for p in params),
                "ema_abs_checksum": sum(p.double().abs().sum().item() for p in params)}

    def state_dict(self) -> dict | None:
        """The checkpoint (:data:`KINDS`), with every process's RNG state and checksums, on the main process
        (None on the others); every process must call it."""
        acc = self.accelerator
        acc.wait_for_everyone()
        rng = {**checkpoint.rng_state(self.device), "coupling": self.coupling_gen.get_state()}
        ranks = gather(acc, {"rng": rng, **self.ema_checksums(),
                             "step": self.step})
        if not acc.is_main_process:
            return None
        return {
            "config": self.config,
            "model": acc.unwrap_model(self.inner).state_dict(),
            "model_ema": self.inner_ema.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "ema_sched": self.ema_sched.state_dict(),
            "step": self.step,
            "batches_done": self.batches_done,
            "seed": self.seed,
            "demo_gen": self.demo_gen.get_state(),
            "rng": [r["rng"] for r in ranks],
            "scaler": acc.scaler.state_dict() if acc.scaler is not None else None,
            "best_fid_1step": self.best_fid,
            "batch": self.batch_layout(),
            "ranks": [{k: v for k, v in r.items() if k != "rng"} for r in ranks],
        }

    def load_state_dict(self, ckpt: dict, path: Path, reset_ema: bool = False) -> None:
        """Resume from ``ckpt`` (read from ``path`` by :func:`load_checkpoint`): weights, optimizer,
        schedules, counters, then each process's RNG where the checkpoint ran on as many processes. Call it
        last of all set-up: building anything else (a frozen generator, a teacher) draws random numbers too.
        ``reset_ema``, as k-diffusion's: the online model continues from the EMA weights, with a fresh EMA
        schedule."""
        advice = ": resume with the config it was trained with"
        inner = self.accelerator.unwrap_model(self.inner)
        checkpoint.load_state(inner, ckpt["model"], path, "the model weights", advice)
        checkpoint.load_state(self.inner_ema, ckpt["model_ema"], path, "the EMA weights", advice)
        if reset_ema:
            inner.load_state_dict(self.inner_ema.state_dict())
        else:
            with checkpoint.damaged_key(path, "ema_sched"):
                self.ema_sched.load_state_dict(ckpt["ema_sched"])
        for key, part in (("opt", self.opt), ("sched", self.sched)):
            with checkpoint.damaged_key(path, key):
                part.load_state_dict(ckpt[key])
        self.step, self.batches_done = ckpt["step"], ckpt["batches_done"]
        self.continue_data(ckpt)
        self.best_fid = ckpt.get("best_fid_1step", math.inf)
        with checkpoint.damaged_key(path, "demo_gen"):
            self.demo_gen.set_state(ckpt["demo_gen"])
        self.restore_randomness(ckpt, path)

    def batch_layout(self) -> dict:
        """The global batch size, and the processes and accumulation steps it is split over."""
        acc = self.accelerator
        return {"size": self.batch_size, "processes": acc.num_processes,
                "grad_accum_steps": acc.gradient_accumulation_steps}

    def continue_data(self, ckpt: dict) -> None:
        """Under another split of the same batch, the data continues at the step's position (the same
        images per step): ``batches_done`` counts this split's micro-batches."""
        was, now = ckpt.get("batch"), self.batch_layout()
        if was is None or (was["processes"], was["grad_accum_steps"]) == (now["processes"],
                                                                         now["grad_accum_steps"]):
            return
        self.batches_done = self.step * now["grad_accum_steps"]
        if self.accelerator.is_main_process:
            tqdm.write(f"Resuming {was['processes']} process(es) x {was['grad_accum_steps']} accumulation "
                       f"step(s) as {now['processes']} x {now['grad_accum_steps']}: the data continues "
                       "from the same position, but not in the original run's order")

    def restore_randomness(self, ckpt: dict, path: Path) -> None:
        acc, states = self.accelerator, ckpt["rng"]
        if len(states) == acc.num_processes:
            with checkpoint.damaged_key(path, "rng"):
                checkpoint.set_rng_state(states[acc.process_index], self.device)
                if "coupling" in states[acc.process_index]:  # checkpoints before it: seeded afresh
                    self.coupling_gen.set_state(states[acc.process_index]["coupling"])
        elif acc.is_main_process:
            tqdm.write(f"Resuming on {acc.num_processes} processes from a run on {len(states)}: random "
                       "streams restart, so steps will not repeat the original run exactly")
        if acc.scaler is not None and ckpt.get("scaler"):
            with checkpoint.damaged_key(path, "scaler"):
                acc.scaler.load_state_dict(ckpt["scaler"])


def train_step(state: TrainState, loss_fn: Callable[..., LossOutput], reals: torch.Tensor, *,
               on_gradients: Callable[[TrainState, LossOutput], None] | None = None,
               **extra_args) -> LossOutput:
    """One micro-batch: ``loss_fn(model, model_ema, reals, step, total_steps, generator=state.coupling_gen,
    **extra_args)`` under the
    accelerator's autocast, and its mean's backward. On the micro-batch that completes an optimizer step (each
    one without gradient accumulation): ``on_gradients(state, out)`` if given (the gradients are there to
    read), the gradient-norm clip, the optimizer, the LR schedule, the EMA update (after the optimizer, as
    the EMA schedule says), and ``state.step`` counted."""
    acc = state.accelerator
    with acc.accumulate(state.inner):
        with acc.autocast(), K.models.checkpointing(state.checkpointing):
            out = loss_fn(state.model, state.model_ema, reals, state.step, state.total_steps,
                          generator=state.coupling_gen, **extra_args)
        acc.backward(out.loss.mean())
    state.batches_done += 1
    if acc.sync_gradients:
        if on_gradients is not None:
            on_gradients(state, out)
        if state.grad_clip > 0:
            acc.clip_grad_norm_(state.inner.parameters(), state.grad_clip)
        state.opt.step()
        state.opt.zero_grad()
        state.sched.step()
        optim.update_ema(state.ema_update, state.ema_sched)
        state.step += 1
    return out
