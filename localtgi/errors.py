"""TGI's InferError family (router/src/infer/mod.rs) plus axum's body rejections.

`str(error)` is the text TGI puts in `{"error": ..., "error_type": ...}`; `status` is what
/generate answers with (/generate_stream always answers 200 and sends the body as an event).
"""

from __future__ import annotations


class InferError(Exception):
    status: int = 500
    error_type: str = ""


class ValidationError(InferError):
    status = 422
    error_type = "validation"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Input validation error: {reason}")


class Overloaded(InferError):
    status = 429
    error_type = "overloaded"

    def __init__(self) -> None:
        super().__init__("Model is overloaded")


class GenerationError(InferError):
    status = 424
    error_type = "generation"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Request failed during generation: {reason}")


class IncompleteGeneration(InferError):
    error_type = "incomplete_generation"

    def __init__(self) -> None:
        super().__init__("Incomplete generation")


class IncompleteGenerationStream(InferError):
    error_type = "incomplete_generation_stream"

    def __init__(self) -> None:
        super().__init__("Incomplete generation stream")


class BodyRejection(Exception):
    """axum's Json extractor refused the body: a plain-text reply, before any TGI code runs."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class ConnectionDropped(Exception):
    """The --drop-after fault: the server abandons the connection mid-response."""
