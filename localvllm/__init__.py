"""localvllm: a local stand-in for vLLM's OpenAI-compatible server (`vllm serve`), on localtgi's engines.

The same scripted and transformers engines, pacing and fault injection as localtgi, behind vLLM's
wire: POST /v1/completions, GET /v1/models, /health, /metrics (vllm:*), /version, and the sleep-mode
routes. So the proxy's vLLM client runs and is tested here with no GPU. Wire facts: docs/wire-vllm.md.
"""
