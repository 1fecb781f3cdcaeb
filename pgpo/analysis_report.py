"""Science-QA report: figures and the paper's Table 1 / Table 3 from a directory of run logs.

The numbers come from pgpo.analysis; this module draws and writes them.

    python paper_figures/science_qa.py --runs runs/science_qa [--out runs/science_qa/figures] \
        [--step-budget 200] [--time-budget-h 5]

Outputs (PNG + PDF, Markdown + JSON):
  accuracy_vs_step, accuracy_vs_time   mean@k per domain, mean over seeds with a min-max band
  information_traces                   I_k and m_k per domain and method (mean over seeds); with the variants
                                       also Ibar_k (pgpo.ema_steps) and the mean loss weight (sample / token)
  information_distribution             the SDPO runs' I_k per domain with m(I) for the paper's alphas and these
  table1.md/json                       best mean@k within the budget: SDPO, PGPO (best alpha per domain, among
                                       the paper's batch rule), improvement row; the paper's reported numbers
  table3.md/json                       the ablation: SDPO, every alpha and every variant, per domain
  paired.md                            PGPO minus SDPO per seed, with t intervals
"""

from __future__ import annotations

import math
import os
import statistics
import sys

from pgpo.analysis import (DOMAIN_TITLE, PAPER_ALPHAS, Run, find_runs, is_paper_rule, method_labels,
                           paired_differences, render_paired, render_tables, runs_by_subject_and_method, tables)
from runtools.figures import save_figure, series_colors
from runtools.files import atomic_write_json, atomic_write_text


def _series(runs, key):
    """Values over seeds of `key` on the common step grid (only steps present in every seed)."""
    per = []
    for r in runs:
        src = r.evals if key == "mean_at_k" else r.train
        per.append({rec["step"]: rec[key] for rec in src if rec.get(key) is not None})
    common = sorted(set.intersection(*(set(p) for p in per))) if per else []
    return common, [[p[c] for p in per] for c in common]


def make_all(runs_dir: str, out_dir: str, step_budget: float = math.inf, time_budget_h: float = math.inf,
             exclude: tuple[str, ...] = ()) -> list[str]:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    runs = find_runs(runs_dir, exclude)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    t = tables(runs, step_budget, time_budget_h)
    md1, md3 = render_tables(t)
    for name, md in (("table1", md1), ("table3", md3)):
        written.append(atomic_write_text(os.path.join(out_dir, f"{name}.md"), md))
    pd = paired_differences(runs, step_budget, time_budget_h)
    t["paired"] = pd
    written.append(atomic_write_text(os.path.join(out_dir, "paired.md"), render_paired(pd)))
    written.append(atomic_write_json(os.path.join(out_dir, "tables.json"), t, indent=1))

    groups = runs_by_subject_and_method(runs)
    domains = t["domains"]
    alphas = method_labels(runs)                       # method labels, table order
    from matplotlib.ticker import MaxNLocator

    palette = series_colors(max(len(alphas) - 1, 1))
    others = [a for a in alphas if a != "SDPO"]
    color = {a: ("#d62728" if a == "SDPO" else palette[others.index(a)]) for a in alphas}

    def save(fig, name):
        save_figure(fig, out_dir, name, written, dpi=130)

    for x, name, xlabel in (("step", "accuracy_vs_step", "optimizer step"),
                            ("time", "accuracy_vs_time", "wall-clock hours")):
        fig, axes = plt.subplots(1, len(domains), figsize=(4.6 * len(domains), 3.8), squeeze=False)
        for ax, d in zip(axes[0], domains):
            for a in alphas:
                rs = groups.get((d, a), [])
                if not rs or not any(r.evals for r in rs):
                    continue
                if x == "step":
                    xs, vals = _series(rs, "mean_at_k")
                    if not xs:
                        continue
                    ys = [100 * statistics.mean(v) for v in vals]
                    ax.plot(xs, ys, color=color[a], label=f"{a} ({len(rs)} seeds)")
                    ax.fill_between(xs, [100 * min(v) for v in vals], [100 * max(v) for v in vals],
                                    color=color[a], alpha=0.15)
                else:
                    for i, r in enumerate(rs):
                        hx = [(r.elapsed_at(e["step"]) or 0.0) / 3600 for e in r.evals]
                        ax.plot(hx, [100 * e["mean_at_k"] for e in r.evals], color=color[a], alpha=0.8,
                                label=a if i == 0 else None)
            ax.set_title(DOMAIN_TITLE[d])
            ax.set_xlabel(xlabel)
            if x == "step":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("mean@k (%)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        save(fig, name)

    rows = [("info", r"$I_k$ (nats/token)"), ("multiplier", r"$m_k$")]
    rows += [(k, lab) for k, lab in (("info_ema", r"$\bar I_k$ (moving average)"),
                                     ("weight_mean", "mean loss weight (sample / token)"))
             if any(rec.get(k) is not None for r in runs for rec in r.train)]
    fig, axes = plt.subplots(len(rows), len(domains), figsize=(4.6 * len(domains), 3.3 * len(rows)), squeeze=False)
    for j, d in enumerate(domains):
        for a in alphas:
            rs = groups.get((d, a), [])
            for i, (key, _) in enumerate(rows):
                xs, vals = _series(rs, key)
                if xs:
                    axes[i][j].plot(xs, [statistics.mean(v) for v in vals], color=color[a], label=a)
        axes[0][j].set_title(DOMAIN_TITLE[d])
        for i, (_, lab) in enumerate(rows):
            axes[i][j].set_ylabel(lab)
            axes[i][j].grid(True, alpha=0.3)
            axes[i][j].legend(fontsize=7)
        axes[-1][j].set_xlabel("optimizer step")
        for i in range(len(rows)):
            axes[i][j].xaxis.set_major_locator(MaxNLocator(integer=True))
    save(fig, "information_traces")
    information_distribution(runs, domains, save)
    return written


def information_distribution(runs: list[Run], subjects: list[str], save) -> None:
    """Per subject: the histogram of the SDPO runs' I_k (every step with distilled tokens), and m(I) for the paper's
    alpha grid (PAPER_ALPHAS) and for the alphas of this set of runs, with the fraction of those steps each alpha
    would put at the cap."""
    import matplotlib.pyplot as plt

    from pgpo.multiplier import Multiplier

    sdpo = {d: sorted(t["info"] for r in runs if r.domain == d and r.method == "SDPO" for t in r.train
                      if t.get("info")) for d in subjects}
    subjects = [d for d in subjects if sdpo[d]]
    if not subjects:
        return
    ran = sorted({float(r.method.partition(" (")[0].split("=")[1]) for r in runs if is_paper_rule(r.method)})
    fig, axes = plt.subplots(1, len(subjects), figsize=(5.2 * len(subjects), 3.9), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, d in zip(axes[0], subjects):
        infos = sdpo[d]
        m_max = 2.0
        ax.hist(infos, bins=30, color="0.75", label=f"SDPO I_k ({len(infos)} steps)")
        ax.set_xlabel(r"$I_k$ (nats per distilled token)")
        ax.set_ylabel("steps")
        ax.set_title(DOMAIN_TITLE.get(d, d))
        twin = ax.twinx()
        grid = [(a, "paper grid", "tab:blue", styles[i % 4]) for i, a in enumerate(PAPER_ALPHAS)]
        grid += [(a, "this experiment", "tab:red", styles[i % 4]) for i, a in enumerate(ran)]
        xs = [max(infos) * 1.05 * i / 200 for i in range(201)]
        for a, kind, col, ls in grid:
            m = Multiplier(a, m_max)
            at_cap = sum(float(m(x)) >= m_max - 1e-12 for x in infos) / len(infos)
            twin.plot(xs, [float(m(x)) for x in xs], color=col, ls=ls,
                      label=f"m(I), $\\alpha$ = {a:g} ({kind}): {at_cap:.0%} of steps at the cap")
        twin.set_ylabel(r"$m(I)$, $m_{max}$ = 2")
        twin.set_ylim(0.95, m_max + 0.05)
        lines = ax.get_legend_handles_labels()
        tl = twin.get_legend_handles_labels()
        twin.legend(lines[0] + tl[0], lines[1] + tl[1], fontsize=7, loc="lower right")
    save(fig, "information_distribution")


def main(argv=None):
    from runtools.args import OneLineParser
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/science_qa", help="folder of runs (each: run_config.yaml + log.jsonl)")
    ap.add_argument("--out", help="figures and tables (default: <runs>/figures, beside the runs it describes)")
    ap.add_argument("--step-budget", type=float, default=math.inf)
    ap.add_argument("--time-budget-h", type=float, default=math.inf)
    args = ap.parse_args(argv)
    if not os.path.isdir(args.runs):
        ap.error(f"--runs {args.runs}: no such folder")
    args.out = args.out or os.path.join(args.runs, "figures")
    try:
        files = make_all(args.runs, args.out, args.step_budget, args.time_budget_h)
    except FileNotFoundError as e:
        ap.error(str(e))
    print(f"wrote {len(files)} files to {args.out}")
    print(open(os.path.join(args.out, "table1.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
