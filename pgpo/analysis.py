"""Science-QA run analysis: the runs of a folder grouped by domain and method, and the numbers of the paper's Table 1 /
Table 3 and the paired differences (pgpo.analysis_report writes them with the figures).

A run is a directory holding `run_config.yaml` and `log.jsonl` (as written by `python -m pgpo train`). Runs are
grouped by domain and method (pgpo.settings.PGPOSettings.label: "SDPO", "PGPO α=<alpha>", or a variant's name such as
"PGPO β=0.5 (scale-free, Ibar 10 steps)", with every other `pgpo:` setting that differs between runs of the same
name appended, e.g. "PGPO α=2 (m_max=1.5)"); seeds are averaged.
"Best within the budget" = for each run, the highest evaluated mean@k among evaluations at step <= step budget
and elapsed time <= time budget; then the mean (and sd) over seeds.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field

import yaml

from pgpo.runlog import LOG_NAME, of_kind, read_log

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


def runs_by_subject_and_method(runs) -> dict[tuple[str, str], list[Run]]:
    """The runs of each (domain, method): its seeds."""
    out: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        out.setdefault((r.domain, r.method), []).append(r)
    return out


def method_labels(runs) -> list[str]:
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
    groups = runs_by_subject_and_method(runs)
    domains = [d for d in DOMAIN_ORDER if any(k[0] == d for k in groups)]
    t3 = {}
    for method in method_labels(runs):
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
    groups = runs_by_subject_and_method(runs)
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
    for (subject, method), rs in runs_by_subject_and_method(runs).items():
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
