"""Write docs/results.md from the benchmark outputs in docs/bench/: every number comes from those files.

    python -m bench.results_page                                  # docs/bench/ -> docs/results.md
    python -m bench.results_page --bench DIR --out DIR/results.md # any folder of outputs

The folder holds first_run.*, stability*, step_cost.*, loop_overhead_*.*, data_rate_*.*, paper_scale.json,
flow_gap.*, convergence_<dataset>.*, tuning_<dataset>.* and ema_warmup.* as the scripts write them, and gpu/
with bench/gpu_check.sh's outputs when a GPU has run it.
"""

import argparse
import csv
import json
import math
import os
import statistics
from pathlib import Path

from bench.report import checkpoint_spread, holm

ROOT = Path(__file__).resolve().parents[1]


def rows(path: Path) -> list[dict]:
    with open(path.with_suffix(".csv"), newline="") as f:
        return list(csv.DictReader(f))


def meta(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def runs(prefix: Path) -> list[tuple[Path, dict]]:
    """Each of a benchmark's runs written under ``prefix`` (``PREFIX_*.json``): its path and metadata."""
    return [(path, meta(path)) for path in sorted(prefix.parent.glob(f"{prefix.name}_*.json"))]


def image(path: Path, page: Path, alt: str) -> str:
    """A Markdown image of ``path`` linked relative to the page that shows it."""
    return f"![{alt}]({Path(os.path.relpath(path, page.parent)).as_posix()})"


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4g} ({min(values):.3g}–{max(values):.3g})"


def verdict(held: bool) -> str:
    return "**held**" if held else "**did not hold**"


COLUMNS = {"flow_gap": "flow gap", "velocity_gap": "velocity gap", "sample_swd": "1-step sliced W2",
           "transport": "transport"}


# what bench/step_cost.py timed as a step: the library's step, or (before it called it) its own
STEP_TIMED = {"kdiff_gc.train_step": "Each step is `kdiff_gc.train_step` (loss, backward, clip, the config's "
              "optimizer, LR schedule and EMA).",
              None: "Each step is the loss, its backward and an AdamW step, without clipping or EMA (an "
              "earlier version of the benchmark, before it called the library's step)."}


def step_cost_section(prefix: Path, page: Path, heading: str = "## Cost per step") -> list[str]:
    r, m = {x["variant"]: x for x in rows(prefix)}, meta(prefix)
    ratio = {k: float(v["ratio_to_ic"]) for k, v in r.items()}
    lines = [heading, "", f"`{m['command']}` on {m['machine']}; model `{m['config']}` ({m['parameters']:,} "
             f"parameters), batch {m['batch']}, medians over {r['ic']['repeats']} alternated rounds, with "
             f"the quartiles of the per-round ratios. {STEP_TIMED.get(m.get('step'), STEP_TIMED[None])} "
             "GC's floor at mu is IC plus mu no-grad forward passes "
             "of the whole batch (`forward_nograd`, timed in the same rounds); \"over floor\" is GC's cost "
             "beyond it, in IC steps.", "",
             "| variant | ms / step | ratio to IC (quartiles) | over floor (quartiles) | peak MiB |",
             "|---|---|---|---|---|"]
    for k, v in r.items():
        floor = (f"{float(v['over_floor']):+.3f} ({float(v['over_floor_q1']):+.3f} to "
                 f"{float(v['over_floor_q3']):+.3f})"
                 if v["over_floor"] else "")
        lines.append(f"| {k} | {float(v['median_s']) * 1000:.1f} | {ratio[k]:.3f} "
                     f"({float(v['ratio_q1']):.3f}–{float(v['ratio_q3']):.3f}) | {floor} | "
                     f"{float(v['peak_mib']):.0f} |")
    over = float(r["gc_mu0.5"]["over_floor"])
    lines += ["", f"- GC at mu = 0.5 costs {ratio['gc_mu0.5']:.2f}x IC (target at most 1.15x): "
              f"{verdict(ratio['gc_mu0.5'] <= 1.15)}. The official code's whole-batch generator costs "
              f"{ratio['gc_full_batch_mu0.5']:.2f}x; running it on the selected rows saves "
              f"{ratio['gc_full_batch_mu0.5'] - ratio['gc_mu0.5']:.2f} of an IC step.",
              "- GC at mu = 0.5 costs at most IC plus half a no-grad forward pass of the batch, within 0.02 "
              f"of an IC step: {verdict(over <= 0.02)} ({over:+.3f} of an IC step; a forward pass costs "
              f"{ratio['forward_nograd']:.2f} of one).",
              f"- Batch-OT costs {ratio['batch_ot']:.2f}x IC (target at most 1.05x at batch 512): "
              f"{verdict(ratio['batch_ot'] <= 1.05)}.", ""]
    return lines


def loop_overhead_section(prefix: Path, page: Path, heading: str = "## Loop overhead") -> list[str]:
    """bench/loop_overhead.py's runs (``loop_overhead_<case>...``) and bench/data_rate.py's."""
    lines = [heading, "", "train_gc.py's loop (`Run.train`: data, metrics rows, loss watch, progress bar) "
             "against a bare loop of the same loss step, optimizer, clipping and EMA with its batches in "
             "tensors, alternated step by step in one process; ms per step, medians over rounds (the ratio's "
             "range over rounds). Data is the run's loader alone; forward (the loss step with its coupling), "
             "backward, and optimizer with EMA (the clip, the optimizer, the LR schedule and the EMA) are "
             "the bare loop's phases; bookkeeping is what remains. Host reads: values read back from the "
             "device per step, blocking / deferred to the next step.", "",
             "| case | command | machine | bare | train_gc.py | ratio | data | forward | backward "
             "| optimizer with EMA | bookkeeping | host reads |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    claims = []
    for path, m in runs(prefix):
        ms = {r["part"]: float(r["ms_per_step"]) for r in rows(path)}
        ms["optimizer"] += ms.pop("ema", 0.0)  # timed apart before the bare loop called the library's step
        reads = m["host_reads_per_step"]
        lines.append(f"| {m['case']}, batch {m['batch']}, {m['num_workers']} workers | `{m['command']}` | "
                     f"{m['machine']} | "
                     + " | ".join(f"{ms[k]:.1f}" for k in ("bare", "train_gc"))
                     + f" | {m['ratio_median']:.3f} ({m['ratio_min']:.3f}–{m['ratio_max']:.3f}) | "
                     + " | ".join(f"{ms[k]:.1f}"
                                  for k in ("data", "forward", "backward", "optimizer", "bookkeeping"))
                     + f" | {reads['train_gc']:g} / {reads['train_gc_deferred']:g} |")
        target = 1.15 if m["case"] == "rgb32" else 1.1
        where = f"{m['case']}, {m['threads']} thread{'s' * (m['threads'] > 1)}"
        claims.append(f"- train_gc.py's loop is within {target}x of the bare loop ({where}): "
                      f"{verdict(m['ratio_median'] <= target)} ({m['ratio_median']:.3f}).")
        claims.append(f"- train_gc.py's ordinary step reads no device value back at once ({where}): "
                      f"{verdict(reads['train_gc'] == 0)} "
                      f"({reads['train_gc_deferred']:g} deferred per step).")
    lines += [""] + claims + [""]
    for path in sorted(prefix.parent.glob("data_rate_*.json")):
        m, r = meta(path), rows(path)
        lines += [f"Data path, 32x32 RGB at batch {m['batch']}: `{m['command']}` on {m['machine']}; "
                  f"images per second, median of {m['repeats']} repeats (range).", "",
                  "| source | augment_prob | workers | images / s |", "|---|---|---|---|"]
        lines += [f"| {x['source']} | {x['augment_prob']} | {x['workers']} | {float(x['images_per_s']):,.0f} "
                  f"({float(x['min']):,.0f}–{float(x['max']):,.0f}) |" for x in r]
        memory = next(float(x["images_per_s"]) for x in r
                      if x["source"] == "memory" and float(x["augment_prob"]) == 0)
        workers = int(r[0]["workers"])
        who = "the training process alone" if workers == 0 else f"{workers} worker{'s' * (workers > 1)}"
        lines += ["", f"- With augmentation off, {who} delivers at least 5,000 images/s of 32x32 RGB held in "
                  f"memory (CIFAR-10's path): {verdict(memory >= 5000)} ({memory:,.0f}).", ""]
    return lines


def paper_scale_section(prefix: Path, page: Path) -> list[str]:
    m = meta(prefix)
    stages = ", ".join(f"{name} {seconds:g} s" for name, seconds in m["seconds"].items())
    return ["## The paper-scale path on the CPU", "",
            f"`{m['command']}` on {m['machine']}: configs/cifar10_gc.json with its {m['model']} model "
            f"({m['parameters']:,} parameters) on {m['data']}, batch {m['batch']}: train to step 2, resume "
            f"to step 3, export, sample and evaluate (FID on {m['evaluate_n']} samples), each through its "
            f"program. Seconds per stage: {stages}. Checkpoint {m['checkpoint_mib']:.0f} MiB, inference file "
            f"{m['inference_mib']:.0f} MiB. FID (1 step / 2 steps) {m['fid_1step']:.1f} / "
            f"{m['fid_2step']:.1f}: three steps of training scored on a handful of samples, a check that the "
            "path runs, not a score.", "",
            "- configs/cifar10_gc.json at its full size trains, saves, resumes, exports, samples and "
            f"evaluates on the CPU: {verdict(m['ran_end_to_end'] and m['model'] == 'full')}.", ""]


def final_rows(all_rows: list[dict], key: str) -> list[dict]:
    last = max(int(r[key]) for r in all_rows)
    return [r for r in all_rows if int(r[key]) == last]


def flow_gap_section(prefix: Path, page: Path) -> list[str]:
    all_rows, m = rows(prefix), meta(prefix)
    lines = ["## Flow gap on exact ground truth", "", f"`{m['command']}` on {m['machine']} ({m['seconds']} "
             f"s): {m['seeds']} seeds, {m['steps']} steps. Mean (min–max over seeds) at the last step, EMA "
             "model; lower is better for the flow gap and the sample distance. The flow gap is measured "
             "against f*, the flow map of the data's probability-flow ODE (the independent coupling's); "
             "batch-OT and GC train on other pairs, whose fixed point is f* only when the generator is "
             "exact, so this measures how far each coupling pulls the model from the CD target, not sample "
             "quality. The velocity gap is the paper's CT/CD discrepancy: E ||v_proxy - v||^2 at x_{i+1}, "
             "the velocity a coupling's pairs stand for ((x_{i+1} - x_i) / (sigma_{i+1} - sigma_i)) against "
             "the data's probability-flow velocity (x - D*(x, sigma)) / sigma with the exact denoiser, for "
             "the pairs each coupling builds from its own EMA model at the end of training (IC: E Var(z | "
             "x_sigma), whatever the model; CD: only the Heun step's error).", ""]
    for dim in dict.fromkeys(r["dim"] for r in all_rows):
        mine = [r for r in all_rows if r["dim"] == dim]
        final = final_rows(mine, "step")
        methods = list(dict.fromkeys(r["method"] for r in mine))
        mean = {(meth, k): statistics.mean(float(r[k]) for r in final if r["method"] == meth)
                for meth in methods for k in COLUMNS}
        lines += [f"### {dim}-D mixture", "", "| method | " + " | ".join(COLUMNS.values()) + " |",
                  "|---" * (len(COLUMNS) + 1) + "|"]
        for meth in methods:
            lines.append(f"| {meth} | " + " | ".join(spread([float(r[k]) for r in final
                                                                if r["method"] == meth])
                                                     for k in COLUMNS) + " |")
        bands = [k for k in final[0] if k.startswith("vgap_sigma_")]
        lines += ["", "Velocity gap per sigma band (all rows of each coupling's pairs; mu = 1 is GC pairs "
                  "only):", "",
                  "| method | " + " | ".join("sigma " + k.removeprefix("vgap_sigma_").replace("_", "–")
                                           for k in bands)
                  + " |", "|---" * (len(bands) + 1) + "|"]
        for meth in methods:
            lines.append(f"| {meth} | " + " | ".join(
                f"{statistics.mean(float(r[k]) for r in final if r['method'] == meth):.4g}"
                for k in bands) + " |")
        gc, ot, ic, cd = (mean[(x, "flow_gap")] for x in ("gc_mu0.5", "batch_ot", "ic", "cd_exact"))
        vgc, vot, vic = (mean[(x, "velocity_gap")] for x in ("gc_mu0.5", "batch_ot", "ic"))
        vgc_rows = statistics.mean(float(r["velocity_gap_gc_rows"]) for r in final
                                   if r["method"] == "gc_mu0.5")
        mu1 = [r for r in mine if r["method"] == "gc_mu1.0"]
        late = statistics.mean(  # per seed: final flow gap over the best it reached
            [float(r["flow_gap"]) for r in final if r["method"] == "gc_mu1.0" and r["seed"] == seed][0]
            / min(float(r["flow_gap"]) for r in mu1 if r["seed"] == seed)
            for seed in dict.fromkeys(r["seed"] for r in mu1))
        lines += ["", image(prefix.parent / f"{prefix.name}_{dim}d.png", page, f"flow gap {dim}-D"), "",
                  f"- GC (mu 0.5) < batch-OT < IC in flow gap: {verdict(gc < ot < ic)} "
                  f"(GC/IC = {gc / ic:.2f}, OT/IC = {ot / ic:.2f}).",
                  "- GC brings CT closer to CD, its generator-made pairs having a smaller velocity gap than "
                  f"IC's pairs: {verdict(vgc_rows < vic)} (mu 0.5, GC rows / IC = {vgc_rows / vic:.2f}; all "
                  f"of GC's rows / IC = {vgc / vic:.2f}).",
                  f"- GC < batch-OT < IC in velocity gap: {verdict(vgc < vot < vic)} (GC/IC = "
                  f"{vgc / vic:.2f}, OT/IC = {vot / vic:.2f}).",
                  "- GC lowers the transport cost below IC: "
                  f"{verdict(mean[('gc_mu0.5', 'transport')] < mean[('ic', 'transport')])} "
                  f"({mean[('gc_mu0.5', 'transport')]:.4g} vs {mean[('ic', 'transport')]:.4g}).",
                  "- CD with the exact teacher has the lowest flow gap: "
                  f"{verdict(cd <= min(mean[(x, 'flow_gap')] for x in methods))}.",
                  f"- mu = 1 ends more than 10% above the best flow gap it reached (late instability): "
                  f"{verdict(late > 1.1)} (final / best, mean over seeds: {late:.2f}).", ""]
    return lines


def interval(c: dict, digits: int = 2) -> str:
    """A paired difference: ``mean [low, high]``, without a verdict word (outside the evidence protocol's
    corrected families, the page gives none)."""
    if c["low"] is None:
        return f"{c['mean']:+.{digits}f} ({c['verdict']})"
    return f"{c['mean']:+.{digits}f} [{c['low']:+.{digits}f}, {c['high']:+.{digits}f}]"


def steps_to(steps: int | None, total: int) -> str:
    """Steps a method took to reach a target, or that it did not in the run's ``total`` steps."""
    return str(steps) if steps is not None else f"not reached in {total}"


def value_range(c: dict, digits: int = 2) -> str:
    return f"{c['mean']:.{digits}f} ({c['min']:.{digits}f}–{c['max']:.{digits}f})"


def method_grids(path: Path, page: Path, methods: list[str]) -> str:
    """The benchmark's sample grids, ``{stem}_grid_{method}.png``, side by side."""
    return " ".join(image(path.with_name(f"{path.stem}_grid_{meth}.png"), page, meth) for meth in methods)


def convergence_section(prefix: Path, page: Path,
                        heading: str = "## Convergence on real images") -> list[str]:
    """bench/convergence.py: each data set's judge figures and Inception scores, paired against IC by seed."""
    lines = [heading, "", "IC, batch-OT and GC (mu 0.3, 0.5, 0.7) in the data set's recipe with "
             "train_gc.py's own loop; only the coupling differs. Runs of one seed share their initial "
             "weights and batches, so each method is compared with IC seed by seed: the mean paired "
             "difference with its 95% paired t interval over seeds, not corrected for multiple comparisons "
             "(no verdict word). The judge "
             "(bench/judge.py) scores the EMA model's samples, the same noise for every run: lower Frechet "
             "distance and higher confident share are better.", ""]
    for path, m in runs(prefix):
        s, dataset, steps = m["summary"], m["dataset"], m["steps"]
        methods = m["methods"]
        lines += [f"{heading.split()[0]}# {dataset}", "",
                  f"`{m['command']}` on {m['machine']}, {m['jobs']} run(s) side by side with "
                  f"{m['threads_per_run']} thread(s) each (the runs' training time, summed: "
                  f"{m['training_seconds'] / 60:.0f} min): {m['seeds']} seeds, {steps} steps, the judge on "
                  f"{m['judge_n']} samples every {m['every']} steps (classifier accuracy "
                  f"{m['judge_accuracy']:.3f}).",
                  "", "Mean (min–max over seeds):", "",
                  "| method | s / step | final 1-step Frechet | best 1-step Frechet | final 1-step confident "
                  "| final 1-step coverage | final 2-step Frechet |", "|---|---|---|---|---|---|---|"]
        for meth in methods:
            lines.append(f"| {meth} | {s['seconds_per_step'][meth]:.3f} | "
                         f"{value_range(s['final_frechet_1step'][meth])} | "
                         f"{value_range(s['best_frechet_1step'][meth])} | "
                         f"{value_range(s['final_confident_1step'][meth], 3)} "
                         f"| {value_range(s['final_coverage_1step'][meth], 3)} | "
                         f"{value_range(s['final_frechet_2step'][meth])} |")
        lines += ["", "Against IC, paired by seed; steps (and seconds) to reach IC's best mean 1-step "
                  f"Frechet ({s['ic_best_frechet_1step']:.2f}):", "",
                  f"| method | to IC's best | 1-step Frechet at step {s['half_step']} | final 1-step Frechet "
                  "| best 1-step Frechet | final 1-step confident | final 2-step Frechet |",
                  "|---|---|---|---|---|---|---|"]
        for meth in methods:
            reach = s["to_ic_best"][meth]
            reached = steps_to(reach["steps"], steps)
            if reach["steps"] is not None:
                reached += f" ({reach['seconds']} s)"
            if meth == "ic":
                lines.append(f"| ic | {reached} | {value_range(s['half_frechet_1step']['ic'])} | | | | |")
                continue
            lines.append(f"| {meth} | {reached} | {interval(s['half_frechet_1step'][meth]['vs_ic'])} | "
                         f"{interval(s['final_frechet_1step'][meth]['vs_ic'])} | "
                         f"{interval(s['best_frechet_1step'][meth]['vs_ic'])} | "
                         f"{interval(s['final_confident_1step'][meth]['vs_ic'], 3)} | "
                         f"{interval(s['final_frechet_2step'][meth]['vs_ic'])} |")
        if "inception_steps" in s:
            at = s["inception_steps"]
            lines += ["", f"Inception FID and KID of 1-step samples ({m['inception_n']} samples against "
                      f"{m['inception_n']} real images, clean-fid's network on k-diffusion's feature code) "
                      f"at step{'s' if len(at) > 1 else ''} {', '.join(map(str, at))}, each with its paired "
                      "difference against IC by seed:", "",
                      "| method | " + " | ".join(f"FID at {a} | vs IC" for a in at) + f" | KID at {at[-1]} |",
                      "|---|" + "---|" * (2 * len(at) + 1)]
            for meth in s["inception_fid_1step"][str(at[-1])]:
                fid = [s["inception_fid_1step"][str(a)][meth] for a in at]
                kid = s["inception_kid_1step"][str(at[-1])][meth]
                lines.append(f"| {meth} | " + " | ".join(
                    f"{value_range(f, 1)} | {interval(f['vs_ic'], 1) if meth != 'ic' else ''}" for f in fid)
                             + f" | {value_range(kid, 4)} |")
        lines += ["", image(path.with_name(f"{path.stem}_step.png"), page,
                            f"judge along training, {dataset}"), "",
                  image(path.with_name(f"{path.stem}_seconds.png"), page,
                        f"judge against seconds, {dataset}"), "",
                  method_grids(path, page, methods), "",
                  f"Final 1-step samples of seed 0, the same noise for each method, in the order "
                  f"{', '.join(methods)}.",
                  ""]
        if "gc_mu0.5" in methods:
            final, half = (s["final_frechet_1step"]["gc_mu0.5"]["vs_ic"],
                           s["half_frechet_1step"]["gc_mu0.5"]["vs_ic"])
            gc_fewer_steps = ((s["to_ic_best"]["gc_mu0.5"]["steps"] or steps + 1)
                              < s["to_ic_best"]["ic"]["steps"])
            lines += [f"- GC (mu 0.5) is closer to real {dataset} than IC at half the run (1-step Frechet at "
                      f"step {s['half_step']}, paired by seed): {verdict(half['verdict'] == 'better')} "
                      f"({interval(half)}).",
                      f"- GC (mu 0.5) ends closer to real {dataset} than IC (final 1-step Frechet, paired by "
                      f"seed): {verdict(final['verdict'] == 'better')} ({interval(final)}).",
                      "- GC (mu 0.5) reaches IC's best mean 1-step Frechet in fewer steps than IC: "
                      f"{verdict(gc_fewer_steps)} (GC {s['to_ic_best']['gc_mu0.5']['steps']}, IC "
                      f"{s['to_ic_best']['ic']['steps']}).", ""]
        worse = s["ends_worse_than_half"]
        listed = "; ".join(f"{w['method']} seed {w['seed']}: {w['half']:.2f} then {w['final']:.2f}"
                           for w in worse)
        lines += [f"- Every run ends at least as close to real {dataset} as at half the run (1-step Frechet "
                  f"at step {s['last_step']} against step {s['half_step']}): {verdict(not worse)}"
                  + (f" ({listed})." if worse else "."), ""]
    return lines


def ema_warmup_section(prefix: Path, page: Path) -> list[str]:
    """bench/ema_warmup.py: the official EMA's warm-up, scaled, against the recipe's constant EMA, IC and
    GC."""
    m, table = meta(prefix), rows(prefix)
    steps, judged, warmup = m["steps"], m["judged_steps"], m["ema"]["warmup"]
    ages = m["ema_ages"]
    lines = ["## The official EMA warm-up at small scale", "",
             f"`{m['command']}` on {m['machine']}, {m['jobs']} runs side by side. The protocol is fixed in "
             f"`bench/ema_warmup.py`'s docstring, committed before the runs: the digits recipe ({steps} "
             f"steps), IC and GC mu 0.5, seeds 0 to {m['seeds'] - 1}, with the recipe's constant EMA "
             f"({m['ema']['constant']['value']}) or the official code's EMA shape scaled to the run "
             f"(`inverse`, power 2/3, `inv_gamma` {warmup['inv_gamma']}, every {warmup['update_every']} "
             "step, copies at the first updates). Runs of one seed and method share every random draw "
             f"whatever their EMA. The judge scores {m['judge_n']} samples of the EMA model; intervals are "
             f"paired t 95% intervals over the {m['seeds']} seeds ({m['seeds'] - 1} degrees of freedom: "
             "wide), not corrected for the several comparisons below, so they carry no verdict word; lower "
             "Frechet distance is better.", "",
             "The EMA's age (the step minus the mean step of the weights it averages), against the official "
             "run's scaled to this one:", "",
             "| step | " + " | ".join(ages["target"]) + " |", "|---|" + "---|" * len(ages["target"]),
             *[f"| {name} | " + " | ".join(f"{ages[key][k]:.1f}" for k in ages["target"]) + " |"
               for key, name in (("target", "official, scaled"), ("warmup", "warm-up"),
                                 ("constant", "constant"))], "",
             "1-step judge Frechet distance, mean (min–max) over seeds:", "",
             "| method, EMA | " + " | ".join(f"step {s}" for s in judged) + " |",
             "|---|" + "---|" * len(judged)]
    for method in ("ic", "gc_mu0.5"):
        for ema in ("constant", "warmup"):
            cells = []
            for step in judged:
                values = [float(r["frechet_1step"]) for r in table
                          if r["method"] == method and r["ema"] == ema and int(r["step"]) == step]
                cells.append(f"{statistics.mean(values):.2f} ({min(values):.2f}–{max(values):.2f})")
            lines.append(f"| {method}, {ema} | " + " | ".join(cells) + " |")
    c = {int(k): v["frechet_1step"] for k, v in m["comparisons"].items()}
    lines += ["", "The protocol tests at a quarter, half and the end of the run (not at three quarters). "
              "Q1, GC's lead over IC (GC - IC, paired by seed) under each EMA, and its change with the "
              "warm-up:", "",
              "| step | constant EMA | warm-up | change |", "|---|---|---|---|"]
    lines += [f"| {s} | {interval(c[s]['gc_minus_ic']['constant'])} | "
              f"{interval(c[s]['gc_minus_ic']['warmup'])} | "
              f"{interval(c[s]['lead_change'])} |" for s in m["endpoints"]]
    lines += ["", "Q2, the warm-up against the constant EMA (warm-up - constant, paired by seed):", "",
              "| step | IC | GC mu 0.5 |", "|---|---|---|"]
    lines += [f"| {s} | {interval(c[s]['warmup_minus_constant']['ic'])} | "
              f"{interval(c[s]['warmup_minus_constant']['gc_mu0.5'])} |" for s in m["endpoints"]]
    end = m["comparisons"][str(steps)]
    lines += ["", "At the end, the warm-up minus the constant EMA on the secondary figures: confident share "
              f"(higher is better) IC {interval(end['confident_1step']['warmup_minus_constant']['ic'], 3)}, "
              f"GC {interval(end['confident_1step']['warmup_minus_constant']['gc_mu0.5'], 3)}; 2-step "
              f"Frechet IC {interval(end['frechet_2step']['warmup_minus_constant']['ic'])}, GC "
              f"{interval(end['frechet_2step']['warmup_minus_constant']['gc_mu0.5'])}.", "",
              f"- The scaled official warm-up helps the digits recipe at the end (the protocol's rule): "
              f"{verdict(m['decision']['adopt_warmup'])} ({m['decision']['reason']}).", "",
              "Final 1-step samples of seed 0, the same noise (constant EMA, then warm-up; IC, then GC):", ""]
    lines += [" ".join(image(prefix.with_name(f"{prefix.name}_grid_{method}{tag}.png"), page,
                             f"{method}{tag}")
                       for method in ("ic", "gc_mu0.5")) for tag in ("", "_warmup")]
    return lines + [""]


def tested(c: dict, digits: int = 2) -> str:
    """A Holm-corrected paired difference against IC: ``mean [t interval], p, sign-flip p: verdict``."""
    if c["p_t"] is None:
        return f"{c['mean']:+.{digits}f} ({c['verdict']})"
    text = (f"{c['mean']:+.{digits}f} [{c['low']:+.{digits}f}, {c['high']:+.{digits}f}], "
            f"p {c['p_t_holm']:.3g}, sign-flip p {c['p_sign_flip_holm']:.3g}: {c['verdict']}")
    return text if c["sign_flip_agrees"] else text + " (the sign-flip test disagrees)"


EXPLORATORY = {"half": "1-step held-out Frechet at half the run", "best": "best 1-step held-out Frechet",
               "final_2step": "final 2-step held-out Frechet", "final_confident": "final 1-step confident",
               "final_coverage": "final 1-step coverage",
               "final_reference_half": "final 1-step Frechet to the reference half",
               "inception_fid": "final 1-step Inception FID against the held-out half"}


PRIMARY_FAMILY = 4  # {digits, MNIST} x {E1, E2}, each method at its own best (docs/evidence-protocol.md)


def evidence_files(bench: Path) -> list[tuple[Path, dict]]:
    """bench/evidence.py's comparisons (its tuning grids left out), with the protocol's primary family (GC
    against IC, each at its own best, E1 and E2 on every data set) Holm-corrected as one family of
    :data:`PRIMARY_FAMILY` tests across the files."""
    found = [(path, m) for path, m in runs(bench / "evidence") if m["recipe"] != "grid"]
    primary = [s["primary"][endpoint]["gc_mu0.5"]["vs_ic"] for _, m in found
               for name, s in m["summaries"].items() if name == "best" and "gc_mu0.5" in s["seeds"]
               for endpoint in ("final", "steps_to_threshold")]
    holm(primary, [True] * len(primary), PRIMARY_FAMILY)
    return found


def endpoint_table(s: dict, methods: list[str]) -> list[str]:
    """E1 and E2 of each method, and against IC."""
    final, steps = s["primary"]["final"], s["primary"]["steps_to_threshold"]
    lines = ["| method | s / step | E1: final 1-step held-out Frechet | vs IC | E2: steps to T (runs that "
             "reach it) | vs IC | seconds to T |", "|---|---|---|---|---|---|---|"]
    for meth in methods:
        against = meth != "ic"
        lines.append(f"| {meth} | {s['seconds_per_step'][meth]:.3f} | {value_range(final[meth])} | "
                     f"{tested(final[meth]['vs_ic']) if against else ''} | {steps[meth]['mean']:.0f} "
                     f"({s['reached_threshold'][meth]} of {len(s['seeds'][meth])}) | "
                     f"{tested(steps[meth]['vs_ic'], 0) if against else ''} | "
                     f"{s['seconds_to_threshold'][meth]:.0f} |")
    return lines


def exploratory_table(s: dict, methods: list[str]) -> list[str]:
    others = [meth for meth in methods if meth != "ic"]
    lines = ["| figure (IC's mean, range) | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
    for key, figure in s["exploratory"].items():
        lines.append(f"| {EXPLORATORY[key]} ({value_range(figure['ic'], 3)}) | " + " | ".join(
            tested(figure[meth]["vs_ic"], 3) if meth in figure else "not scored" for meth in others) + " |")
    return lines


def second_halves(judged: list[dict], recipe: str, half_step: int) -> dict[tuple[str, int], list[float]]:
    """Each run's E1 at its checkpoints from half the run on, in step order, from the file's rows."""
    mine = sorted((r for r in judged if r["recipe"] == recipe and int(r["step"]) >= half_step),
                  key=lambda r: int(r["step"]))
    halves: dict[tuple[str, int], list[float]] = {}
    for r in mine:
        halves.setdefault((r["method"], int(r["seed"])), []).append(float(r["frechet_held_out_1step"]))
    return halves


def worse_than_half(w: dict, second_half: list[float]) -> str:
    """A run that ends worse than at half the run: its rise set against the spread of a difference of two of
    its checkpoints over the second half (sqrt(2) times :func:`bench.report.checkpoint_spread`), and where
    the half's checkpoint ranks among the second half's (1: the lowest), with their mean."""
    rise, between = w["final"] - w["half"], math.sqrt(2) * checkpoint_spread(second_half)
    rank, mean = 1 + sum(v < w["half"] for v in second_half), statistics.fmean(second_half)
    return (f"{w['method']} seed {w['seed']}: {w['half']:.2f} then {w['final']:.2f} (+{rise:.2f}, "
            f"{rise / between:.1f} times its checkpoints' spread, {between:.2f}; the half ranks {rank} of "
            f"the second half's {len(second_half)} checkpoints, whose mean is {mean:.2f})")


def evidence_notes(s: dict, dataset: str, recipe: str, judged: list[dict]) -> list[str]:
    """The memorisation check, the runs that end worse than at half the run (each with its second half's
    checkpoint-to-checkpoint spread, so that a rise within it reads as such), and GC's two claims."""
    flagged = "; ".join(f"{f['method']} seed {f['seed']} at step {f['step']} ({f['closer_share']:.2f})"
                        for f in s["memorising"])
    halves = second_halves(judged, recipe, s["half_step"])
    worse = "; ".join(worse_than_half(w, halves[w["method"], w["seed"]]) for w in s["ends_worse_than_half"])
    spread_note = (" The spread is that of a difference of two checkpoints of the run over its second half "
                   "(the root mean square of successive differences). A rise within about 2 such spreads, "
                   "from a half that ranks among the lowest of the second half to a final near its mean, "
                   "looks like a plateau that the half caught low; a larger rise, or a climb through the "
                   "second half, looks like a trend."
                   if worse else "")
    lines = [f"Memorisation check (more than 0.10 of the samples nearer a training image than 95% of "
             f"held-out images are): {flagged or 'no run flagged'}. Runs that end worse than at half the "
             f"run: {worse or 'none'}.{spread_note}", ""]
    if "gc_mu0.5" in s["seeds"]:
        final, steps = (s["primary"][k]["gc_mu0.5"]["vs_ic"] for k in ("final", "steps_to_threshold"))
        lines += [f"- GC (mu 0.5) ends closer to the held-out {dataset} than IC ({recipe} recipe, E1): "
                  f"{verdict(final['verdict'] == 'better')} ({tested(final)}).",
                  f"- GC (mu 0.5) reaches T in fewer steps than IC ({recipe} recipe, E2): "
                  f"{verdict(steps['verdict'] == 'better')} ({tested(steps, 0)}).", ""]
    return lines


def recipe_note(m: dict, recipe: str) -> str:
    """What a recipe other than the shared one is: each method's best grid point, or the diffusion model the
    tuned runs start from."""
    if recipe == "best":
        return (" Each method's best point of the tuning grid (learning rate, dropout, EMA): "
                + "; ".join(f"{meth} {grid_point(tag)}" for meth, tag in m["recipes"]["best"].items()) + ".")
    if recipe == "tuned":
        t = m["teacher"]
        return (f" Every run starts from the diffusion model {t['file']} (named by the first 16 hex digits "
                f"of its SHA-256), pretrained on the reference half for {t['steps']} steps, until its Heun "
                f"samples (18 steps) reached a held-out Frechet of {t['checks'][-1]['frechet_held_out']:.3f} "
                f"(target: {t['floors']:g} real floors, {t['target']:.3f}).")
    return ""


def evidence_section(prefix: Path, page: Path) -> list[str]:
    """bench/evidence.py: the protocol's endpoints for each data set, with the exploratory figures."""
    lines = ["## Evidence under the protocol", "",
             "Runs made under [the evidence protocol](evidence-protocol.md), committed before them: every "
             "method of one seed shares its initial weights, data order, noise and noise levels; generators "
             "train on the judge's reference half, and the judge measures against the held-out half. Each "
             "difference against IC is paired by seed: mean [95% t interval], the paired t-test's p-value "
             "and the exact sign-flip p-value, both Holm-corrected within their family. A family counts the "
             "tests the protocol plans for it, run or not (the shared recipe's E1 and E2: 12, with the other "
             "couplings and the tuned runs; its exploratory figures: 25; the primary comparison, each method "
             f"at its best recipe: E1 and E2 on digits and MNIST together, {PRIMARY_FAMILY}, and 7 "
             "exploratory figures a data set), each one not yet run as p = 1, so that no correction loosens "
             "as runs are added. Seconds (s / step, seconds to T) are each run's wall-clock time, with "
             "--jobs runs side by side; a command that adds methods to a comparison reads back the runs it "
             "already has, timed in an earlier session and perhaps on another machine, so seconds compare "
             "only between methods trained together, while steps compare everywhere (bench/step_cost.py "
             "times each coupling's step side by side).", ""]
    for path, m in evidence_files(prefix.parent):
        judged = rows(path)
        for recipe, s in m["summaries"].items():
            floor, methods = s["floor"], m["methods"]
            lines += [f"### {m['dataset']}, {recipe} recipe", "",
                      f"`{m['command']}` on {m['machine']}, {m['jobs']} run(s) side by side (training time "
                      f"summed: {m['training_seconds'] / 60:.0f} min): seeds "
                      f"{', '.join(map(str, m['seeds']))}, {m['steps']} steps, judged on {m['judge_n']} "
                      f"samples every {s['every']} steps (classifier accuracy {m['judge_accuracy']:.3f}). "
                      f"Real floor: Frechet {floor['frechet']:.3f} between the real halves, confident "
                      f"{floor['confident']:.3f}, coverage {floor['coverage']:.3f}; E2's threshold T = "
                      f"{s['threshold']:.3f}." + recipe_note(m, recipe),
                      "", *endpoint_table(s, methods), "",
                      "Exploratory, one Holm family of their own:", "", *exploratory_table(s, methods), "",
                      *evidence_notes(s, m["dataset"], recipe, judged),
                      image(path.with_name(f"{path.stem}_step.png"), page, f"judge along training, "
                            f"{m['dataset']}"), "",
                      method_grids(path, page, methods + (["diffusion"] if recipe == "tuned" else [])), "",
                      f"Final 1-step samples of seed {s['grid_seed']} (IC's lower median seed on E1, the "
                      f"protocol's rule), the same noise for each method, in the order {', '.join(methods)}"
                      + ("; last, the diffusion model's Heun samples." if recipe == "tuned" else "."),
                      ""]
    return lines + tuning_grid_section(prefix)


def grid_point(tag: str) -> str:
    """A grid point's tag (bench/evidence.py's ``_lr0.0003_do0_ema0.99``) as ``0.0003, 0, 0.99``; the shared
    recipe's runs are tagged ``shared``."""
    if tag == "shared":
        return "the shared recipe"
    return ", ".join(part[len(name):] for part, name in zip(tag.strip("_").split("_"), ("lr", "do", "ema")))


def tuning_grid_section(prefix: Path) -> list[str]:
    """Each ``--recipe grid`` file: every grid point's mean E1 over the tuning seeds for each method, with
    each method's best point (the one the primary comparison runs) in bold."""
    lines = []
    for _, m in runs(prefix):
        if m["recipe"] != "grid":
            continue
        points, methods, best = m["summaries"], m["methods"], m["best"]
        seeds = ", ".join(map(str, m["seeds"]))
        lines += [f"### {m['dataset']}, tuning grid", "",
                  f"`{m['command']}` on {m['machine']}: each grid point's E1 (final 1-step held-out "
                  f"Frechet), mean (range) over the tuning seeds {seeds}, which are never reported as "
                  "results. Each method's best point, in bold, is its recipe when compared at its own best "
                  "(GC mu 0.5 against IC: the primary comparison); "
                  f"the shared recipe is configs/{m['dataset']}_gc.json's point.", "",
                  "| learning rate, dropout, EMA | " + " | ".join(methods) + " |",
                  "|---|" + "---|" * len(methods)]
        for tag, s in points.items():
            cells = [value_range(s["primary"]["final"][meth]) for meth in methods]
            cells = [f"**{c}**" if best[meth] == tag else c for meth, c in zip(methods, cells)]
            lines.append(f"| {grid_point(tag)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


LIMITATIONS = ("Limitations. These are small U-Nets (0.46 M parameters) trained for minutes on 8x8 "
               "and 28x28 grayscale digits on a CPU, judged by a small classifier fitted on half of each "
               "data set; the paper's claims are about CIFAR-10 and ImageNet at 32 and 64 pixels with models "
               "a hundred times larger and hours of GPU training. The judge and Inception (run on digits "
               "scaled up to 299x299) can rank the same runs differently; where both were scored, the tables "
               "say so. A verdict here could change with more seeds, longer runs, larger models, another "
               "judge or another data set; the protocol names what was fixed before the runs.")
HEADLINE_ROWS = ["real floor: Frechet between the real halves (confident, coverage)",
                 "E2's threshold T (4 floors)", "seeds", "E1, final 1-step held-out Frechet: IC / GC",
                 "E1, GC - IC", "E2, steps to T (runs that reach it): IC / GC", "E2, GC - IC"]
RECIPES = {"best": "Each at its own best recipe (the primary comparison)",
           "shared": "The shared recipe, configs/digits_gc.json and mnist_gc.json (secondary: the recipe was "
                     "developed on GC)",
           "tuned": "Tuned from the protocol's diffusion model, as ECT tunes (secondary: the protocol's "
                    "section 7; every run starts from the same pretrained weights)"}


def headline_cells(summaries: dict, recipe: str) -> list[str]:
    """One data set's column of the headline table (``summaries``: its bench/evidence.py summaries by
    recipe)."""
    s = summaries.get(recipe)
    if s is None or "gc_mu0.5" not in s["seeds"]:
        return ["not run yet"] * len(HEADLINE_ROWS)
    final, steps = s["primary"]["final"], s["primary"]["steps_to_threshold"]
    reached, n, seconds = s["reached_threshold"], len(s["seeds"]["ic"]), s["seconds_to_threshold"]
    return [f"{s['floor']['frechet']:.3f} ({s['floor']['confident']:.2f}, {s['floor']['coverage']:.2f})",
            f"{s['threshold']:.3f}", str(n), f"{final['ic']['mean']:.3f} / {final['gc_mu0.5']['mean']:.3f}",
            tested(final["gc_mu0.5"]["vs_ic"]),
            f"{steps['ic']['mean']:.0f} ({reached['ic']} of {n}) / {steps['gc_mu0.5']['mean']:.0f} "
            f"({reached['gc_mu0.5']} of {n})",
            f"{tested(steps['gc_mu0.5']['vs_ic'], 0)}; seconds to T {seconds['ic']:.0f} / "
            f"{seconds['gc_mu0.5']:.0f}"]


def headline(bench: Path, page: Path) -> list[str]:
    """The answer at the top of the page: GC (mu 0.5) against IC under the protocol, a column per data set."""
    found = {}
    for _, m in evidence_files(bench):
        found.setdefault(m["dataset"], {}).update(m["summaries"])
    datasets = ["digits", "mnist"]
    lines = ["## Does GC help on real images?", "",
             "GC (mu 0.5) against IC under [the evidence protocol](evidence-protocol.md), committed before "
             "the runs: paired by seed with common random numbers, mean difference [95% t interval], the "
             "paired t-test's and the exact sign-flip test's p-values Holm-corrected within their family, "
             "and \"better\" only where the corrected t-test holds (details under \"Evidence under the "
             "protocol\")."]
    for recipe, title in RECIPES.items():
        columns = [headline_cells(found.get(d, {}), recipe) for d in datasets]
        lines += ["", f"{title}:", "", "| | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets),
                  *[f"| {name} | " + " | ".join(c[i] for c in columns) + " |"
                    for i, name in enumerate(HEADLINE_ROWS)]]
    return lines + ["", *scribbles_note(bench, set(found), page), LIMITATIONS, ""]


def scribbles_note(bench: Path, judged: set[str], page: Path) -> list[str]:
    """For each data set without runs under the protocol whose earlier runs exist: that its comparison so
    far is between scribbles (the protocol's section 7), with the confident share they reached."""
    lines = []
    for path in sorted(bench.glob("convergence_*.json")):
        m = meta(path)
        if m["dataset"] in judged:
            continue
        confident = m["summary"]["final_confident_1step"]
        lines += [f"{m['dataset']} has no recipe under the protocol yet (its section 7: legible samples, "
                  "confident >= 0.8 and held-out Frechet <= 3 real floors, within 45 minutes a run on one "
                  "core), so its comparison so far is between scribbles: the earlier runs (`"
                  + path.name + "`) ended with "
                  + ", ".join(f"{meth} {c['mean']:.2f}" for meth, c in confident.items())
                  + " of the 1-step samples confident." + recipe_search_note(bench, m["dataset"], page), ""]
    return lines


def recipe_search_note(bench: Path, dataset: str, page: Path) -> str:
    """bench/mnist_recipe.py's candidates for ``dataset``, each with its final figures and whether it
    qualifies (legible within the time limit), with their sample grids."""
    path = bench / "mnist_recipe.json"
    if not path.is_file() or (m := meta(path))["dataset"] != dataset:
        return ""
    found = "; ".join(
        f"{name} ({c['steps']} steps{', ' + json.dumps(c['changes']) if c['changes'] else ''}): "
        f"{c['floors']:.1f} real floors, confident {c['confident']:.2f}, {c['minutes']:.0f} min"
        f"{'' if c['qualifies'] else ', does not qualify'}" for name, c in m["candidates"].items())
    qualifying = [name for name, c in m["candidates"].items() if c["qualifies"]]
    return (f" The recipe search (`{m['command']}`, IC on tuning seed {m['seed']}, one thread, "
            f"`{path.name}`): {found}. "
            + (f"{', '.join(qualifying)} qualifies." if qualifying else "No candidate qualifies yet.")
            + " " + " ".join(image(bench / f"mnist_recipe_grid_{name}.png", page, name)
                             for name in m["candidates"]))


def earlier_runs_note(bench: Path) -> list[str]:
    """Where the runs made before the protocol went: their files stay, their verdicts are not repeated."""
    files = sorted(p.name for p in [*bench.glob("convergence_*.json"), *bench.glob("tuning_*.json")])
    if not files:
        return []
    return ["## Earlier comparisons", "",
            f"{', '.join(files)} in `docs/bench/` hold comparisons made before the evidence protocol: runs "
            "of one seed drew different noise once GC drew its row choice, the generators trained on every "
            "image the judge was fitted on, and the verdicts came from a percentile bootstrap over 5 seeds "
            "without correction for multiple comparisons. Those verdicts do not meet the protocol, so they "
            "are not repeated here; the runs that replace them are made under it.", ""]


def stability_section(prefix: Path, page: Path) -> list[str]:
    """bench/stability.py: the digits recipe's judge figures at the midpoint and the end, per variant."""
    evals, m = rows(prefix.with_name(prefix.name + "_evals")), meta(prefix)
    last = max(int(r["step"]) for r in evals)
    mid = min((int(r["step"]) for r in evals), key=lambda step: abs(step - last / 2))
    lines = ["## Stability of short runs", "", f"`{m['command']}` on {m['machine']} ({m['seconds']} s): the "
             "digits recipe run by train_gc.py's loop, instrumented step by step through its hooks; the "
             "diagnosis is in [stability.md](stability.md). EMA samples judged by bench/judge.py (mean over "
             "seeds "
             f"{', '.join(map(str, m['seeds']))}; lower Frechet distance is better).", "",
             f"| variant | 1-step confident, step {mid} | at {last} | 1-step Frechet, step {mid} | at {last} "
             "| ends better than its midpoint |", "|---|---|---|---|---|---|"]
    better = {}
    for variant in m["variants"]:
        at = {step: [r for r in evals if r["variant"] == variant and int(r["step"]) == step]
              for step in (mid, last)}
        value = {(step, k): statistics.mean(float(r[f"ema_1step_{k}"]) for r in at[step])
                 for step in (mid, last) for k in ("confident", "frechet")}
        ended_better = sum(float(e["ema_1step_frechet"]) <= float(b["ema_1step_frechet"])
                           for e, b in zip(at[last], at[mid]))
        better[variant] = ended_better == len(at[last])
        lines.append(f"| {variant} | {value[(mid, 'confident')]:.2f} | {value[(last, 'confident')]:.2f} | "
                     f"{value[(mid, 'frechet')]:.2f} | {value[(last, 'frechet')]:.2f} | "
                     f"{ended_better} of {len(at[last])} seeds |")
    lines += ["", image(prefix.with_name(prefix.name + "_judge.png"), page, "judge along training"), "",
              image(prefix.with_name(prefix.name + "_optimizer.png"), page, "optimizer diagnostics"), ""]
    if "paper_schedule" in better:  # the failure the short-budget options fix
        lines.append("- The paper's schedule squeezed into the run degrades late, some seed ending further "
                     f"from real digits than at its midpoint: {verdict(not better['paper_schedule'])}.")
    if "recipe" in better:
        lines.append("- The recipe (configs/digits_gc.json) ends at least as close to real digits as at its "
                     f"midpoint, for every seed: {verdict(better['recipe'])}.")
    return lines + [""]


def first_run_section(prefix: Path, page: Path) -> list[str]:
    """bench/first_run.py: the README's command over several seeds, judged."""
    runs, m = rows(prefix), meta(prefix)
    held = m["held_out"]
    lines = ["## The README's first command", "", f"`{m['command']}` on {m['machine']}: "
             f"`{m['readme_command']}` ({m['steps']} steps) once per seed, each EMA model judged by "
             f"bench/judge.py on {m['n']} samples (classifier accuracy {m['judge_accuracy']:.3f} on the "
             f"held-out half; held-out real digits score {held['confident']:.2f} / {held['coverage']:.2f} / "
             f"{held['frechet']:.2f}).", "",
             "| seed | minutes | 1-step confident | coverage | Frechet | 2-step confident | coverage | "
             "Frechet | midpoint 1-step Frechet |", "|---|---|---|---|---|---|---|---|---|"]
    cols = ["confident_1step", "coverage_1step", "frechet_1step", "confident_2step", "coverage_2step",
            "frechet_2step"]
    digits = {c: 2 if c.startswith("frechet") else 3 for c in cols}
    for r in runs:
        lines.append(f"| {r['seed']} | {float(r['seconds']) / 60:.1f} | "
                     + " | ".join(f"{float(r['final_' + c]):.{digits[c]}f}" for c in cols)
                     + f" | {float(r['mid_frechet_1step']):.2f} |")
    worst = {c: (min if c.startswith(("confident", "coverage")) else max)(
        float(r["final_" + c]) for r in runs) for c in cols}
    lines.append(f"| mean | {statistics.mean(float(r['seconds']) for r in runs) / 60:.1f} | "
                 + " | ".join(f"{statistics.mean(float(r['final_' + c]) for r in runs):.{digits[c]}f}"
                              for c in cols) + " | |")
    lines.append(f"| worst | {max(float(r['seconds']) for r in runs) / 60:.1f} | "
                 + " | ".join(f"{worst[c]:.{digits[c]}f}" for c in cols) + " | |")
    passes = {">=": lambda v, limit: v >= limit, "<=": lambda v, limit: v <= limit}
    bar = all(passes[op](float(r[f"final_{k}_1step"]), limit)
              for r in runs for k, (op, limit) in m["bar"].items())
    bar_text = ", ".join(f"{k} {op} {limit:g}" for k, (op, limit) in m["bar"].items())
    no_late_loss = all(float(r["final_frechet_1step"]) <= float(r["mid_frechet_1step"]) for r in runs)
    lines += ["", " ".join(image(prefix.with_name(f"{prefix.name}_grid_s{r['seed']}.png"), page,
                                 f"seed {r['seed']}")
                           for r in runs), "",
              "Final demo grids, one per seed: 1-step samples above 2-step samples from the same noise.", "",
              f"- Every seed ends in digits the judge reads, though less confidently than real digits (0.91) "
              f"(1-step: {bar_text}): {verdict(bar)} "
              f"(worst seed: {worst['confident_1step']:.3f} / "
              f"{worst['coverage_1step']:.3f} / {worst['frechet_1step']:.2f}).",
              "- No seed ends further from real digits than at its midpoint (1-step Frechet): "
              f"{verdict(no_late_loss)}.",
              "- Every seed trains in at most 5 minutes: "
              f"{verdict(max(float(r['seconds']) for r in runs) <= 300)} (longest "
              f"{max(float(r['seconds']) for r in runs) / 60:.1f} min, including start-up).", ""]
    return lines


def gpu_section(folder: Path, page: Path) -> list[str]:
    """bench/gpu_check.sh's outputs, where a GPU has run it."""
    lines = ["## GPU check", ""]
    step_cost, convergence = (folder / "step_cost.json").exists(), any(folder.glob("convergence_*.json"))
    loop = any(folder.glob("loop_overhead_*.json"))
    if not (step_cost or convergence or loop):
        return lines + ["Not run yet. On a GPU machine, from a clone of the repository (under 8 minutes):",
                        "", "```bash", "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'",
                        "PYTHON=.venv/bin/python bash bench/gpu_check.sh      # writes docs/bench/gpu/ "
                        "and its log gpu_check.txt",
                        ".venv/bin/python -m bench.results_page               # adds them here",
                        "```", ""]
    log = folder / "gpu_check.txt"
    notes = [line.lstrip("# ") for line in log.read_text().splitlines()[1:] if line.startswith("# ")] \
        if log.exists() else []
    if notes:  # how the check ran, where it did not run whole (its log's comment lines after the title)
        lines += [f"From `{log.name}`: " + "; ".join(notes) + ".", ""]
    if step_cost:
        lines += step_cost_section(folder / "step_cost", page, "### Cost per step in bf16")
    if loop:
        lines += loop_overhead_section(folder / "loop_overhead", page, "### Loop overhead")
    if convergence:
        lines += convergence_section(folder / "convergence", page, "### Short convergence run")
    return lines


def summary(sections: list[str]) -> list[str]:
    """Every verdict of the sections below in one table: each ``- claim: **verdict** (numbers)`` line,
    with the heading it stands under."""
    lines, path = ["## Which claims held", "", "| where | claim | verdict |", "|---|---|---|"], {}
    for line in sections:
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            path = {k: v for k, v in path.items() if k < level} | {level: line.lstrip("# ")}
        elif line.startswith("- ") and ": **" in line:
            claim, rest = line[2:].split(": **", 1)
            lines.append(f"| {' / '.join(path.values())} | {claim} | **{rest} |")
    return lines + [""]


def results_page(bench: Path, page: Path) -> str:
    """The results page for the outputs in ``bench``; a benchmark without outputs is marked as not run."""
    source = bench.resolve().relative_to(ROOT) if bench.resolve().is_relative_to(ROOT) else bench
    sections = []
    for name, section in [("first_run", first_run_section), ("stability", stability_section),
                          ("step_cost", step_cost_section), ("loop_overhead", loop_overhead_section),
                          ("paper_scale", paper_scale_section), ("flow_gap", flow_gap_section),
                          ("evidence", evidence_section),
                          ("ema_warmup", ema_warmup_section)]:
        done = any(bench.glob(f"{name}.json")) or any(bench.glob(f"{name}_*.json"))
        sections += section(bench / name, page) if done else [f"## {name}", "", "Not run yet.", ""]
    sections += gpu_section(bench / "gpu", page)
    sections += earlier_runs_note(bench)
    verdicts = headline(bench, page) if evidence_files(bench) else []
    return "\n".join(["# Results", "", "Made by `python -m bench.results_page` from the files in "
                      f"`{source}/`; each section names the command that produced its numbers and the "
                      "machine. Nothing here is typed in by hand.", ""]
                     + verdicts + summary(sections) + sections)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", type=Path, default=ROOT / "docs" / "bench", help="folder of benchmark outputs")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md", help="the page to write")
    args = p.parse_args()
    args.out.write_text(results_page(args.bench, args.out))


if __name__ == "__main__":
    main()
