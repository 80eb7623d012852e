"""A run's files in its folder, named as k-diffusion names them: checkpoints ``{name}_{step:08}.pth``, the
state file ``{name}_state.json`` pointing at the latest, ``{name}_best.pth``, demo grids
``{name}_demo_{step:08}.png``, the metrics ``{name}_metrics.csv`` and the lock ``{name}.lock``."""

import csv
import glob
from pathlib import Path

import k_diffusion as K
from PIL import Image

from . import checkpoint
from .errors import UserError, writing
from .runlock import RunLock

METRICS = ["step", "loss", "n_scales", "gc_share", "lr", "fid_1step", "kid_1step", "fid_2step", "kid_2step"]


def truncate_metrics(path: Path, last_step: int) -> list[dict]:
    """Keep the rows up to ``last_step`` (a resumed run rewrites what came after its checkpoint); returns
    them, each with an integer ``step`` and a float or empty ``loss``. A file that is not train_gc.py's
    metrics is one :class:`UserError`, and stays as it was."""
    if not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        if fields and fields != METRICS:
            raise ValueError(f"its columns are {', '.join(fields)}")
        for row in rows:
            row["step"], row["loss"] = int(row["step"]), float(row["loss"]) if row["loss"] else None
    except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error) as e:
        raise UserError(f"{path} is not train_gc.py's metrics ({e}): move it away, then resume again (the "
                        "metrics restart at the checkpoint's step)") from None
    if not fields:  # empty (a crash before its header): the logger writes it afresh
        path.unlink()
        return []
    kept = [row for row in rows if row["step"] <= last_step]
    lines = [fields] + [["" if row[k] is None else str(row[k]) for k in fields] for row in kept]
    text = "".join(",".join(line) + "\n" for line in lines)
    checkpoint.atomic_write(path, lambda tmp: tmp.write_text(text))
    return kept


class RunFiles:
    """The files of run ``name`` in ``out_dir``; only the main process writes them."""

    def __init__(self, out_dir: Path, name: str):
        self.out_dir, self.name = Path(out_dir), name
        self.state = self.out_dir / f"{name}_state.json"
        self.metrics = self.out_dir / f"{name}_metrics.csv"
        self.best = self.out_dir / f"{name}_best.pth"

    def checkpoint(self, step: int) -> Path:
        return self.out_dir / f"{self.name}_{step:08}.pth"

    def latest(self) -> Path | None:
        """The checkpoint the state file points at, or None."""
        return checkpoint.latest_checkpoint(self.state)

    def check_regular(self) -> None:
        """The state file, the metrics, the best checkpoint and the lock are regular files where they exist:
        a FIFO among them would hang the run, a link to a device fill its memory."""
        for path in (self.state, self.metrics, self.best, self.out_dir / f"{self.name}.lock"):
            if kind := checkpoint.file_kind(path):
                raise UserError(f"{path} is not a regular file ({kind}): move it away, or pick another "
                                "--name or --out-dir")

    def leftovers(self) -> list[Path]:
        """Files of this run that a fresh start would overwrite: metrics rows, checkpoints, demo grids (say,
        of a run stopped before its first checkpoint, which left no state file)."""
        name, step = glob.escape(self.name), "[0-9]" * 8
        found = [*self.out_dir.glob(f"{name}_{step}.pth"), *self.out_dir.glob(f"{name}_demo_{step}.png")]
        found += [p for p in (self.best, self.metrics) if p.is_file() and p.stat().st_size > 0]
        return sorted(found)

    def temporaries(self) -> list[Path]:
        """The temporary files of this run's atomic writes (``.{file}.*.tmp``): a run killed while it wrote
        (SIGKILL, a lost node) leaves one, as large as a checkpoint."""
        name, step, found = glob.escape(self.name), "[0-9]" * 8, []
        for file in (f"{name}_{step}.pth", f"{name}_demo_{step}.png",
                     *(glob.escape(p.name) for p in (self.state, self.metrics, self.best))):
            found += self.out_dir.glob(f".{file}.*.tmp")
        return sorted(found)

    def refuse_leftovers(self) -> None:
        if found := self.leftovers():
            names = ", ".join(p.name for p in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3
                                                            else "")
            raise UserError(f"{self.out_dir} holds {names} of a run named {self.name!r} with no "
                            f"{self.state.name} to continue from: move them away, or pick another --name or "
                            "--out-dir (nothing was overwritten)")

    def hold(self) -> RunLock:
        """The run lock; creates the folder."""
        return RunLock(self.out_dir, self.name)

    def save(self, obj: dict, step: int) -> Path:
        """The checkpoint of ``step``, then the state file pointing at it."""
        path = self.checkpoint(step)
        checkpoint.save_checkpoint(obj, path, self.state)
        return path

    def save_best(self, obj: dict) -> Path:
        """``{name}_best.pth``; the state file keeps pointing at the latest checkpoint."""
        checkpoint.save_checkpoint(obj, self.best)
        return self.best

    def metrics_logger(self, step: int) -> tuple["MetricsLog", list[dict]]:
        """The metrics' log, its rows after ``step`` dropped; and the rows kept."""
        return MetricsLog(self.metrics), truncate_metrics(self.metrics, step)

    def write_metrics(self, log: "MetricsLog", row: dict) -> None:
        log.write(row)

    def write_demo(self, image: Image.Image, step: int) -> Path:
        path = self.out_dir / f"{self.name}_demo_{step:08}.png"
        checkpoint.atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
        return path


class MetricsLog:
    """k-diffusion's CSV logger on the metrics file, opened at the first row: a run that fails before it
    (a data set's bad item in the first step) leaves no header-only file that a fresh start would refuse as
    another run's."""

    def __init__(self, path: Path):
        self.path, self.logger = path, None

    def write(self, row: dict) -> None:
        with writing(self.path):
            if self.logger is None:
                self.logger = K.utils.CSVLogger(self.path, METRICS)
            self.logger.write(*(row.get(k, "") for k in METRICS))

    def close(self) -> None:
        if self.logger is not None:
            self.logger.file.close()
