"""Run the paper grid, or a slice of it, one run after another; safe to re-run after an interruption.

    python experiments/science_qa/launch.py                                   # the paper's 48 runs (block main)
    python experiments/science_qa/launch.py --block variants                  # the variants ablation (72 runs)
    python experiments/science_qa/launch.py --match chemistry/                # one domain
    python experiments/science_qa/launch.py --match pgpo-a10-seed0 --dry-run  # print the commands only
    python experiments/science_qa/launch.py --accelerate experiments/accelerate/fsdp2-8gpu.yaml \
        --set model.dtype=float32

Each run's command is `accelerate launch --config_file <accelerate> -m pgpo train --config ...` (pgpo.runlog.launch_flags:
--resume when the run's folder holds a complete checkpoint, --overwrite when it holds only what a run killed before
its first checkpoint wrote): a run with DONE.json in its output directory is skipped, an unfinished one resumes from
its last checkpoint, a new one starts. Output of each run goes to <output_dir>/launch.log. Failing runs are reported at the end (and stop
the sweep unless --keep-going).
"""

import argparse
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    from pgpo.config import ConfigError
    from pgpo.grid import load_grid
    from pgpo.runlog import DONE_NAME, launch_flags

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=os.path.join(HERE, "grid.yaml"))
    ap.add_argument("--match", help="only runs whose name (domain/method-seedN) contains this text")
    ap.add_argument("--block", default="main", help="the grid's block: main, an ablation's name, or all")
    ap.add_argument("--accelerate", default="experiments/accelerate/zero3-8gpu.yaml",
                    help="accelerate config file; 'none' runs plain `python -m pgpo` (CPU / one GPU)")
    ap.add_argument("--set", nargs="*", default=[], help="extra dotted.key=value overrides for every run")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--keep-going", action="store_true", help="continue after a failing run")
    args = ap.parse_args(argv)
    try:
        grid = load_grid(args.grid)
    except ConfigError as e:
        ap.exit(2, f"launch: {e}\n")
    blocks = list(dict.fromkeys(r.block for r in grid))
    if args.block not in ("all", *blocks):
        ap.exit(2, f"launch: --block {args.block!r}: {args.grid} has blocks {', '.join(blocks)} (or all)\n")
    runs = [r for r in grid if (not args.match or args.match in r.name) and args.block in ("all", r.block)]
    if not runs:
        ap.exit(2, f"launch: no run of block {args.block!r} matches --match {args.match!r}\n")
    prefix = [sys.executable, "-m", "pgpo"] if args.accelerate == "none" else \
        ["accelerate", "launch", "--config_file", args.accelerate, "-m", "pgpo"]
    failed, done, started = [], 0, 0
    for i, r in enumerate(runs, 1):
        out = dict(o.split("=", 1) for o in r.overrides)["training.output_dir"]
        for o in args.set:
            if o.startswith("training.output_dir="):
                ap.exit(2, "launch: --set cannot move output directories\n")
        flags = launch_flags(out)
        cmd = prefix + ["train", "--config", r.config, *r.overrides, *args.set, *flags]
        if os.path.exists(os.path.join(out, DONE_NAME)):
            print(f"[{i}/{len(runs)}] {r.name}: done, skipped")
            done += 1
            continue
        state = {"--resume": "resuming", "--overwrite": "restarting (killed before its first checkpoint)"}.get(
            (flags or [""])[0], "starting")
        print(f"[{i}/{len(runs)}] {r.name}: {state}\n  {shlex.join(cmd)}", flush=True)
        if args.dry_run:
            continue
        os.makedirs(out, exist_ok=True)
        t0 = time.time()
        with open(os.path.join(out, "launch.log"), "a") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
        started += 1
        print(f"  exit {rc} after {time.time() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(r.name)
            if not args.keep_going:
                break
    print(f"{done} already done, {started} launched, {len(failed)} failed" + (f": {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
