"""Check a LoRA adapter folder the way TGI will need it, before TGI gets to fail on it."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adapters.architectures import model_type_from_name, serves_lora
from adapters.basemodel import cached_model_dir, default_cache_dir
from adapters.chat_template import read_chat_template
from adapters.errors import AdapterInvalid, AdapterNotFound
from adapters.tensorfile import Shapes, UnreadableTensorFile, read_tensor_shapes

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILES = ("adapter_model.safetensors", "adapter_model.bin")  # TGI's order of preference
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
REQUIRED_CONFIG_KEYS = ("peft_type", "r", "lora_alpha", "target_modules", "base_model_name_or_path")
_CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)")
_LORA_TENSOR = re.compile(r"(?P<module>.+)\.lora_(?P<half>[AB])(?:\.[^.]+)?\.weight")
_PEFT_PREFIX = "base_model.model."

LoraPairs = dict[str, dict[str, tuple[int, ...]]]  # module -> {"A": shape, "B": shape}


@dataclass(frozen=True)
class AdapterReport:
    """What `check_adapter` found. `path` is the folder to hand to TGI."""

    path: Path
    picked_checkpoint: str | None  # set when the given folder held trainer checkpoints
    base_model: str
    model_type: str | None
    model_type_source: str  # the config.json read, or "name" when guessed from base_model
    tgi_serves_lora: bool | None  # None when the architecture is unknown
    vllm_serves_lora: bool | None
    rank: int
    lora_alpha: float
    target_modules: list[str] | str
    weights_file: str
    lora_modules: int
    tokenizer_files: list[str]
    chat_template_file: str | None
    warnings: list[str]

    @property
    def needs_merge(self) -> bool:
        """On TGI, the engine this tool first served."""
        return self.needs_merge_on("tgi")

    def needs_merge_on(self, engine: str) -> bool:
        return (self.tgi_serves_lora if engine == "tgi" else self.vllm_serves_lora) is False

    def to_dict(self) -> dict[str, Any]:
        merge = {f"needs_merge_on_{engine}": self.needs_merge_on(engine) for engine in ("tgi", "vllm")}
        return {**asdict(self), "path": str(self.path), "needs_merge": self.needs_merge, **merge}


def check_adapter(path: str | Path, cache_dir: Path | None = None) -> AdapterReport:
    """Validate the adapter at `path` (or the latest trainer checkpoint inside it).

    Raises AdapterNotFound when there is no adapter there, AdapterInvalid when TGI
    could not load it. Architecture support is reported, not raised: a valid adapter
    for Qwen3 is still worth merging.
    """
    requested = Path(path).expanduser()
    adapter_dir, picked, warnings = _locate_adapter(requested)
    config = _read_adapter_config(adapter_dir)
    base_model = config["base_model_name_or_path"]
    base_config, base_config_path = _find_base_config(base_model, cache_dir or default_cache_dir())

    weights_file, shapes = _read_weights(adapter_dir)
    pairs, others = _group_lora_tensors(shapes)
    problems = _tensor_problems(config, pairs, base_config)
    if problems:
        raise AdapterInvalid(adapter_dir, problems)
    if others:
        warnings.append(f"{len(others)} tensors are not LoRA A/B weights and TGI ignores them (e.g. {others[0]})")

    if base_config is not None:
        model_type, source = base_config.get("model_type"), str(base_config_path)
    else:
        model_type, source = model_type_from_name(base_model), "name"
    serves = serves_lora("tgi", model_type) if model_type else None
    if serves is None:
        warnings.append(
            f"cannot tell the architecture of {base_model!r} (no config.json on disk, unknown name); "
            "TGI serves LoRA for qwen2, llama, mistral, gemma2/3, starcoder2, phi3"
        )

    chat_template = read_chat_template(adapter_dir)
    return AdapterReport(
        path=adapter_dir,
        picked_checkpoint=picked,
        base_model=base_model,
        model_type=model_type,
        model_type_source=source,
        tgi_serves_lora=serves,
        vllm_serves_lora=serves_lora("vllm", model_type) if model_type else None,
        rank=config["r"],
        lora_alpha=config["lora_alpha"],
        target_modules=config["target_modules"],
        weights_file=weights_file,
        lora_modules=len(pairs),
        tokenizer_files=[name for name in TOKENIZER_FILES if (adapter_dir / name).is_file()],
        chat_template_file=chat_template.file if chat_template else None,
        warnings=warnings,
    )


def _locate_adapter(path: Path) -> tuple[Path, str | None, list[str]]:
    if not path.exists():
        raise AdapterNotFound(path)
    if not path.is_dir():
        raise AdapterNotFound(path, "this is a file; pass the adapter folder")
    if (path / CONFIG_FILE).is_file():
        return path, None, []
    steps = sorted(
        (int(match.group(1)), child)
        for child in path.iterdir()
        if child.is_dir() and (match := _CHECKPOINT_DIR.fullmatch(child.name))
    )
    if not steps:
        raise AdapterNotFound(path, f"no {CONFIG_FILE} and no checkpoint-* folders")
    complete = [(step, child) for step, child in steps if (child / CONFIG_FILE).is_file()]
    if not complete:
        raise AdapterNotFound(path, f"no checkpoint-* folder holds {CONFIG_FILE}")
    latest_step, latest = complete[-1]
    warnings = [
        f"skipped {child.name}: no {CONFIG_FILE} (interrupted save?)" for step, child in steps if step > latest_step
    ]
    return latest, latest.name, warnings


def _read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    config_path = adapter_dir / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterInvalid(adapter_dir, [f"{CONFIG_FILE} is not valid JSON ({exc})"]) from exc
    if not isinstance(config, dict):
        raise AdapterInvalid(adapter_dir, [f"{CONFIG_FILE} is not a JSON object"])
    problems = [f"{CONFIG_FILE} lacks {key!r}" for key in REQUIRED_CONFIG_KEYS if key not in config]
    if not problems:
        problems = _config_value_problems(config)
    if problems:
        raise AdapterInvalid(adapter_dir, problems)
    return config


def _config_value_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    if config["peft_type"] != "LORA":
        problems.append(f"peft_type is {config['peft_type']!r}; TGI serves only LORA adapters")
    if not isinstance(config["r"], int) or isinstance(config["r"], bool) or config["r"] <= 0:
        problems.append(f"r must be a positive integer, got {config['r']!r}")
    if not isinstance(config["lora_alpha"], (int, float)) or isinstance(config["lora_alpha"], bool):
        problems.append(f"lora_alpha must be a number, got {config['lora_alpha']!r}")
    targets = config["target_modules"]
    if not (isinstance(targets, str) and targets) and not (isinstance(targets, list) and targets):
        problems.append(f"target_modules must be a non-empty list or pattern, got {targets!r}")
    if not isinstance(config["base_model_name_or_path"], str) or not config["base_model_name_or_path"]:
        problems.append("base_model_name_or_path is empty; set it to the base model id the adapter was trained on")
    return problems


def _read_weights(adapter_dir: Path) -> tuple[str, Shapes]:
    for name in WEIGHTS_FILES:
        weights = adapter_dir / name
        if weights.is_file():
            try:
                return name, read_tensor_shapes(weights)
            except UnreadableTensorFile as exc:
                raise AdapterInvalid(adapter_dir, [str(exc)]) from exc
    raise AdapterInvalid(adapter_dir, [f"no weights file ({' or '.join(WEIGHTS_FILES)})"])


def _group_lora_tensors(shapes: Shapes) -> tuple[LoraPairs, list[str]]:
    """The LoRA tensors by module, and the names of all other tensors."""
    pairs: LoraPairs = {}
    others = []
    for name, shape in shapes.items():
        match = _LORA_TENSOR.fullmatch(name)
        if match:
            pairs.setdefault(match["module"].removeprefix(_PEFT_PREFIX), {})[match["half"]] = shape
        else:
            others.append(name)
    return pairs, others


def _tensor_problems(config: dict[str, Any], pairs: LoraPairs, base_config: dict[str, Any] | None) -> list[str]:
    if not pairs:
        return ["the weights file holds no lora_A/lora_B tensors"]
    linear_shapes = _linear_shapes(base_config) if base_config else {}
    problems = []
    for module, pair in sorted(pairs.items()):
        problems += _module_problems(module, pair, config, linear_shapes)
    # One line per bad module can run to hundreds; the first few say enough.
    if len(problems) > 5:
        problems = problems[:5] + [f"... and {len(problems) - 5} more"]
    return problems


def _module_problems(
    module: str,
    pair: dict[str, tuple[int, ...]],
    config: dict[str, Any],
    linear_shapes: dict[str, tuple[int, int]],
) -> list[str]:
    if set(pair) != {"A", "B"}:
        missing = "lora_B" if "A" in pair else "lora_A"
        return [f"{module} has no {missing} weight"]
    if not _targeted(module, config["target_modules"]):
        return [f"{module} has LoRA weights but is not among target_modules {config['target_modules']}"]
    a_shape, b_shape = pair["A"], pair["B"]
    if len(a_shape) != 2 or len(b_shape) != 2:
        return [f"{module}: lora_A {list(a_shape)} and lora_B {list(b_shape)} must both be 2-D"]
    rank = _rank_for(module, config)
    problems = []
    if a_shape[0] != rank or b_shape[1] != rank:
        problems.append(
            f"{module}: lora_A {list(a_shape)} and lora_B {list(b_shape)} do not match r={rank} "
            "(expected lora_A [r, in], lora_B [out, r])"
        )
    expected = linear_shapes.get(module.rsplit(".", 1)[-1])
    if expected and (a_shape[1], b_shape[0]) != expected:
        problems.append(
            f"{module}: adapter is for a layer of in={a_shape[1]}, out={b_shape[0]} but the base model's "
            f"layer is in={expected[0]}, out={expected[1]} (adapter trained on another base model size?)"
        )
    return problems


def _targeted(module: str, target_modules: list[str] | str) -> bool:
    # Mirrors peft's check_target_module_exists.
    if isinstance(target_modules, str):
        return target_modules == "all-linear" or re.fullmatch(target_modules, module) is not None
    return module in target_modules or any(module.endswith(f".{target}") for target in target_modules)


def _rank_for(module: str, config: dict[str, Any]) -> int:
    # Mirrors peft's get_pattern_key: a rank_pattern key matches a suffix of the module name.
    for pattern, rank in (config.get("rank_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return rank
    return config["r"]


def _linear_shapes(base_config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(in, out) of the projection layers shared by Llama-style models, by module name."""
    text = base_config.get("text_config", base_config)
    try:
        hidden, heads, inner = text["hidden_size"], text["num_attention_heads"], text["intermediate_size"]
    except KeyError:
        return {}
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or hidden // heads
    return {
        "q_proj": (hidden, heads * head_dim),
        "k_proj": (hidden, kv_heads * head_dim),
        "v_proj": (hidden, kv_heads * head_dim),
        "o_proj": (heads * head_dim, hidden),
        "gate_proj": (hidden, inner),
        "up_proj": (hidden, inner),
        "down_proj": (inner, hidden),
    }


def _find_base_config(base_model: str, cache_dir: Path) -> tuple[dict[str, Any] | None, Path | None]:
    for candidate in _base_config_candidates(base_model, cache_dir):
        try:
            loaded = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(loaded, dict):
            return loaded, candidate
    return None, None


def _base_config_candidates(base_model: str, cache_dir: Path) -> list[Path]:
    candidates = [
        Path(base_model).expanduser() / "config.json",
        cached_model_dir(base_model, cache_dir) / "config.json",
    ]
    hub = Path(
        os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub"
    ).expanduser()
    snapshots = hub / f"models--{base_model.replace('/', '--')}" / "snapshots"
    if snapshots.is_dir():
        candidates += sorted(snapshots.glob("*/config.json"))
    return candidates
