"""Hugging Face TGI behind the upstream interface: its parameters, wire, errors and events.

Wire facts, with pointers into TGI's source: ../shared/fixtures/tgi/wire.md.
"""
