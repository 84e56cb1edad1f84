"""The upstream interface (proxy/upstream/interface.py) and its implementations, one package per
engine: `tgi/` today. `engines.py` picks one from the settings."""

from proxy.upstream.interface import ContextLimits, Upstream, UpstreamHealth

__all__ = ["ContextLimits", "Upstream", "UpstreamHealth"]
