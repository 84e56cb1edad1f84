"""The learned layer: all-MiniLM-L6-v2 fine-tuned to read crisis risk (safety/train.py), as an int8
ONNX file run with onnxruntime on the CPU: no torch, no network.

The folder model/ holds everything it needs: risk-model.onnx (tokens in, the probability of each
label out), its WordPiece tokenizer.json, risk-model.json (labels, threshold, how it was trained),
and the base model's LICENSE and NOTICE (Apache-2.0). A message goes in with the assistant's turn
before it as the first segment of a pair, so "yes" is read as the answer it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from proxy.core.chat import SafetyCategory, SafetyVerdict

MODEL_DIR = Path(__file__).with_name("model")
MODEL_FILE, TOKENIZER_FILE, CARD_FILE = "risk-model.onnx", "tokenizer.json", "risk-model.json"
NONE = "none"  # the first label: no risk


class RiskModel:
    def __init__(self, folder: Path = MODEL_DIR, threads: int = 1) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        self.labels: list[str] = card["labels"]
        self.threshold: float = card["threshold"]
        self.max_tokens: int = card["max_tokens"]
        if self.labels[0] != NONE:
            raise ValueError(f"{folder / CARD_FILE}: the first label must be {NONE!r}, not {self.labels[0]!r}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # it runs in a worker thread, on one core of its own
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_tokens)

    def probabilities(self, text: str, context: str = "") -> np.ndarray:
        encoding = self._tokenizer.encode(context, text) if context else self._tokenizer.encode(text)
        feed = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        (probabilities,) = self._session.run(None, feed)
        return probabilities[0]

    def risk(self, text: str, context: str = "") -> float:
        return 1.0 - float(self.probabilities(text, context)[0])

    def verdict(self, probabilities: np.ndarray) -> SafetyVerdict:
        """Flagged when the risk (1 - P(none)) reaches the threshold training chose, with the likeliest category."""
        if 1.0 - float(probabilities[0]) < self.threshold:
            return SafetyVerdict(False)
        category: SafetyCategory = self.labels[1 + int(np.argmax(probabilities[1:]))]  # type: ignore[assignment]
        return SafetyVerdict(True, category)
