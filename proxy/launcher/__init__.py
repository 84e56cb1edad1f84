"""Start and supervise the inference server (TGI, or the local stand-in): its settings and argv
(`settings.py`), and the child process with its readiness deadline and failure handling (`process.py`)."""
