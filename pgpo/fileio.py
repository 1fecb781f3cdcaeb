"""Writing results: text and JSON so that a crash never leaves a half-written file (write a temporary file
beside the target, then rename it over the target: atomic on POSIX), and figures as PNG + PDF. Torch-free;
used by `pgpo` and `sde`."""

from __future__ import annotations

import json
import os


def atomic_write_text(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str, obj, **dump_kwargs) -> str:
    return atomic_write_text(path, json.dumps(obj, **dump_kwargs))


def save_figure(fig, out_dir: str, name: str, written: list | None = None, dpi: int = 140) -> list:
    """Save a matplotlib `fig` as <out_dir>/<name>.png and .pdf (deterministic bytes for the same figure), close
    it, and return (or extend) the list of paths."""
    import matplotlib.pyplot as plt

    written = [] if written is None else written
    fig.tight_layout()
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        # no creation date in the PDF: redrawing unchanged results rewrites byte-identical files
        fig.savefig(path, dpi=dpi, metadata={"CreationDate": None} if ext == "pdf" else None)
        written.append(path)
    plt.close(fig)
    return written
