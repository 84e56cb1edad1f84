"""`python -m adapters`: check, wire up, make and merge LoRA adapters for TGI or vLLM."""

from __future__ import annotations

import argparse
import json
import sys
from enum import IntEnum
from pathlib import Path

from adapters.basemodel import SMOLLM2_ID, default_cache_dir
from adapters.errors import AdapterInvalid, AdapterNotFound, BaseModelNotFound, InvalidLoraSpec
from adapters.lora_arg import adapters_from_specs, format_lora_adapters
from adapters.validate import AdapterReport, check_adapter


class ExitCode(IntEnum):
    OK = 0
    ADAPTER_INVALID = 1
    USAGE = 2  # argparse uses 2 as well
    NEEDS_MERGE = 3  # a valid adapter whose base architecture the engine cannot serve LoRA for
    ADAPTER_NOT_FOUND = 4
    BASE_MODEL_NOT_FOUND = 5


_EXIT_CODE_BY_ERROR = (
    (AdapterInvalid, ExitCode.ADAPTER_INVALID),
    (AdapterNotFound, ExitCode.ADAPTER_NOT_FOUND),
    (BaseModelNotFound, ExitCode.BASE_MODEL_NOT_FOUND),
    (InvalidLoraSpec, ExitCode.USAGE),
    (FileExistsError, ExitCode.USAGE),  # an output folder that --force would replace
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except tuple(error_type for error_type, _ in _EXIT_CODE_BY_ERROR) as exc:
        message = _error_message(exc)
        if getattr(args, "json", False):
            print(json.dumps(_error_json(exc, message), indent=2))
        print(f"error: {message}", file=sys.stderr)
        return next(code for error_type, code in _EXIT_CODE_BY_ERROR if isinstance(exc, error_type))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adapters", description=__doc__)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"where converted base models live (default: $THERAPIST_CACHE_DIR or {default_cache_dir()})",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a LoRA adapter folder as the inference server needs it")
    check.add_argument("path", type=Path, help="adapter folder, or a training output folder with checkpoint-*")
    check.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    check.add_argument("--engine", choices=["tgi", "vllm"], default="tgi", help="the server it is for [default tgi]")
    check.set_defaults(run=_run_check)

    lora_arg = commands.add_parser("lora-arg", help="print the value of TGI's --lora-adapters / LORA_ADAPTERS")
    lora_arg.add_argument("specs", nargs="+", metavar="NAME=PATH")
    lora_arg.set_defaults(run=_run_lora_arg)

    make_dev = commands.add_parser("make-dev", help="write the small deterministic dev adapter for the local model")
    make_dev.add_argument("path", type=Path)
    make_dev.add_argument("--base-model", default=SMOLLM2_ID, help="local HF folder or %(default)s")
    make_dev.add_argument("--seed", type=int, default=0)
    make_dev.add_argument("--force", action="store_true", help="replace an existing folder")
    make_dev.set_defaults(run=_run_make_dev)

    merge = commands.add_parser("merge", help="merge an adapter into its base model (for Qwen3 and others)")
    merge.add_argument("adapter", type=Path)
    merge.add_argument("out", type=Path)
    merge.add_argument("--base-model", help="local HF folder of the base model (default: the adapter's base)")
    merge.add_argument("--force", action="store_true", help="replace an existing output folder")
    merge.set_defaults(run=_run_merge)
    return parser


def _run_check(args: argparse.Namespace) -> int:
    report = check_adapter(args.path, args.cache_dir)
    if args.json:
        print(json.dumps({"ok": True, **report.to_dict()}, indent=2))
    else:
        print(_describe(report, args.path, args.engine))
    return ExitCode.NEEDS_MERGE if report.needs_merge_on(args.engine) else ExitCode.OK


def _run_lora_arg(args: argparse.Namespace) -> int:
    print(format_lora_adapters(adapters_from_specs(args.specs)))
    return ExitCode.OK


def _run_make_dev(args: argparse.Namespace) -> int:
    from adapters.devadapter import make_dev_adapter

    out = make_dev_adapter(
        args.path, base_model=args.base_model, cache_dir=args.cache_dir, seed=args.seed, replace=args.force
    )
    print(f"Wrote the dev adapter for {args.base_model} to {out}")
    return ExitCode.OK


def _run_merge(args: argparse.Namespace) -> int:
    from adapters.merge import merge_adapter

    out = merge_adapter(
        args.adapter, args.out, base_model=args.base_model, cache_dir=args.cache_dir, replace=args.force
    )
    print(f"Merged {args.adapter} into its base model at {out} — serve it with --model-id {out} and no adapter_id")
    return ExitCode.OK


ENGINE_NAMES = {"tgi": "TGI", "vllm": "vLLM"}


def _describe(report: AdapterReport, requested: Path, engine: str = "tgi") -> str:
    targets = report.target_modules if isinstance(report.target_modules, str) else ", ".join(report.target_modules)
    name = ENGINE_NAMES[engine]
    serves = report.tgi_serves_lora if engine == "tgi" else report.vllm_serves_lora
    support = "unknown architecture" if serves is None else "supported" if serves else "NOT supported"
    lines = [f"OK  {report.path}"]
    if report.picked_checkpoint:
        lines.append(
            f"  using {report.picked_checkpoint}, the latest checkpoint in {requested} — point {name} at {report.path}"
        )
    lines += [
        f"  base model     {report.base_model} ({report.model_type or 'unknown'}, from {report.model_type_source})",
        f"  {name + ' LoRA':<15}{support}",
        f"  LoRA           r={report.rank} alpha={report.lora_alpha} on {targets}"
        f" ({report.lora_modules} modules, {report.weights_file})",
        f"  tokenizer      {', '.join(report.tokenizer_files) or f'none ({name} uses the base model tokenizer)'}",
        f"  chat template  {report.chat_template_file or 'none'}",
    ]
    lines += [f"  warning: {warning}" for warning in report.warnings]
    if report.needs_merge_on(engine):
        lines.append(
            f"{name} cannot serve LoRA for {report.model_type}: merge it with "
            f"`python -m adapters merge {report.path} OUT` and serve OUT without adapter_id"
        )
        if engine == "tgi" and report.vllm_serves_lora:
            lines.append("  (vLLM serves LoRA for it as it is: see docs/deploy.md, choosing the engine)")
    return "\n".join(lines)


def _error_message(exc: Exception) -> str:
    if isinstance(exc, FileExistsError):
        return f"{exc.filename} already exists — pass --force to replace it"
    return str(exc)


def _error_json(exc: Exception, message: str) -> dict[str, object]:
    body: dict[str, object] = {"ok": False, "error": type(exc).__name__, "message": message}
    if isinstance(exc, (AdapterNotFound, AdapterInvalid)):
        body["path"] = str(exc.path)
    if isinstance(exc, AdapterInvalid):
        body["problems"] = exc.problems
    return body


if __name__ == "__main__":
    sys.exit(main())
