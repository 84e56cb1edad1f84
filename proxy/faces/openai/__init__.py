"""OpenAI's APIs as a face: Chat Completions, Responses and the model list, under /v1/.

Wire facts, with pointers into the openai SDK's source: docs/wire-openai.md.
"""
