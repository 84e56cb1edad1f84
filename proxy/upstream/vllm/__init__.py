"""vLLM's OpenAI-compatible server behind the upstream interface: our own rendered prompt to
POST /v1/completions, the adapter chosen by `model`.

Wire facts, with pointers into vLLM's source: docs/wire-vllm.md.
"""
