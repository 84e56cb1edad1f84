"""A deterministic stand-in model: supportive therapist-style replies, paced like a real decoder.

The reply depends only on the seed (0 for greedy requests), so a test can predict a stream from a
`/generate` call with the same seed and max_new_tokens. Tokens look like a byte-level BPE model's:
words with a leading space, punctuation, newlines, and non-ASCII characters split into one token per
UTF-8 byte where all but the last byte have text "" (TGI's incremental detokenizer) and the last
carries the whole character. Replies end with the special token `<|im_end|>`.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import re
import struct
from typing import AsyncIterator

from tokenizers import Tokenizer

from adapters.basemodel import bundled_qwen_tokenizer_path
from localtgi.engine import GeneratedToken, SamplingParams

DEFAULT_MODEL_ID = "scripted/therapist"
MAX_POSITION_EMBEDDINGS = 4096

EOS_ID = 151645  # Qwen2's <|im_end|>
EOS_TOKEN = GeneratedToken(id=EOS_ID, text="<|im_end|>", logprob=-0.0012207031, special=True, is_eos=True)

# Append only: token ids are given in order of first appearance, so editing earlier
# sentences would renumber the vocabulary.
SENTENCES: tuple[str, ...] = (
    "It sounds like you’re carrying a lot right now.",
    "That makes a lot of sense, and it’s okay to feel this way.",
    "What you’re describing sounds really exhausting.",
    "Would you like to tell me more about what happened?",
    "Let’s take a slow breath together 🙂",
    "You don’t have to figure everything out today.",
    "Sometimes a small step, like a short walk or a tea at your favourite café, can help.",
    "One grounding idea: notice five things you can see right now.",
    "There is a Japanese word, 木漏れ日, for sunlight through leaves; small moments like that can steady us.",
    "I’m here with you 😊",
    "How have you been sleeping lately?",
    "It’s completely understandable to feel overwhelmed.",
    "What would feel supportive for you right now?",
    "Be gentle with yourself; healing isn’t a straight line.",
    "You said you feel “stuck”. Where do you notice that in your body?",
    "Naming a feeling, even a naïve-sounding one, can soften it a little.",
    "You’ve already taken a brave step by talking about this.",
    "What has helped you get through hard days before?",
)
MIN_REPLY_TOKENS = 20
MAX_REPLY_TOKENS = 120
# Falling further behind schedule than this means the consumer paused (a stall fault, a slow
# client): start a fresh schedule instead of bursting out the missed tokens.
RESCHEDULE_AFTER_S = 0.25

_PIECE = re.compile(r" ?[A-Za-z]+| ?[0-9]+|\n| ?[!-/:-@\[-`{-~]|[^\x00-\x7f]| ")
_LOGPROB_VARIANTS = 4  # logprobs per token text; a small pool keeps encoded events cacheable
_WORD_IDS_START = 256  # ids 0..255 are the byte tokens


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _build_vocabulary() -> dict[str, int]:
    vocabulary: dict[str, int] = {}
    for sentence in SENTENCES:
        for piece in _PIECE.findall(f"{sentence} {sentence}\n\n"):  # as first, following, new paragraph
            if piece.isascii() and piece not in vocabulary:
                vocabulary[piece] = _WORD_IDS_START + len(vocabulary)
    return vocabulary


VOCABULARY = _build_vocabulary()


@functools.cache
def _variants(token_id: int, text: str) -> tuple[GeneratedToken, ...]:
    rng = random.Random(token_id)
    return tuple(
        GeneratedToken(id=token_id, text=text, logprob=_float32(-rng.uniform(0.001, 4.0)), special=False)
        for _ in range(_LOGPROB_VARIANTS)
    )


def _tokenize(text: str) -> list[tuple[int, str]]:
    """(id, text) pairs; a non-ASCII character becomes one token per UTF-8 byte."""
    pairs: list[tuple[int, str]] = []
    for piece in _PIECE.findall(text):
        if piece.isascii():
            pairs.append((VOCABULARY[piece], piece))
            continue
        encoded = piece.encode("utf-8")
        pairs.extend((byte, "") for byte in encoded[:-1])
        pairs.append((encoded[-1], piece))
    return pairs


@functools.lru_cache(maxsize=1024)
def reply_tokens(seed: int) -> tuple[GeneratedToken, ...]:
    """The whole reply for a seed, EOS included."""
    rng = random.Random(seed)
    target = rng.randint(MIN_REPLY_TOKENS, MAX_REPLY_TOKENS)
    pairs: list[tuple[int, str]] = []
    while len(pairs) < target:
        separator = "" if not pairs else ("\n\n" if rng.random() < 0.25 else " ")
        pairs.extend(_tokenize(separator + rng.choice(SENTENCES)))
    tokens = [rng.choice(_variants(token_id, text)) for token_id, text in pairs]
    return (*tokens, EOS_TOKEN)


def predicted_text(seed: int, max_new_tokens: int) -> str:
    """generated_text the server returns for this seed and cap (EOS is never part of it)."""
    return "".join(token.text for token in reply_tokens(seed)[:max_new_tokens] if not token.special)


class ScriptedEngine:
    """Engine protocol implementation; `token_rate` 0 means as fast as possible.

    Paced like TGI's continuous batching when `batched` (the default): the first token comes
    `first_token_delay` after the request (prefill), and every later one on the engine's shared
    decode clock, so all running streams get their next token in the same step, as TGI's router
    sends a whole batch's tokens after each forward pass (backends/v3/src/backend.rs,
    filter_send_generations). `batched=False` gives every stream a clock of its own instead.
    """

    max_position_embeddings = MAX_POSITION_EMBEDDINGS

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL_ID,
        adapter_ids: frozenset[str] = frozenset(),
        token_rate: float = 0.0,
        first_token_delay: float = 0.0,
        batched: bool = True,
    ) -> None:
        self.model_id = model_id
        self.adapter_ids = adapter_ids
        self._interval = 1.0 / token_rate if token_rate > 0 else 0.0
        self._first_token_delay = first_token_delay
        self._batched = batched
        # Loaded at start, as TGI loads its tokenizer: the first request must not pay for it.
        self._tokenizer = _qwen_tokenizer()

    def count_input_tokens(self, inputs: str) -> int:
        # Production serves a Qwen model: count prompts as its tokenizer does when it is installed,
        # so the proxy's context fitting and this server's limits agree, as they do with real TGI.
        if self._tokenizer is None:
            return len(_PIECE.findall(inputs))
        return len(self._tokenizer.encode(inputs, add_special_tokens=True).ids)  # as TGI's router counts

    async def generate(self, inputs: str, params: SamplingParams) -> AsyncIterator[GeneratedToken]:
        tokens = reply_tokens(params.seed if params.sampling else 0)
        if not self._interval and not self._first_token_delay:
            for token in tokens:
                yield token
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + self._first_token_delay
        step = self._step_after(due)  # the shared decode clock's steps: multiples of the interval
        for position, token in enumerate(tokens):
            if position and self._interval:
                if self._batched:
                    due, step = step * self._interval, step + 1
                else:
                    due += self._interval
            now = loop.time()
            if now - due > RESCHEDULE_AFTER_S:
                due, step = now, self._step_after(now)
            elif due > now:
                await asyncio.sleep(due - now)
            yield token

    def _step_after(self, moment: float) -> int:
        return math.floor(moment / self._interval) + 1 if self._interval else 0


@functools.cache  # one load per process, however many engines the tests build
def _qwen_tokenizer() -> Tokenizer | None:
    path = bundled_qwen_tokenizer_path()
    return Tokenizer.from_file(str(path)) if path else None
