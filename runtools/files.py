"""Writing results: text and JSON so that a crash never leaves a half-written file (write a temporary file
beside the target, then rename it over the target: atomic on POSIX), and the check that an output folder can take a
run's output before any work (prepare_output_folder). Torch-free; used by `pgpo` and `sde`."""

from __future__ import annotations

import json
import os
import shutil


def atomic_write_text(path: str, text: str) -> str:
    """Write `text` to `path` so that a reader (or a crash) sees the old file or the new one, never a part: a
    uniquely named temporary file in the same folder (two writers never share it), flushed and fsynced, renamed
    over the target, and the folder fsynced so the rename itself survives a power loss."""
    import tempfile
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                     # mkstemp's 0600 would make results unreadable to others
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:                              # a platform without directory handles: the rename is still atomic
        return path
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return path


def atomic_write_json(path: str, obj, **dump_kwargs) -> str:
    return atomic_write_text(path, json.dumps(obj, **dump_kwargs))


class OutputFolderError(ValueError):
    """An output folder that cannot be used as asked (the message names it and the fix)."""


def _matches(name: str, holds: tuple[str, ...]) -> bool:
    return any(name.startswith(h[:-1]) if h.endswith("*") else name == h for h in holds)


def holds(path: str, names: tuple[str, ...]) -> bool:
    """True when folder `path` has an entry matching `names` (exact names, or prefixes ending in `*`)."""
    return os.path.isdir(path) and any(_matches(e, names) for e in os.listdir(path))


def prepare_output_folder(path: str, *, resume: bool = False, overwrite: bool = False,
                          holds: tuple[str, ...] | None = None, resume_flag: str | None = "--resume",
                          clear: bool = True, create: bool = True) -> str:
    """Check (before any work) that `path` can receive a run's output, and clear it when asked.

    - an existing file at `path`, or a folder that cannot be written: OutputFolderError;
    - a folder that already holds output (any entry; or, when `holds` names what a run writes - exact names, or
      prefixes ending in `*` - any of those): refused unless `resume` (its content is kept and continued) or
      `overwrite`; with `overwrite` and `clear`, that output (only the `holds` entries when given) is deleted now,
      with `clear=False` the caller replaces it later (atomic writes, or after its own checks);
    - `overwrite` never deletes the current folder, one of its parents or the home folder.
    Otherwise the folder is created (unless `create` is False: the caller creates it once its own checks have
    passed, so that a refused run leaves nothing behind). Returns the absolute path. OS errors become
    OutputFolderError.
    """
    path = os.path.abspath(path)
    if resume and overwrite:
        raise OutputFolderError(f"{resume_flag} continues the run in {path} and --overwrite deletes it: choose one")
    try:
        if os.path.exists(path) and not os.path.isdir(path):
            raise OutputFolderError(f"output {path} is a file, not a folder: choose another output folder")
        existing = sorted(os.listdir(path)) if os.path.isdir(path) else []
        if holds is not None:
            existing = [e for e in existing if _matches(e, holds)]
        if existing and not (resume or overwrite):
            shown = ", ".join(existing[:4]) + (f", ... ({len(existing)} entries)" if len(existing) > 4 else "")
            fixes = f"pass {resume_flag} to continue it or --overwrite to replace it" if resume_flag else \
                "pass --overwrite to replace it"
            raise OutputFolderError(f"output folder {path} already holds {shown}: {fixes} (or choose another folder)")
        protected = {os.path.abspath(os.path.expanduser("~")), os.path.abspath(os.sep)}
        cwd = os.getcwd()
        if overwrite and existing and (path in protected or cwd == path or cwd.startswith(path.rstrip(os.sep) + os.sep)):
            raise OutputFolderError(f"--overwrite would delete files in {path} (the current folder, one of its "
                                    f"parents, or home): choose a dedicated output folder")
        parent = path
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputFolderError(f"cannot write to {parent}: choose an output folder you can write")
        if existing and overwrite and clear:
            for e in existing:
                full = os.path.join(path, e)
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.remove(full)
        if create:
            os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputFolderError(f"output folder {path}: {e.strerror or e}") from None
    return path
