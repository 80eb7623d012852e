"""Write docs/results.md from the benchmark outputs in docs/bench/: every number comes from those files.

    python bench/results_page.py
"""

import csv
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "docs" / "bench"


def rows(name: str) -> list[dict]:
    with open(BENCH / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def meta(name: str) -> dict:
    return json.loads((BENCH / f"{name}.json").read_text())


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4g} ({min(values):.3g}–{max(values):.3g})"


def verdict(held: bool) -> str:
    return "**held**" if held else "**did not hold**"


def step_cost_section() -> list[str]:
    r, m = {x["variant"]: x for x in rows("step_cost")}, meta("step_cost")
    ratio = {k: float(v["ratio_to_ic"]) for k, v in r.items()}
    lines = ["## Cost per step", "", f"`{m['command']}` on {m['machine']}; model `{m['config']}` "
             f"({m['parameters']:,} parameters), batch {m['batch']}, medians over alternated repeats.", "",
             "| variant | ms / step | ratio to IC | peak MiB |", "|---|---|---|---|"]
    lines += [f"| {k} | {float(v['median_s']) * 1000:.1f} | {ratio[k]:.3f} | {v['peak_mib']} |" for k, v in r.items()]
    lines += ["", f"- GC at mu = 0.5 costs {ratio['gc_mu0.5']:.2f}x IC (target at most 1.15x): "
              f"{verdict(ratio['gc_mu0.5'] <= 1.15)}. The official code's whole-batch generator costs "
              f"{ratio['gc_full_batch_mu0.5']:.2f}x; running it on the selected rows saves "
              f"{ratio['gc_full_batch_mu0.5'] - ratio['gc_mu0.5']:.2f} of an IC step.",
              f"- Batch-OT costs {ratio['batch_ot']:.2f}x IC (target at most 1.05x at batch 512): "
              f"{verdict(ratio['batch_ot'] <= 1.05)}.", ""]
    return lines


def final_rows(all_rows: list[dict], key: str) -> list[dict]:
    last = max(int(r[key]) for r in all_rows)
    return [r for r in all_rows if int(r[key]) == last]


def flow_gap_section() -> list[str]:
    all_rows, m = rows("flow_gap"), meta("flow_gap")
    lines = ["## Flow gap on exact ground truth", "", f"`{m['command']}` on {m['machine']} ({m['seconds']} s): "
             f"{m['seeds']} seeds, {m['steps']} steps. Mean (min–max over seeds) at the last step, EMA model; "
             "lower is better for the flow gap and the sample distance. The flow gap is measured against f*, the "
             "flow map of the data's probability-flow ODE (the independent coupling's); batch-OT and GC train on "
             "other pairs, whose fixed point is f* only when the generator is exact, so this measures how far each "
             "coupling pulls the model from the CD target, not sample quality.", ""]
    for dim in dict.fromkeys(r["dim"] for r in all_rows):
        mine = [r for r in all_rows if r["dim"] == dim]
        final = final_rows(mine, "step")
        methods = list(dict.fromkeys(r["method"] for r in mine))
        mean = {(meth, k): statistics.mean(float(r[k]) for r in final if r["method"] == meth)
                for meth in methods for k in ("flow_gap", "sample_swd", "transport")}
        lines += [f"### {dim}-D mixture", "", "| method | flow gap | 1-step sliced W2 | transport |", "|---|---|---|---|"]
        for meth in methods:
            lines.append(f"| {meth} | " + " | ".join(spread([float(r[k]) for r in final if r["method"] == meth])
                                                     for k in ("flow_gap", "sample_swd", "transport")) + " |")
        gc, ot, ic, cd = (mean[(x, "flow_gap")] for x in ("gc_mu0.5", "batch_ot", "ic", "cd_exact"))
        mu1 = [r for r in mine if r["method"] == "gc_mu1.0"]
        late = statistics.mean(  # per seed: final flow gap over the best it reached
            [float(r["flow_gap"]) for r in final if r["method"] == "gc_mu1.0" and r["seed"] == seed][0]
            / min(float(r["flow_gap"]) for r in mu1 if r["seed"] == seed) for seed in dict.fromkeys(r["seed"] for r in mu1))
        lines += ["", f"![flow gap {dim}-D](bench/flow_gap_{dim}d.png)", "",
                  f"- GC (mu 0.5) < batch-OT < IC in flow gap: {verdict(gc < ot < ic)} "
                  f"(GC/IC = {gc / ic:.2f}, OT/IC = {ot / ic:.2f}).",
                  f"- GC lowers the transport cost below IC: {verdict(mean[('gc_mu0.5', 'transport')] < mean[('ic', 'transport')])} "
                  f"({mean[('gc_mu0.5', 'transport')]:.4g} vs {mean[('ic', 'transport')]:.4g}).",
                  f"- CD with the exact teacher has the lowest flow gap: {verdict(cd <= min(mean[(x, 'flow_gap')] for x in methods))}.",
                  f"- mu = 1 ends more than 10% above the best flow gap it reached (late instability): "
                  f"{verdict(late > 1.1)} (final / best, mean over seeds: {late:.2f}).", ""]
    return lines


def convergence_section() -> list[str]:
    m = meta("convergence")
    lines = ["## Convergence on real images", "", f"`{m['command']}` on {m['machine']} ({m['seconds']} s): "
             f"{m['seeds']} seeds, {m['steps']} steps, FID/KID on {m['evaluate_n']} samples every "
             f"{m['evaluate_every']} steps (real Inception). Few samples bias FID upwards; compare methods, "
             "not these numbers with the paper's.", ""]
    for dataset, s in m["summary"].items():
        lines += [f"### {dataset}", "", "| method | final FID 1-step | final FID 2-step |", "|---|---|---|"]
        for meth, f in s["final"].items():
            lines.append(f"| {meth} | {f['fid_1step']['mean']:.2f} ({f['fid_1step']['min']:.2f}–{f['fid_1step']['max']:.2f}) "
                         f"| {f['fid_2step']['mean']:.2f} ({f['fid_2step']['min']:.2f}–{f['fid_2step']['max']:.2f}) |")
        reached = s["gc_steps_to_ic_final_fid_1step"]
        final = {k: v["fid_1step"]["mean"] for k, v in s["final"].items()}
        curve = [r for r in rows("convergence") if r["dataset"] == dataset]
        best = {meth: min(statistics.mean(float(r["fid_1step"]) for r in curve if r["method"] == meth and r["step"] == step)
                          for step in {r["step"] for r in curve}) for meth in s["final"]}
        lines += ["", f"![FID {dataset}](bench/convergence_{dataset}.png)", "",
                  f"- GC reaches IC's final 1-step FID at step {reached} of {s['last_step']}" if reached else
                  f"- GC does not reach IC's final 1-step FID within {s['last_step']} steps",
                  f"- GC ends below IC and batch-OT (1-step): {verdict(final['gc'] < min(final['ic'], final['batch_ot']))}.",
                  "- Best mean 1-step FID along the run: " + ", ".join(f"{k} {v:.2f}" for k, v in best.items())
                  + "; final over best: " + ", ".join(f"{k} {final[k] / v:.2f}" for k, v in best.items())
                  + " (a late rise makes a method's final FID an easy target for the step count above).", ""]
    return lines


def main() -> None:
    sections = [("step_cost", step_cost_section), ("flow_gap", flow_gap_section), ("convergence", convergence_section)]
    lines = ["# Results", "", "Made by `python bench/results_page.py` from the files in `docs/bench/`; each section "
             "names the command that produced its numbers and the machine. Nothing here is typed in by hand.", ""]
    for name, section in sections:
        lines += section() if (BENCH / f"{name}.json").exists() else [f"## {name}", "", "Not run yet.", ""]
    (ROOT / "docs" / "results.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
