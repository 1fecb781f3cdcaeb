"""Launch a worker script as N processes with torch.distributed env variables (gloo on CPU)."""

import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(script: str, world: int, extra_args: list[str], timeout: float = 600, env_extra=None):
    """Run `script` as `world` ranks; return their outputs. Fails (never hangs) when a rank exits non-zero -
    the others are killed at once, since they would wait for it in a collective - or when `timeout` seconds
    pass. Output goes to files, not pipes, so a chatty rank can never block on a full pipe."""
    import tempfile
    import time

    port = free_port()
    procs, logs = [], []
    for rank in range(world):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                   WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                   OMP_NUM_THREADS="1", **(env_extra or {}))
        log = tempfile.TemporaryFile(mode="w+")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, script, *extra_args], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, text=True))

    def output(rank):
        logs[rank].seek(0)
        return logs[rank].read()

    deadline = time.monotonic() + timeout
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                r = failed[0]
                raise AssertionError(f"rank {r} failed with {codes[r]}:\n{output(r)[-6000:]}")
            if all(c == 0 for c in codes):
                return [output(r) for r in range(world)]
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(script, timeout, output="\n".join(
                    f"--- rank {r} ---\n{output(r)[-3000:]}" for r in range(world)))
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


def finish_process_group() -> None:
    """End a worker's process group without a teardown race: every rank reaches the barrier (so no rank is
    still inside a collective) before any rank destroys the group. Without it a rank that leaves early can
    abort with 'terminate called without an active exception' while gloo's threads are still running."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
