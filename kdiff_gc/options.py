"""What a training run is told besides its config: ``train_gc.py``'s flags, resolved, as one typed value
(in the spirit of EDM's ``training_loop(**kwargs)``). The flags take their defaults from here, and a
benchmark or a script builds it directly. Standard library only, so that parsing flags imports no torch."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    """The options of :class:`kdiff_gc.trainer.Run`; each field is the ``train_gc.py`` flag of its name
    (``--out-dir`` is ``out_dir``), whose help says what it does. ``None`` takes the config's value (batch
    size, learning rate, end step), a seed drawn by the main process, or the device's default of data
    workers. ``save`` False writes no checkpoint at all, for benchmarks that time steps."""

    config: str
    name: str = "model"
    out_dir: str = "."
    batch_size: int | None = None
    lr: float | None = None
    grad_accum_steps: int = 1
    mixed_precision: str = "no"
    seed: int | None = None
    num_workers: int | None = None
    demo_every: int = 500
    sample_n: int = 64
    save_every: int = 10000
    evaluate_every: int = 0
    evaluate_n: int = 2000
    evaluate_with: str = "inception"
    inception_weights: str | None = None
    end_step: int | None = None
    resume: str | None = None
    init_from: str | None = None
    config_override: bool = False
    reset_ema: bool = False
    compile: bool = False
    checkpointing: bool = False
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_group: str | None = None
    wandb_save_model: bool = False
    start_method: str | None = None
    save: bool = True
    stop_signals: str = "TERM,USR1"
    save_every_minutes: float = 0.0
    collective_timeout_minutes: float = 30.0

    @property
    def evaluating(self) -> bool:
        """FID/KID during training: k-diffusion's ``evaluate_every > 0 and evaluate_n > 0``."""
        return self.evaluate_every > 0 and self.evaluate_n > 0
