"""Where the test suite's CPU time goes: every Python process it starts, with its own CPU seconds.

Runs `python -m pytest ARGS` (default: the README's `-q -n auto`) with a `sitecustomize` hook on PYTHONPATH that
every Python process of the run - pytest, its xdist workers, the CLIs and launchers the tests start and the ranks
those start - loads at start-up and that records, at exit, the process's own user + system CPU seconds, its wall
seconds and its command line. Prints the run's wall time and CPU seconds (pytest and all it started, from
getrusage), the CPU by pytest temporary folder (a test's `tmp_path` or a fixture's folder, named after it: the
test or fixture that launched the process; a process whose command names none goes with its nearest ancestor's),
and the costliest processes. What the hooks record falls short of the getrusage total by what no hook sees: each
process's shutdown after its exit handlers, processes that are not Python, and processes that end without running
exit handlers (killed by a signal, or ended by os._exit as forked workers are).

    python benchmarks/suite_cpu.py [--top 25] [--json out.json] [-- PYTEST ARGS]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_VAR = "PGPO_SUITE_CPU_LOG"
HOOK = f"""import atexit, json, os, sys, time
_log, _t0 = os.environ.get({LOG_VAR!r}), time.time()
def _record():
    t = os.times()
    with open(_log, "a") as f:
        f.write(json.dumps({{"cpu_s": t.user + t.system, "wall_s": time.time() - _t0, "pid": os.getpid(),
                            "ppid": os.getppid(), "xdist_worker": os.environ.get("PYTEST_XDIST_WORKER"),
                            "argv": [sys.executable, *sys.argv]}}) + "\\n")
if _log:
    atexit.register(_record)
"""
NO_FOLDER = "(none named)"
TMP_FOLDER = re.compile(r"/pytest-\d+/(?:popen-gw\d+/)?([^/\s]+)")


def folder(argv: list[str]) -> str:
    """The pytest temporary folder a command line names (the test's or fixture's), else NO_FOLDER."""
    m = TMP_FOLDER.search(" ".join(argv))
    return m.group(1) if m else NO_FOLDER


def _holds_the_hook(entry: str) -> bool:
    """A PYTHONPATH entry that is this script's hook folder (this script run by a suite that it measures)."""
    try:
        with open(os.path.join(entry, "sitecustomize.py")) as f:
            return f.read() == HOOK
    except OSError:
        return False


def is_pytest(rec: dict, main_pid: int) -> bool:
    """pytest itself or one of its xdist workers (its children that are workers; the processes tests start are
    the workers' children, or pytest's own without xdist)."""
    return rec["pid"] == main_pid or (rec["ppid"] == main_pid and rec["xdist_worker"] is not None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=25, help="list this many of the costliest processes")
    ap.add_argument("--json", help="also write every process's record and the totals here")
    ap.add_argument("pytest_args", nargs="*", help="after --: pytest's arguments (default: -q -n auto)")
    args = ap.parse_args(argv)
    # a fresh pytest session: none of the variables of a pytest (or of this script) that may have started this one
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT_TEST", LOG_VAR))}
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and not _holds_the_hook(p)]
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('sitecustomize'))"],
                           capture_output=True, text=True, env=dict(env, PYTHONPATH=os.pathsep.join(path)))
    if probe.stdout.strip() != "None":
        sys.exit(f"suite_cpu: this Python already has a sitecustomize module ({probe.stdout.strip()}), which the hook "
                 "would hide")
    with tempfile.TemporaryDirectory() as hook_dir:
        with open(os.path.join(hook_dir, "sitecustomize.py"), "w") as f:
            f.write(HOOK)
        log = os.path.join(hook_dir, "processes.jsonl")
        env.update({LOG_VAR: log}, PYTHONPATH=os.pathsep.join([hook_dir, *path]))
        before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
        run = subprocess.Popen([sys.executable, "-m", "pytest", *(args.pytest_args or ["-q", "-n", "auto"])],
                               cwd=ROOT, env=env)
        rc = run.wait()
        wall, after = time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        recs = [json.loads(line) for line in open(log)] if os.path.exists(log) else []
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    recorded = sum(r["cpu_s"] for r in recs)
    in_pytest = sum(r["cpu_s"] for r in recs if is_pytest(r, run.pid))
    by_pid, by_folder = {r["pid"]: r for r in recs}, collections.Counter()
    for r in recs:
        if is_pytest(r, run.pid):
            continue
        up = r                          # a process whose command names no folder: the nearest ancestor's that does
        while folder(up["argv"]) == NO_FOLDER and up["ppid"] in by_pid and not is_pytest(by_pid[up["ppid"]], run.pid):
            up = by_pid[up["ppid"]]
        by_folder[folder(up["argv"])] += r["cpu_s"]
    print(f"\npytest exit {rc}; wall {wall:.1f} s; CPU {total:.1f} s (pytest and all it started); {len(recs)} Python "
          f"processes recorded {recorded:.1f} CPU-s: pytest and its workers {in_pytest:.1f}, the processes tests "
          f"started {recorded - in_pytest:.1f}")
    print("\nCPU-s of the processes tests started, by pytest temporary folder (test or fixture):")
    for name, cpu in by_folder.most_common():
        print(f"{cpu:8.1f}  {name}")
    print(f"\nthe {args.top} costliest processes (CPU-s, wall s, command):")
    for r in sorted(recs, key=lambda r: -r["cpu_s"])[:args.top]:
        cmd = " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in r["argv"][1:])
        print(f"{r['cpu_s']:8.1f} {r['wall_s']:8.1f}  {cmd[:150]}")
    if args.json:
        from runtools.files import atomic_write_json
        atomic_write_json(args.json, {"pytest_args": args.pytest_args, "exit": rc, "wall_s": wall, "cpu_s": total,
                                      "pytest_cpu_s": in_pytest, "by_folder": dict(by_folder), "processes": recs},
                          indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
