"""The training loop behind ``train_gc.py``: k-diffusion's ``train.py``, for consistency models.

Flow: config -> models, optimizer, coupling -> loss step -> loop -> checkpoints, demo grids, metrics.
:class:`Run` takes a :class:`kdiff_gc.options.RunOptions` (train_gc.py builds one from its flags).
"""

import math
import os
from datetime import timedelta
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path

import accelerate
import k_diffusion as K
import torch
from torch.utils import data
from tqdm.auto import tqdm

from . import checkpoint, evaluation, inference, memory
from .builders import make_consistency_loss
from .coupling import COUPLINGS
from .config import differing_keys, load_config_value, read_training_config
from .data import EpochBatches, SeededItems, class_key, image_key, make_dataset, random_streams
from .errors import UserError, one_line, os_error_message
from .loss import LossOutput
from .monitor import LossWatch
from .options import RunOptions
from .precision import fourier_features_in_fp32
from .preemption import StopRequest, outlive_the_first, signal_numbers
from .run_files import RunFiles
from .runlock import RunLock
from .runtime import (HostCopy, broadcast, default_workers, derive_seed, gather, has_accelerator,
                      loader_generator, lost_peer, on_every, on_main, shared_seed)
from .sampling import random_classes, sample_fixed_noise, sample_shape
from .train_state import TrainState, load_checkpoint, train_step

# how each kind of model a coupling takes (kdiff_gc.coupling.MODEL_FILES) is read from its file
MODEL_LOADERS = {"consistency_model": lambda path: inference.load_model(path)[0],
                 "denoiser": inference.load_k_diffusion_denoiser}
WRITE_ADVICE = ("; the last checkpoint and the metrics so far are intact: fix this, then run the same "
                "command again to continue")


def read_config(path: str) -> tuple[dict, list[str]]:
    """:func:`kdiff_gc.config.read_training_config`, its problems as one :class:`UserError`."""
    if not Path(path).is_file():
        raise UserError(f"config {path!r} {checkpoint.not_a_file(Path(path))}: pass --config PATH to a JSON "
                        "file")
    try:
        return read_training_config(path)
    except ValueError as e:
        raise UserError(f"config {e}") from None


def start_processes(options: RunOptions) -> accelerate.Accelerator:
    """accelerate's view of this process, refusing a launch that asked for several CPU processes and got
    one."""
    timeout = accelerate.InitProcessGroupKwargs(timeout=timedelta(minutes=options.collective_timeout_minutes))
    acc = accelerate.Accelerator(gradient_accumulation_steps=options.grad_accum_steps,
                                 mixed_precision=options.mixed_precision, cpu=not has_accelerator(),
                                 kwargs_handlers=[timeout])
    if acc.num_processes == 1 and "ACCELERATE_USE_CPU" in os.environ and "MASTER_PORT" in os.environ:
        # accelerate's simple launcher sets MASTER_PORT only when asked for several processes, then starts one
        raise UserError("accelerate launch asked for several processes but started one (its --cpu launcher "
                        "runs a single process): on a machine without a GPU, run `accelerate launch "
                        "--multi_gpu --num_processes N train_gc.py ...` (without --cpu), or torchrun "
                        "--nproc_per_node N")
    return acc


class Run:
    """One training run: its state, and the steps that read and write it."""

    def __init__(self, options: RunOptions, make_extractor=None, evaluator=None,
                 after_step: Callable[[TrainState], None] | None = None,
                 on_gradients: Callable[[TrainState, LossOutput], None] | None = None):
        """``make_extractor(device)`` replaces the Inception feature extractor; ``evaluator`` (another
        run's ``(extractor, reference features)``) skips computing them again. Hooks for benchmarks:
        ``after_step(state)`` runs after each optimizer step, ``on_gradients(state, out)`` before it (see
        :func:`kdiff_gc.train_state.train_step`)."""
        self.options, self.after_step, self.on_gradients = options, after_step, on_gradients
        self.config, notices = read_config(options.config)
        self.accelerator = acc = start_processes(options)
        if acc.is_main_process:
            for notice in notices:
                tqdm.write(notice)
        self.device = acc.device
        self.files = RunFiles(options.out_dir, options.name)
        on_every(acc, self.files.check_regular)
        self.total_steps = self.config["consistency"]["total_steps"]
        self.end_step = self.total_steps if options.end_step is None else options.end_step
        self.batch_size = batch = (self.config["training"]["batch_size"] if options.batch_size is None
                                   else options.batch_size)
        if batch % (acc.num_processes * options.grad_accum_steps):
            raise UserError(f"--batch-size {batch} must divide by processes x --grad-accum-steps "
                            f"({acc.num_processes} x {options.grad_accum_steps})")
        self.local_batch = batch // acc.num_processes // options.grad_accum_steps
        self.check_memory()
        dataset = self.load_dataset()
        # FID compares with as many real images
        if options.evaluating and options.evaluate_n > len(dataset):
            raise UserError(f"the data set has {len(dataset)} images, fewer than --evaluate-n "
                            f"{options.evaluate_n}: lower --evaluate-n to at most {len(dataset)}")

        self.latest_seen = self.files.latest()
        ckpt_path = self.checkpoint_to_resume()
        ckpt = load_checkpoint(ckpt_path) if ckpt_path else None
        if ckpt:
            self.check_resume(ckpt, ckpt_path)
        seed = ckpt["seed"] if ckpt else options.seed if options.seed is not None else shared_seed(acc)
        init = None
        if options.init_from and not ckpt:
            init = inference.read_weights(options.init_from)[0], Path(options.init_from)
        self.state = TrainState.from_config(self.config, acc, seed, lr=options.lr, init_weights=init,
                                            batch_size=batch, compile=options.compile,
                                            checkpointing=options.checkpointing)
        self.write_failure = None  # the main process's failed metrics write, until every process has stopped
        self.stop = StopRequest([])  # run() listens to the stop signals
        self.stopping = self.save_due = False  # what every process learnt from the gathered flags
        self.loss_watch = LossWatch()
        self.loss_fn = self.make_loss()
        self.sampler = EpochBatches(len(dataset), self.local_batch, seed, acc.process_index,
                                    acc.num_processes)
        self.dataset = SeededItems(dataset, seed, random_streams(self.config))
        self.num_workers = default_workers(acc) if options.num_workers is None else options.num_workers
        self.evaluator = None
        if options.evaluating:
            self.evaluator = evaluator or self.make_evaluator(make_extractor)
        self.wandb = on_main(acc, self.start_wandb) if options.wandb_project else None
        if ckpt:  # last of all set-up: it restores the random streams
            self.state.load_state_dict(ckpt, ckpt_path, options.reset_ema)
            if acc.is_main_process:
                tqdm.write(f"Resuming from {ckpt_path} at step {self.state.step}")
            on_main(acc, self.remember_best)
        checksums = gather(acc, self.state.ema_checksums())
        if len({(r["ema_checksum"], r["ema_abs_checksum"]) for r in checksums}) > 1:
            raise UserError("the EMA weights (the GC generator) differ between processes at start-up: "
                            "pass the same --seed to every process and resume from the same checkpoint")

    def check_memory(self) -> None:
        """Before anything is built: the device holds the model four times over (weights, EMA, gradients, an
        optimizer moment), a micro-batch's tensors (the data, the noise, two noisy images and two outputs)
        and the demo grid's noise and samples. Lower bounds: activations come on top."""
        image = memory.image_floats(self.config) * memory.FLOAT_BYTES
        memory.require_model(self.config, 4, "its weights, EMA, gradients and optimizer state", self.device)
        memory.require(6 * self.local_batch * image, f"a micro-batch of {self.local_batch} images",
                       "lower --batch-size, or raise --grad-accum-steps", self.device)
        if self.options.demo_every:
            n = self.options.sample_n
            memory.require(2 * n * image, f"--sample-n {n}'s demo grid", "lower --sample-n", self.device)

    def remember_best(self) -> None:
        """The lowest 1-step FID of ``{name}_best.pth`` too, which a run stopped after an evaluation but
        before its next checkpoint wrote later than the checkpoint resumed from (the main process decides
        what is best)."""
        if self.files.best.is_file():
            best = checkpoint.safe_load(self.files.best, advice=": move it away, then run the command again")
            fid = best.get("best_fid_1step") if isinstance(best, dict) else None
            if isinstance(fid, float):
                self.state.best_fid = min(self.state.best_fid, fid)

    def load_dataset(self) -> data.Dataset:
        """The training set, made by every process at once: a download runs in one process at a time under a
        file lock (the others wait on the lock, not in a collective that could time out, and then read its
        files); a refusal on any process reaches every process."""
        config_dir = Path(self.options.config).parent
        return on_every(self.accelerator, lambda: make_dataset(self.config, config_dir))

    def hold_run_folder(self) -> RunLock | None:
        """The main process's lock on (out_dir, name), taken before the first write; every process learns
        whether it was refused. Under the lock, the state file must be as set-up found it: a run that
        finished meanwhile must not be overwritten or resumed from a stale checkpoint."""
        def hold() -> RunLock:
            lock = self.files.hold()
            if self.files.latest() != self.latest_seen:
                lock.release()
                raise UserError(f"another run wrote {self.files.state} while this one started: run the "
                                "command again to continue it, or pick another --name or --out-dir")
            if found := self.files.temporaries():  # no writer of this run is alive: the lock says so
                for path in found:
                    path.unlink(missing_ok=True)
                tqdm.write(f"notice: removed {len(found)} unfinished temporary file(s) ({found[0].name}...) "
                           "that a run killed while writing left")
            return lock
        return on_main(self.accelerator, hold)

    def make_loss(self):
        """The loss step, with the models its coupling takes (a frozen GC generator, a CD teacher) loaded from
        their files."""
        c = self.config["consistency"]["coupling"]
        models = {name: fourier_features_in_fp32(MODEL_LOADERS[kind](Path(c[f"{name}_path"])).to(self.device))
                  for name, kind in COUPLINGS[c["type"]].models(c).items()}
        for name, model in models.items():
            self.check_fits(model, f"consistency.coupling.{name}_path {c[f'{name}_path']!r}")
        return make_consistency_loss(self.config, **models)

    @torch.no_grad()
    def check_fits(self, model, where: str) -> None:
        """A frozen model takes this config's images (shape, classes) and returns their shape: one forward
        pass of a zero batch now, rather than a failure inside the first step."""
        x = torch.zeros([2, *sample_shape(self.config)], device=self.device)
        extra = random_classes(self.config, 2, torch.Generator().manual_seed(0), self.device)
        try:
            with K.utils.eval_mode(model):
                shape = tuple(model(x, torch.ones([2], device=self.device), **extra).shape)
        except Exception as e:  # k-diffusion's shape errors, a missing class embedding
            raise UserError(f"{where}: its model does not take this config's images "
                            f"({one_line(e)[:300]}): use one trained on the same data shape and "
                            "classes") from None
        if shape != tuple(x.shape):
            raise UserError(f"{where}: its model returns {list(shape)} for images of {list(x.shape)}: use "
                            "one trained on the same data shape")

    def check_resume(self, ckpt: dict, path: Path) -> None:
        """Before anything is built: the checkpoint's config is this one (or --config-override says go on),
        its optimizer state fits this optimizer, and there are steps left to train."""
        if not self.options.config_override:
            try:  # normalised as this config was: a default added since is the same on both sides
                stored = load_config_value(ckpt["config"])
            except ValueError as e:  # a schema tightened since refuses it
                raise UserError(f"resume: the config stored in {path} no longer loads ({e}): pass "
                                "--config-override to go on with this config") from None
            changed = differing_keys(stored, self.config)
            if (was := ckpt.get("batch", {}).get("size")) not in (None, self.batch_size):
                changed.append(f"the batch size ({was}, now {self.batch_size})")
            if changed:
                raise UserError(f"resume: the config differs from the one {path} was trained with, in "
                                f"{', '.join(changed)}: resume with that config, or pass --config-override "
                                "to go on with this one")
        was, now = ckpt["config"].get("optimizer", {}).get("type"), self.config["optimizer"]["type"]
        if was != now:
            raise UserError(f"--config-override: optimizer.type {now!r} cannot take over {path}'s {was!r} "
                            f"state: keep {was!r}, or start a new run with --init-from {path}")
        if ckpt["step"] >= self.end_step:
            raise UserError(f"--end-step {self.end_step}: {path} is at step {ckpt['step']} already: pass a "
                            "later --end-step")

    def checkpoint_to_resume(self) -> Path | None:
        """k-diffusion's convention: ``--resume PATH`` picks a checkpoint; otherwise the state file's latest
        checkpoint continues the run, so that a requeued job's unchanged command continues it (``--resume``
        alone insists on one). A run that starts afresh must find none of the files it would overwrite."""
        latest = self.latest_seen
        if self.options.resume not in (None, "latest"):
            return Path(self.options.resume)
        if latest is None and self.options.resume == "latest":
            raise UserError(f"--resume: no {self.files.state} to resume from (start without --resume)")
        if latest is None:
            on_main(self.accelerator, self.files.refuse_leftovers)
        return latest

    def make_evaluator(self, make_extractor):
        """The feature extractor (Inception unless ``make_extractor(device)`` is given) and the features of
        ``--evaluate-n`` real images."""
        extractor = (make_extractor or partial(evaluation.inception,
                                               self.options.inception_weights))(self.device)
        return extractor, evaluation.reference_features(self.accelerator, extractor, self.dataset.dataset,
                                                        image_key(self.config),
                                                        self.options.evaluate_n, self.local_batch)

    def start_wandb(self):
        try:
            import wandb

            wandb.init(project=self.options.wandb_project, entity=self.options.wandb_entity,
                       group=self.options.wandb_group,
                       config={"args": asdict(self.options), "config": self.config})
        except Exception as e:  # not installed, not logged in, no network: wandb's own reasons
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"--wandb-project: wandb did not start ({reason}): pip install wandb and run "
                            "`wandb login`, or drop --wandb-project") from None
        return wandb

    def loader(self) -> data.DataLoader:
        per_epoch = self.sampler.batches_per_epoch
        self.sampler.start_epoch, self.sampler.start_batch = divmod(self.state.batches_done, per_epoch)
        return data.DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=self.num_workers,
                               persistent_workers=self.num_workers > 0,
                               worker_init_fn=partial(outlive_the_first, self.stop.signals),
                               multiprocessing_context=self.options.start_method if self.num_workers
                               else None,
                               generator=loader_generator(self.state.seed),
                               pin_memory=self.device.type == "cuda")

    def batches(self):
        """The loader's batches; a data set's error past its first item, here or in a worker, is one
        :class:`UserError`."""
        batches = iter(self.loader())
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as e:  # a bad item (CheckedItems names it), or the loader's own failure
                text = str(e).strip()  # a worker's error ends with its own "Type: message" line
                reason = text.splitlines()[-1] if "Original Traceback" in text else one_line(e)
                if isinstance(e, UserError):  # from a worker: "kdiff_gc.errors.UserError: message"
                    raise UserError(reason.split("UserError: ", 1)[-1] + WRITE_ADVICE) from None
                raise UserError(f"the data set failed while loading step {self.state.step + 1}'s batch "
                                f"({reason}): fix the data" + WRITE_ADVICE) from None
            yield batch

    def to_device(self, batch) -> tuple[torch.Tensor, dict]:
        """A batch's images on the device, and its conditioning: the augmentation and the class."""
        reals, _, aug_cond = (t.to(self.device, non_blocking=True) for t in batch[image_key(self.config)])
        extra_args = {"aug_cond": aug_cond} if self.config["model"].get("augment_wrapper") else {}
        if self.config["dataset"].get("num_classes"):
            extra_args["class_cond"] = batch[class_key(self.config)].to(self.device, non_blocking=True)
        return reals, extra_args

    def demo(self) -> None:
        """``{name}_demo_{step:08}.png``: 1-step samples, then 2-step samples from the same noise, from the
        EMA model, drawn and written by the main process."""
        self.write(self.draw_demo)

    @torch.no_grad()
    def draw_demo(self) -> None:
        from torchvision import utils as tv_utils

        n = self.options.sample_n
        model, gen = self.state.model_ema, self.state.demo_gen
        with K.utils.eval_mode(model):
            rows = sample_fixed_noise(model, self.config, n, (1, 2), gen, self.device)
        nrow = math.ceil(n ** 0.5)
        grid = tv_utils.make_grid(torch.cat(rows).clamp(-1, 1), nrow=nrow, padding=1, pad_value=1)
        self.files.write_demo(K.utils.to_pil_image(grid), self.state.step)

    def evaluate(self) -> dict:
        """FID and KID of the EMA model's 1- and 2-step samples, seeded from the run's seed and the step."""
        extractor, reals = self.evaluator
        results = evaluation.scores(self.accelerator, self.state.model_ema, self.config, extractor, reals,
                                    self.options.evaluate_n, self.local_batch,
                                    derive_seed(self.state.seed, self.state.step))
        if self.accelerator.is_main_process:
            tqdm.write(f"step {self.state.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
        return results

    def checkpoint_object(self) -> dict | None:
        """The state's checkpoint on the main process (None elsewhere); every process must call it."""
        obj = self.state.state_dict()
        if obj is not None and len({(r["ema_checksum"], r["ema_abs_checksum"]) for r in obj["ranks"]}) > 1:
            tqdm.write("warning: the EMA weights differ between processes")
        return obj

    def write(self, work) -> None:
        """``work()``, a write by the main process during training, once any failed metrics write has been
        reported: a failure stops every process with one line."""
        def after_the_metrics():
            if self.write_failure is not None:
                raise UserError(self.write_failure)
            work()
        on_main(self.accelerator, after_the_metrics, WRITE_ADVICE)

    def save(self) -> None:
        """``{name}_{step:08}.pth``, then the state file pointing at it."""
        self.stop.saved()
        self.save_due = False
        obj = self.checkpoint_object()
        def save_and_upload():
            path = self.files.save(obj, self.state.step)
            tqdm.write(f"Saved {path}")
            if self.wandb and self.options.wandb_save_model:
                self.wandb.save(str(path), base_path=str(path.parent))
        self.write(save_and_upload)

    def save_if_best(self, fid: float) -> None:
        """``{name}_best.pth``: the checkpoint with the lowest 1-step FID so far (as the official code keeps);
        the state file, and so ``--resume``, keep pointing at the latest checkpoint."""
        # the main process decides: the save is collective
        if not self.options.save or not broadcast(self.accelerator, fid < self.state.best_fid):
            return
        self.state.best_fid = fid
        obj = self.checkpoint_object()
        self.write(lambda: tqdm.write(f"Saved {self.files.save_best(obj)} (1-step FID {fid:.4g} at step "
                                      f"{self.state.step})"))

    def run(self) -> bool:
        """Train to the end step, and say whether it was reached: a stop signal ends the run early, at a
        step that every process finishes and saves. A failed write ends the run with one line, the files
        written before intact."""
        lock = self.hold_run_folder()
        # the stop signals are noted, not fatal, until the process group has ended (and, once the run stops,
        # until the process exits): torchrun ends the other workers of a stopping run with SIGTERM
        with StopRequest(signal_numbers(self.options.stop_signals),
                         self.options.save_every_minutes) as self.stop:
            try:
                self.train()
                if self.stopping:
                    self.stop.outlast()
                if self.stopping and self.accelerator.is_main_process:
                    by = self.stop.received.name if self.stop.received else "a signal to another process"
                    tqdm.write(f"Stopped by {by} at step {self.state.step}: the same command continues the "
                               "run")
                return not self.stopping
            except OSError as e:
                raise UserError(os_error_message(e) + WRITE_ADVICE) from None
            except RuntimeError as e:
                if self.accelerator.num_processes == 1 or not lost_peer(e):
                    raise
                raise UserError(f"another process stopped or cannot be reached ({one_line(e)[:300]}): this "
                                "one stops too" + WRITE_ADVICE) from None
            finally:
                if lock is not None:
                    lock.release()
                # the process group ends in order: left to exit, gloo's threads can abort
                self.accelerator.end_training()

    def train(self, end_step: int | None = None) -> None:
        """Train to ``end_step`` (by default the options' or the config's end); a benchmark trains in
        rounds."""
        if end_step is not None:
            self.end_step = end_step
        acc = self.accelerator
        metrics, kept = on_main(acc, lambda: self.files.metrics_logger(self.state.step)) or (None, [])
        # a resumed watch starts with the recent losses (once: a benchmark trains in rounds)
        for row in kept if not self.loss_watch.losses else []:
            if row["loss"] is not None:
                self.loss_watch.update(row["step"], row["loss"])
        bar = tqdm(total=self.end_step, initial=self.state.step, disable=not acc.is_main_process,
                   smoothing=0.1)
        try:
            self.train_steps(bar, metrics)
        except BaseException:
            bar.leave = False  # clear the bar so that the error stands alone
            raise
        finally:
            bar.close()
            if metrics:
                metrics.close()
        acc.wait_for_everyone()

    def train_steps(self, bar, metrics) -> None:
        """Steps to the end step. A step's loss is read back from the device one step later, while the next
        step runs (a GPU's queue never waits for it), or at once where the step evaluates, draws a demo or
        saves: its loss is checked before anything is written."""
        acc, options = self.accelerator, self.options
        if self.state.step >= self.end_step:
            return
        micro_stats, pending = [], None
        for batch in self.batches():
            reals, extra_args = self.to_device(batch)
            lr = self.state.sched.get_last_lr()[0]  # the rate of this step (the step moves the schedule on)
            out = train_step(self.state, self.loss_fn, reals, on_gradients=self.on_gradients, **extra_args)
            micro_stats.append(torch.stack([out.loss.detach().mean(), out.gc_share]).float())
            if not acc.sync_gradients:
                continue
            stats = acc.gather(torch.cat([torch.stack(micro_stats).mean(0), self.flags()])[None]).mean(0)
            micro_stats = []
            if self.after_step is not None:
                self.after_step(self.state)
            if pending is not None:
                self.write_row(self.read_row(*pending, bar), metrics)
            pending = self.state.step, HostCopy(stats), out.n_scales, lr
            evaluating = self.evaluator is not None and self.state.step % options.evaluate_every == 0
            drawing = options.demo_every and self.state.step % options.demo_every == 0
            ending = self.state.step >= self.end_step
            on_cadence = options.save and self.state.step % options.save_every == 0
            if not (evaluating or drawing or on_cadence or ending or self.stopping or self.save_due):
                continue
            row, pending = self.read_row(*pending, bar), None  # its flags may stop or save now
            saving = on_cadence or options.save and (ending or self.stopping or self.save_due)
            if evaluating:
                row.update(self.evaluate())
                self.save_if_best(row["fid_1step"])
            self.write_row(row, metrics)
            if drawing:
                self.demo()
            if saving:
                self.save()
            if ending or self.stopping:
                break

    def flags(self) -> torch.Tensor:
        """What every process must learn with the step's statistics, as 0/1: the main process's failed
        metrics write, a stop signal on any process, the main process's clock saying a save is due. Made on
        the device (a copy from the host would wait for its queue)."""
        flags = torch.zeros(3, device=self.device)
        raised = (self.write_failure is not None, self.stop.received is not None,
                  self.accelerator.is_main_process and self.stop.save_due())
        for i in (i for i, r in enumerate(raised) if r):
            flags[i] = 1.0
        return flags

    def read_row(self, step: int, stats: HostCopy, n_scales: int, lr: float, bar) -> dict:
        """Step ``step``'s metrics row, shown on the bar and watched. A loss that is not finite, or a failed
        metrics write on the main process, stops every process."""
        loss, gc_share, failed, stop, save_due = stats.tolist()
        self.stopping, self.save_due = self.stopping or stop > 0, self.save_due or save_due > 0
        if failed:
            raise UserError(self.write_failure or "the main process could not write the metrics (its error "
                            "says why): training stopped" + WRITE_ADVICE)
        if not math.isfinite(loss):
            raise UserError(f"loss is {loss} at step {step}: training stopped; the last checkpoint and the "
                            "metrics so far are intact (try a lower --lr or --mixed-precision no)")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}", N=n_scales, gc=f"{gc_share:.2f}", refresh=False)
        if (warning := self.loss_watch.update(step, loss)) and self.accelerator.is_main_process:
            tqdm.write(warning)
        return {"step": step, "loss": loss, "n_scales": n_scales, "gc_share": gc_share, "lr": lr}

    def write_row(self, row: dict, metrics) -> None:
        """The row in the metrics file (and wandb), by the main process. A failed write is not raised here,
        where the other processes would not learn of it: it travels with the next step's gathered stats."""
        if not metrics or self.write_failure is not None:
            return
        try:
            self.files.write_metrics(metrics, row)
        except OSError as e:
            self.write_failure = os_error_message(e) + WRITE_ADVICE
            return
        if self.wandb:
            try:
                self.wandb.log(row, step=row["step"])
            except Exception as e:  # wandb's network or service: training goes on, the metrics file has it
                tqdm.write(f"warning: wandb.log failed at step {row['step']} ({one_line(e)[:200]}): logging "
                           "to wandb is off for the rest of the run; the metrics file keeps every row")
                self.wandb = None
