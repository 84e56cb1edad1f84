"""Build SmolLM2's Hugging Face tokenizer from the metadata of its GGUF file.

transformers' own GGUF tokenizer import depends on its version: 4.57 makes a Llama
tokenizer that prepends `<|im_start|>` to every prompt and names it as EOS. The GGUF
metadata is unambiguous, so the tokenizer is built from it directly.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast

_CONTROL_TOKEN = 3  # llama.cpp's token type for special tokens such as <|im_end|>


class UnsupportedGguf(ValueError):
    """A GGUF whose tokenizer is not the byte-level BPE this module knows how to rebuild."""


def tokenizer_from_gguf(gguf: Path) -> PreTrainedTokenizerFast:
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields

    def value(key: str):
        return fields[key].contents()

    if value("tokenizer.ggml.model") != "gpt2" or value("tokenizer.ggml.pre") != "smollm":
        raise UnsupportedGguf(f"{gguf.name}: expected SmolLM's byte-level BPE tokenizer")
    tokens: list[str] = value("tokenizer.ggml.tokens")
    merges = [tuple(merge.split(" ")) for merge in value("tokenizer.ggml.merges")]
    backend = Tokenizer(BPE(vocab={token: i for i, token in enumerate(tokens)}, merges=merges))
    # llama.cpp's "smollm" pre-tokenizer: digits one at a time, then GPT-2's byte-level split.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)  # add_bos_token is false: no template
    control = [
        token for token, kind in zip(tokens, value("tokenizer.ggml.token_type"), strict=True) if kind == _CONTROL_TOKEN
    ]
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in control])

    def token(key: str) -> str:
        return tokens[value(f"tokenizer.ggml.{key}")]

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=token("bos_token_id"),
        eos_token=token("eos_token_id"),
        pad_token=token("padding_token_id"),
        unk_token=token("unknown_token_id"),
        clean_up_tokenization_spaces=False,  # byte-level BPE decodes exactly; "cleanup" would eat spaces
        model_max_length=value("llama.context_length"),
        chat_template=value("tokenizer.chat_template"),
        model_input_names=["input_ids", "attention_mask"],  # a causal LM takes no token_type_ids
    )
