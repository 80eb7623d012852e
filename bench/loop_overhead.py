"""train_gc.py's loop against a bare loss-step loop, side by side in one process.

Both train the same config from the same weights with the same optimizer. The bare loop has its batches
in tensors already and calls only the library's training step (``kdiff_gc.train_state.train_step``: the
loss step, backward, gradient clipping, the optimizer, the LR schedule and the EMA), with each phase
timed. train_gc.py's loop is ``Run.train``: data
loading, metrics rows, the loss watch and the progress bar included; only the end-of-round checkpoint is
left out (it is not a per-step cost). The two alternate step by step (a bare step runs after each of the
loop's optimizer steps, timed apart), so a change in the machine's speed hits both alike.

Each round starts the run's loader afresh, its workers too (a run starts it once): with workers, give a
round enough steps to amortize their start.

The breakdown: data is the run's own loader drawing the same number of batches alone; forward (the loss
step with its coupling), backward, and optimizer (with the LR schedule and the EMA) come from the bare
loop; bookkeeping is what remains of the train loop. Host reads count the values the step reads back
from the device (``item``, ``tolist``, ``nonzero``): each one stalls a GPU's queue unless it is deferred
(read one step later).

    python -m bench.loop_overhead            # the digits config, batch 64
    python -m bench.loop_overhead --rgb32    # a 32x32 RGB imagefolder of random PNGs, CIFAR-10's model shrunk
"""

import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import k_diffusion as K
import numpy as np
import torch
from PIL import Image
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakTensorKeyDictionary

from kdiff_gc import runtime
from kdiff_gc.builders import make_consistency_loss
from kdiff_gc.options import RunOptions
from kdiff_gc.train_state import TrainState, train_step
from kdiff_gc.trainer import Run
from bench.report import ROOT, command, machine, parser, write_csv, write_json

SHRUNK_CIFAR_MODEL = {"depths": [1, 1, 1], "channels": [32, 64, 64], "self_attn_depths": [False, False, True],
                      "mapping_out": 64}


def now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


class BareLoop:
    """The library's training step and nothing else: a state built as the run's (same config, seed and
    accelerator), its batches in tensors on the device."""

    def __init__(self, run: Run, steps: int):
        self.device = run.device
        self.state = TrainState.from_config(run.config, run.accelerator, seed=run.state.seed,
                                            lr=run.options.lr)
        self.loss_fn = TimedLoss(make_consistency_loss(run.config), self.device)
        self.batches = [run.to_device(batch) for batch, _ in zip(run.loader(), range(steps))]
        self.phases = {"forward": [], "backward": [], "optimizer": []}
        self.seconds = dict.fromkeys(self.phases, 0.0)
        self.backward_end = 0.0

    def gradients_ready(self, state: TrainState, out) -> None:
        self.backward_end = now(self.device)

    def step_once(self) -> None:
        """One :func:`kdiff_gc.train_state.train_step`; each phase's seconds added to ``self.seconds``:
        forward (the loss step with its coupling), backward, optimizer (clip, optimizer, LR schedule and
        EMA)."""
        reals, extra = self.batches[self.state.step % len(self.batches)]
        start = now(self.device)
        train_step(self.state, self.loss_fn, reals, on_gradients=self.gradients_ready, **extra)
        end = now(self.device)
        marks = [start, self.loss_fn.end, self.backward_end, end]
        for name, a, b in zip(self.phases, marks, marks[1:]):
            self.seconds[name] += b - a

    def end_round(self, steps: int) -> None:
        """Each phase's seconds per step over the round just run."""
        for name, seconds in self.seconds.items():
            self.phases[name].append(seconds / steps)
        self.seconds = dict.fromkeys(self.phases, 0.0)


class TimedLoss:
    """The loss step, noting when its forward pass ends."""

    def __init__(self, loss_fn, device: torch.device):
        self.loss_fn, self.device, self.end = loss_fn, device, 0.0

    def __call__(self, *args, **kwargs):
        out = self.loss_fn(*args, **kwargs)
        self.end = now(self.device)
        return out


class BareSteps:
    """The run's ``after_step`` hook: while a bare loop is set, one timed bare step after each of
    train_gc.py's optimizer steps, so that a change in the machine's speed hits both alike."""

    def __init__(self):
        self.bare, self.seconds = None, 0.0

    def __call__(self, state: TrainState) -> None:
        if self.bare is not None:
            start = now(self.bare.device)
            self.bare.step_once()
            self.seconds += now(self.bare.device) - start


def interleaved_round(run: Run, bare: BareLoop, hook: BareSteps, steps: int) -> tuple[float, float]:
    """``steps`` steps of train_gc.py's loop with one bare step after each of its optimizer steps; returns
    seconds per step of each."""
    hook.bare, hook.seconds = bare, 0.0
    try:
        total = train_round(run, steps) * steps
    finally:
        hook.bare = None
    bare.end_round(steps)
    return (total - hook.seconds) / steps, hook.seconds / steps


def train_round(run: Run, steps: int) -> float:
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # the bar draws, unseen
        start = now(run.device)
        run.train(end_step=run.state.step + steps)
        return (now(run.device) - start) / steps


def data_round(run: Run, steps: int) -> float:
    loader = iter(run.loader())
    start = time.perf_counter()
    for _ in range(steps):
        next(loader)
    return (time.perf_counter() - start) / steps


class HostReads(TorchDispatchMode):
    """Counts the step's reads of device values on the host (``item``/``bool``/``float``, ``nonzero``,
    ``tolist``); each one stalls a GPU's queue unless it is deferred (:class:`kdiff_gc.runtime.HostCopy`, read
    one step later). On the CPU every tensor is on the host, so "a device value" is followed by data flow:
    the models' parameters and buffers, and whatever ops make from them."""

    SYNCING = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
               torch.ops.aten.is_nonzero.default, torch.ops.aten.equal.default}

    def __init__(self, *models: torch.nn.Module):
        super().__init__()
        self.on_device = WeakTensorKeyDictionary()
        for model in models:
            for tensor in [*model.parameters(), *model.buffers()]:
                self.on_device[tensor] = True
        self.blocking, self.deferred, self.reading_deferred = 0, 0, False

    def from_device(self, values) -> bool:
        return any(isinstance(t, torch.Tensor) and t in self.on_device for t in pytree.tree_leaves(values))

    def count(self) -> None:
        if self.reading_deferred:
            self.deferred += 1
        else:
            self.blocking += 1

    def __enter__(self):
        self.tolist, self.read = torch.Tensor.tolist, runtime.HostCopy.tolist

        def counting_tolist(tensor):
            if tensor in self.on_device:
                self.count()
            return self.tolist(tensor)

        def deferred_read(host_copy):
            self.reading_deferred = True
            try:
                return self.read(host_copy)
            finally:
                self.reading_deferred = False
        torch.Tensor.tolist, runtime.HostCopy.tolist = counting_tolist, deferred_read
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Tensor.tolist, runtime.HostCopy.tolist = self.tolist, self.read
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.from_device((args, kwargs)):
            if func in self.SYNCING:
                self.count()
            for tensor in pytree.tree_leaves(out):
                if isinstance(tensor, torch.Tensor):
                    self.on_device[tensor] = True
        return out


def random_imagefolder(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:05}.png")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "digits_gc.json")
    p.add_argument("--rgb32", action="store_true",
                   help="cifar10_gc.json's model (shrunk unless --full-model) on a folder of random 32x32 "
                        "PNGs")
    p.add_argument("--full-model", action="store_true", help="with --rgb32: the CIFAR-10 model at its size")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=40, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--num-workers", type=int, help="train_gc.py's --num-workers (default: its default)")
    p.add_argument("--out", type=Path,
                   help="output prefix (default: docs/bench/loop_overhead_{digits,rgb32})")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    case = "rgb32" if args.rgb32 else args.config.stem.removesuffix("_gc")
    out = args.out or ROOT / "docs" / "bench" / f"loop_overhead_{case}_t{torch.get_num_threads()}"

    with tempfile.TemporaryDirectory() as tmp:
        config_path = args.config
        if args.rgb32:
            images = Path(tmp) / "images"
            images.mkdir()
            random_imagefolder(images, 4 * args.batch_size)
            config = json.loads((ROOT / "configs" / "cifar10_gc.json").read_text())
            config["dataset"] = {"type": "imagefolder", "location": str(images)}
            if not args.full_model:
                config["model"].update(SHRUNK_CIFAR_MODEL)
            config_path = Path(tmp) / "rgb32.json"
            config_path.write_text(json.dumps(config))
        # no checkpoint: the one at the end of each round is not a per-step cost
        options = RunOptions(config=str(config_path), out_dir=tmp, batch_size=args.batch_size, seed=0,
                             num_workers=args.num_workers, demo_every=0, save=False)
        hook = BareSteps()
        run = Run(options, after_step=hook)
        bare = BareLoop(run, args.steps)
        interleaved_round(run, bare, hook, 3)  # warm-up
        bare.phases = {name: [] for name in bare.phases}
        times = {"bare": [], "train_gc": [], "data": []}
        for _ in range(args.rounds):
            train, bare_time = interleaved_round(run, bare, hook, args.steps)
            times["train_gc"].append(train)
            times["bare"].append(bare_time)
            times["data"].append(data_round(run, args.steps))
        with HostReads(bare.state.inner, bare.state.inner_ema) as bare_reads:
            for _ in range(5):
                bare.step_once()
        with HostReads(run.state.inner, run.state.inner_ema) as train_reads:
            train_round(run, 5)

    ratios = [t / b for t, b in zip(times["train_gc"], times["bare"])]
    median = {name: statistics.median(t) for name, t in {**times, **bare.phases}.items()}
    bookkeeping = median["train_gc"] - median["bare"] - median["data"]
    rows = [{"part": name, "ms_per_step": 1000 * median[name],
             "min_ms": 1000 * min(t), "max_ms": 1000 * max(t)}
            for name, t in {**times, **bare.phases}.items()]
    rows.append({"part": "bookkeeping", "ms_per_step": 1000 * bookkeeping, "min_ms": "", "max_ms": ""})
    meta = {"machine": machine(), "case": case, "threads": torch.get_num_threads(), "batch": args.batch_size,
            "steps_per_round": args.steps,
            "rounds": args.rounds, "num_workers": run.num_workers,
            "parameters": K.utils.n_params(bare.state.inner),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "images_per_s_data": args.batch_size / median["data"],
            "host_reads_per_step": {"bare": bare_reads.blocking / 5, "train_gc": train_reads.blocking / 5,
                                    "train_gc_deferred": train_reads.deferred / 5},
            "command": command()}
    write_csv(rows, out.with_suffix(".csv"))
    write_json(meta, out.with_suffix(".json"))
    for r in rows:
        spread = f"  ({r['min_ms']:.1f}-{r['max_ms']:.1f})" if r["min_ms"] != "" else ""
        print(f"{r['part']:>12}  {r['ms_per_step']:8.1f} ms/step{spread}")
    print(f"train_gc / bare: x{meta['ratio_median']:.3f} "
          f"(rounds {meta['ratio_min']:.3f}-{meta['ratio_max']:.3f})")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
