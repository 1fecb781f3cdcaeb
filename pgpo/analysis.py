"""Science-QA run analysis: figures and the paper's Table 1 / Table 3 from a directory of run logs.

    python paper_figures/science_qa.py --runs runs/science_qa [--out runs/science_qa/figures] \
        [--step-budget 200] [--time-budget-h 5]

A run is a directory holding `run_config.yaml` and `log.jsonl` (as written by `python -m pgpo train`). Runs are
grouped by domain and method (pgpo.settings.PGPOSettings.label: "SDPO", "PGPO α=<alpha>", or a variant's name such as
"PGPO β=0.5 (scale-free, Ibar 10 steps)", with every other `pgpo:` setting that differs between runs of the same
name appended, e.g. "PGPO α=2 (m_max=1.5)"); seeds are averaged.

Outputs (PNG + PDF, Markdown + JSON):
  accuracy_vs_step, accuracy_vs_time   mean@k per domain, mean over seeds with a min-max band
  information_traces                   I_k and m_k per domain and method (mean over seeds); with the variants
                                       also Ibar_k (pgpo.ema_steps) and the mean loss weight (sample / token)
  table1.md/json                       best mean@k within the budget: SDPO, PGPO (best alpha per domain, among
                                       the paper's batch rule), improvement row; the paper's reported numbers
  table3.md/json                       the ablation: SDPO, every alpha and every variant, per domain
"Best within the budget" = for each run, the highest evaluated mean@k among evaluations at step <= step budget
and elapsed time <= time budget; then the mean (and sd) over seeds.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from dataclasses import dataclass, field

import yaml

from pgpo.runlog import LOG_NAME, of_kind, read_log
from runtools.figures import save_figure, series_colors
from runtools.files import atomic_write_json, atomic_write_text

DOMAIN_ORDER = ["chemistry", "physics", "biology", "material", "arithmetic"]
DOMAIN_TITLE = {"chemistry": "Chemistry", "physics": "Physics", "biology": "Biology", "material": "Materials",
                "arithmetic": "Word problems"}
# The alpha grid of experiments/science_qa/grid.yaml (m_max 2), for the I_k distribution figure.
PAPER_ALPHAS = (2.5, 10.0, 40.0)
# Reported avg@16 (Qwen3-8B), for comparing shapes; not produced by this code.
PAPER_TABLE1 = {"SDPO": {"chemistry": 72.57, "physics": 77.05, "biology": 61.62, "material": 74.14},
                "PGPO (best alpha)": {"chemistry": 76.02, "physics": 77.56, "biology": 61.25, "material": 78.65}}


@dataclass
class Run:
    path: str
    domain: str
    method: str                 # PGPOSettings.label()
    order: tuple                # sort key: SDPO, the paper's rule by alpha, then the variants by name
    seed: int
    m_max: float = 2.0
    pgpo: dict = field(default_factory=dict)      # the run's `pgpo:` section as written
    train: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)

    def elapsed_at(self, step: int) -> float | None:
        """Wall-clock seconds when `step` finished (from the train line of that step)."""
        best = None
        for r in self.train:
            if r["step"] <= step and r.get("elapsed_s") is not None:
                best = r["elapsed_s"]
        return best

    def best_within(self, step_budget: float = math.inf, time_budget_s: float = math.inf) -> float | None:
        vals = [e["mean_at_k"] for e in self.evals
                if e["step"] <= step_budget and (self.elapsed_at(e["step"]) or 0.0) <= time_budget_s
                and e.get("mean_at_k") is not None]
        return max(vals) if vals else None


def method_of(pgpo_section: dict) -> tuple[str, tuple]:
    """(label, sort key) of a run's `pgpo:` section (missing keys take their defaults)."""
    from pgpo.settings import PGPOSettings
    from runtools.schema import build
    st = build(PGPOSettings, pgpo_section or {}, "pgpo")
    label = st.label()
    if st.is_sdpo:
        return label, (0, 0.0, "")
    if is_paper_rule(label):
        return label, (1, st.alpha, "")
    return label, (2, st.sensitivity, label)


def is_paper_rule(label: str) -> bool:
    """True for the paper's batch rule m(I_k) with an alpha ("PGPO α=10", also with its own m_max / shape / estimator),
    False for SDPO and the variants."""
    head, _, extra = label.partition(" (")
    return head.startswith("PGPO α=") and not any(v in extra for v in ("scale-free", "smoothed", "per "))


def find_runs(root: str, exclude: tuple[str, ...] = ()) -> list[Run]:
    """Every run under root (a folder with run_config.yaml and log.jsonl), skipping folders named in `exclude`."""
    runs = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in exclude)
        if LOG_NAME not in files or "run_config.yaml" not in files:
            continue
        with open(os.path.join(d, "run_config.yaml")) as f:
            cfg = yaml.safe_load(f)
        data = cfg["data"]
        subject = data["domain"] if data.get("task", "sciknoweval") == "sciknoweval" else data["task"]
        run = Run(d, subject, *method_of(cfg.get("pgpo")), int(cfg["training"]["seed"]),
                  m_max=float((cfg.get("pgpo") or {}).get("m_max", 2.0)), pgpo=dict(cfg.get("pgpo") or {}))
        recs = read_log(os.path.join(d, LOG_NAME))
        run.evals, run.train = of_kind(recs, "eval"), of_kind(recs, "train")
        runs.append(run)
    if not runs:
        raise FileNotFoundError(f"no runs (run_config.yaml + log.jsonl) under {root}")
    distinguish(runs)
    return sorted(runs, key=lambda r: (r.domain, r.order, r.seed))


def distinguish(runs: list[Run]) -> None:
    """Runs that share a method name but differ in another `pgpo:` setting (m_max, shape, estimator, ...) get the
    settings that differ appended to their name, so that a table or legend never pools them."""
    by_label: dict[str, list[Run]] = {}
    for r in runs:
        by_label.setdefault(r.method, []).append(r)
    for label, group in by_label.items():
        keys = sorted({k for r in group for k in r.pgpo})
        differ = [k for k in keys if len({repr(r.pgpo.get(k)) for r in group}) > 1 and k not in ("alpha", "beta")]
        if not differ:
            continue
        for r in group:
            extra = ", ".join(f"{k}={r.pgpo.get(k)}" for k in differ)
            r.method = f"{label[:-1]}; {extra})" if label.endswith(")") else f"{label} ({extra})"


def _groups(runs):
    out: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        out.setdefault((r.domain, r.method), []).append(r)
    return out


def _methods(runs) -> list[str]:
    """Method labels in table order."""
    return [m for _, m in sorted({(r.order, r.method) for r in runs})]


def _mean_sd(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, 0
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def tables(runs: list[Run], step_budget: float = math.inf, time_budget_h: float = math.inf) -> dict:
    """Table 1 and Table 3 as dictionaries (percent, mean over seeds)."""
    tb = time_budget_h * 3600.0
    groups = _groups(runs)
    domains = [d for d in DOMAIN_ORDER if any(k[0] == d for k in groups)]
    t3 = {}
    for method in _methods(runs):
        row = {}
        for d in domains:
            m, sd, n = _mean_sd([r.best_within(step_budget, tb) for r in groups.get((d, method), [])])
            row[d] = None if m is None else {"mean": 100 * m, "sd": 100 * sd, "seeds": n}
        t3[method] = row
    t1 = {"SDPO": t3.get("SDPO", {d: None for d in domains}), "PGPO (best alpha)": {}, "Improvement": {}}
    for d in domains:
        cands = [(v[d]["mean"], name, v[d]) for name, v in t3.items() if is_paper_rule(name) and v.get(d)]
        if cands:
            _, name, cell = max(cands, key=lambda c: c[0])
            t1["PGPO (best alpha)"][d] = {**cell, "alpha": name.partition(" (")[0].split("=")[1]}
        else:
            t1["PGPO (best alpha)"][d] = None
        s, p = t1["SDPO"].get(d), t1["PGPO (best alpha)"][d]
        t1["Improvement"][d] = None if (s is None or p is None) else {"mean": p["mean"] - s["mean"]}
    return {"domains": domains, "step_budget": None if math.isinf(step_budget) else step_budget,
            "time_budget_h": None if math.isinf(time_budget_h) else time_budget_h, "table1": t1, "table3": t3,
            "paper_table1": PAPER_TABLE1}


def _cell(c, sign=False):
    if c is None:
        return "n/a"
    s = f"{c['mean']:+.2f}" if sign else f"{c['mean']:.2f}"
    if c.get("seeds", 0) > 1:
        s += f" ± {c['sd']:.2f}"
    if c.get("alpha"):
        s += f" (α={c['alpha']})"
    return s


def render_tables(t: dict) -> tuple[str, str]:
    doms = t["domains"]
    budget = []
    if t["step_budget"] is not None:
        budget.append(f"step <= {t['step_budget']:g}")
    if t["time_budget_h"] is not None:
        budget.append(f"time <= {t['time_budget_h']:g} h")
    head = "| Method | " + " | ".join(DOMAIN_TITLE[d] for d in doms) + " |\n|---|" + "---|" * len(doms)
    lines1 = ["# Table 1: best mean@k within " + (" and ".join(budget) or "the whole run") + " (%, mean ± sd over "
              "seeds)", "", head]
    for name in ("SDPO", "PGPO (best alpha)", "Improvement"):
        lines1.append(f"| {name} | " + " | ".join(_cell(t["table1"][name].get(d), name == "Improvement")
                                                  for d in doms) + " |")
    lines1 += ["", "Reported in the PGPO paper (Qwen3-8B, avg@16), for comparing shapes:", "", head]
    for name, row in t["paper_table1"].items():
        lines1.append(f"| {name} (paper) | " + " | ".join(f"{row[d]:.2f}" if d in row else "n/a" for d in doms) + " |")
    lines3 = ["# Table 3: alpha ablation and variants, best mean@k within " + (" and ".join(budget) or "the whole run") +
              " (%, mean ± sd over seeds)", "", head]
    for name, row in t["table3"].items():
        lines3.append(f"| {name} | " + " | ".join(_cell(row.get(d)) for d in doms) + " |")
    return "\n".join(lines1) + "\n", "\n".join(lines3) + "\n"


def final_eval(run: Run) -> float | None:
    """mean@k at the run's last evaluation."""
    return run.evals[-1]["mean_at_k"] if run.evals else None


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float] | None:
    """(mean, lower, upper): Student's t interval for the mean of `values` (None with fewer than 2)."""
    from scipy import stats
    if len(values) < 2:
        return None
    m, sd = statistics.mean(values), statistics.stdev(values)
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return m, m - half, m + half


def paired_differences(runs: list[Run], step_budget: float = math.inf, time_budget_h: float = math.inf) -> dict:
    """Per subject and method, the per-seed difference method - SDPO (percentage points) of the best mean@k within
    the budget (Table 1's statistic) and of the final evaluation's mean@k, with their 95 % t intervals over seeds
    (seeds pair the runs: same data order and initial rollouts up to the first update)."""
    groups = _groups(runs)
    out: dict = {}
    tb = time_budget_h * 3600.0
    for (subject, method), rs in groups.items():
        if method == "SDPO":
            continue
        base = {r.seed: r for r in groups.get((subject, "SDPO"), [])}
        rows = []
        for r in sorted(rs, key=lambda r: r.seed):
            b = base.get(r.seed)
            if b is None:
                continue
            pb, bb = r.best_within(step_budget, tb), b.best_within(step_budget, tb)
            pf, bf = final_eval(r), final_eval(b)
            rows.append({"seed": r.seed,
                         "best": None if pb is None or bb is None else 100 * (pb - bb),
                         "final": None if pf is None or bf is None else 100 * (pf - bf)})
        cell = {"seeds": rows}
        for key in ("best", "final"):
            vals = [x[key] for x in rows if x[key] is not None]
            ci = t_interval(vals)
            cell[key] = None if ci is None else {"mean": ci[0], "ci95": [ci[1], ci[2]], "n": len(vals)}
        out.setdefault(subject, {})[method] = cell
    return out


def render_paired(pd: dict) -> str:
    lines = ["# PGPO - SDPO, paired by seed (mean@k, percentage points)", "",
             "Per seed: the method's value minus SDPO's with the same seed; mean with a 95 % t interval over seeds. "
             "`best`: best evaluation within the run (Table 1's statistic, optimistic: a maximum over evaluations); "
             "`final`: the last evaluation.", "",
             "| subject | method | best: per seed | best: mean [95 % CI] | final: per seed | final: mean [95 % CI] |",
             "|---|---|---|---|---|---|"]
    for subject, methods in pd.items():
        for method, c in methods.items():
            def per(key):
                return ", ".join("n/a" if x[key] is None else f"{x[key]:+.1f}" for x in c["seeds"])

            def ci(key):
                v = c[key]
                return "n/a" if v is None else f"{v['mean']:+.1f} [{v['ci95'][0]:+.1f}, {v['ci95'][1]:+.1f}]"
            lines.append(f"| {DOMAIN_TITLE.get(subject, subject)} | {method} | {per('best')} | {ci('best')} | "
                         f"{per('final')} | {ci('final')} |")
    return "\n".join(lines) + "\n"


def experiment_summary(root: str, exclude: tuple[str, ...] = ()) -> dict:
    """Per method: where m_k sat (fraction of steps at 1, in between, at the cap), how much was distilled
    (mean fraction of samples reprompted; fraction of steps with distilled tokens), I_k quantiles, the median
    s/step and the runs' wall-clock (training + evaluation, from the logs)."""
    runs = find_runs(root, exclude)
    out = {}
    for (subject, method), rs in _groups(runs).items():
        ms = [(t.get("multiplier"), r.m_max) for r in rs for t in r.train if t.get("multiplier") is not None]
        infos = sorted(t["info"] for r in rs for t in r.train if t.get("info") is not None)
        dist = [t["distilled_fraction"] for r in rs for t in r.train if t.get("distilled_fraction") is not None]
        dtok = [t.get("distilled_tokens") or 0 for r in rs for t in r.train]
        times = [t["step_time_s"] for r in rs for t in r.train if t.get("step_time_s") is not None]
        walls = [max((t.get("elapsed_s") or 0.0) for t in r.train) + sum(e.get("eval_time_s") or 0.0 for e in r.evals)
                 for r in rs if r.train]

        def q(p):
            return infos[min(len(infos) - 1, int(p * len(infos)))] if infos else None
        out.setdefault(subject, {})[method] = {
            "runs": len(rs), "steps": len(ms),
            "m_at_1": sum(m <= 1.0 + 1e-9 for m, _ in ms) / len(ms) if ms else None,
            "m_between": sum(1.0 + 1e-9 < m < c - 1e-9 for m, c in ms) / len(ms) if ms else None,
            "m_at_cap": sum(m >= c - 1e-9 for m, c in ms) / len(ms) if ms else None,
            "m_mean": statistics.mean(m for m, _ in ms) if ms else None,
            "distilled_sample_fraction": statistics.mean(dist) if dist else None,
            "steps_with_distillation": sum(x > 0 for x in dtok) / len(dtok) if dtok else None,
            "info_quantiles": {"10%": q(0.1), "50%": q(0.5), "90%": q(0.9)},
            "median_s_per_step": statistics.median(times) if times else None,
            "run_wall_s_mean": statistics.mean(walls) if walls else None}
    return out


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

    groups = _groups(runs)
    domains = t["domains"]
    alphas = _methods(runs)                       # method labels, table order
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
