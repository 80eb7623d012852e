"""Images per second that train_gc.py's data path delivers: 32x32 RGB at batch 512, as the CIFAR-10 config
trains.

The path is the training loop's own: ``make_dataset`` (for ``memory``, the arrays a CIFAR-10 read gives
``ArrayImages``), ``SeededItems`` with the config's random streams, ``EpochBatches`` and a ``DataLoader``
with ``--workers`` workers. Sources: ``memory`` (random uint8 pixels held in memory, as CIFAR-10, MNIST
and digits are) and ``imagefolder`` (random PNGs decoded per item), each with ``augment_prob`` 0 and 0.12
(k-diffusion's pipeline). The first batch (worker start-up) is not timed.

    python -m bench.data_rate                 # one worker
    python -m bench.data_rate --workers 0     # in the training process
"""

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import numpy as np
from torch.utils import data

from kdiff_gc.config import load_config
from kdiff_gc.data import ArrayImages, EpochBatches, SeededItems, make_dataset, random_streams
from bench.loop_overhead import random_imagefolder
from bench.report import ROOT, command, machine, parser, write_csv, write_json



def images_per_second(dataset, config: dict, batch: int, batches: int, workers: int,
                      repeats: int) -> list[float]:
    items = SeededItems(dataset, seed=0, streams=random_streams(config))
    rates = []
    for _ in range(repeats):
        loader = iter(data.DataLoader(items, batch_sampler=EpochBatches(len(items), batch, seed=0),
                                      num_workers=workers))
        next(loader)
        start = time.perf_counter()
        for _ in range(batches):
            next(loader)
        rates.append(batch * batches / (time.perf_counter() - start))
        del loader
    return rates


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--batches", type=int, default=8, help="timed batches per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, help="output prefix (default: docs/bench/data_rate_w{workers})")
    args = p.parse_args()
    out = args.out or ROOT / "docs" / "bench" / f"data_rate_w{args.workers}"
    n = args.batch_size * (args.batches + 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        random_imagefolder(Path(tmp), n)
        pixels = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        for augment_prob in (0.0, 0.12):
            config = load_config(ROOT / "configs" / "cifar10_gc.json")
            config["model"]["augment_prob"] = augment_prob
            sources = {"memory": lambda: ArrayImages(pixels, np.zeros(n, dtype=np.int64), config),
                       "imagefolder": lambda: make_dataset(
                           {**config, "dataset": {"type": "imagefolder", "location": tmp}})}
            for source, make in sources.items():
                # fewer timed batches with augmentation: k-diffusion's pipeline runs at a few hundred items a
                # second
                batches = args.batches if augment_prob == 0 else max(1, args.batches // 8)
                rates = images_per_second(make(), config, args.batch_size, batches, args.workers,
                                          args.repeats)
                rows.append({"source": source, "augment_prob": augment_prob, "workers": args.workers,
                             "images_per_s": statistics.median(rates), "min": min(rates), "max": max(rates)})
                print(f"{source:>12}  augment {augment_prob:<5} {rows[-1]['images_per_s']:9.0f} images/s "
                      f"({min(rates):.0f}-{max(rates):.0f})", flush=True)
    write_csv(rows, out.with_suffix(".csv"))
    meta = {"machine": machine(), "batch": args.batch_size, "repeats": args.repeats,
            "command": command()}
    write_json(meta, out.with_suffix(".json"))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
