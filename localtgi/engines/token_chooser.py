"""Pick the next token the way TGI's NextTokenChooser does (server/text_generation_server/utils/tokens.py).

The repetition penalty applies always; temperature, top_k, top_p and typical_p warp the
scores only when sampling; sampling draws from a generator seeded per request, so one seed
always gives one output.
"""

from __future__ import annotations

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from localtgi.engine import SamplingParams


class TokenChooser:
    def __init__(self, params: SamplingParams) -> None:
        self._penalty = (
            RepetitionPenaltyLogitsProcessor(params.repetition_penalty) if params.repetition_penalty != 1.0 else None
        )
        self._warpers = _warpers(params) if params.sampling else LogitsProcessorList()
        self._generator = torch.Generator().manual_seed(params.seed) if params.sampling else None

    def choose(self, all_ids: list[int], logits: torch.Tensor) -> tuple[int, float]:
        """(token id, its logprob) from the last position's logits, shape [1, vocab]."""
        scores = logits.float()
        if self._penalty is not None:
            scores = self._penalty(torch.tensor([all_ids]), scores)
        scores = self._warpers(None, scores)  # warpers look only at the scores
        # TGI reports the logprob under the warped distribution, the one the token was drawn from.
        logprobs = torch.log_softmax(scores, dim=-1)[0]
        if self._generator is None:
            token_id = int(torch.argmax(scores[0]))
        else:
            token_id = int(torch.multinomial(logprobs.exp(), num_samples=1, generator=self._generator))
        return token_id, float(logprobs[token_id])


def _warpers(params: SamplingParams) -> LogitsProcessorList:
    # TGI's StaticWarper order: temperature, top_k, top_p, typical_p.
    warpers = LogitsProcessorList()
    if params.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k != 0:
        warpers.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        warpers.append(TopPLogitsWarper(params.top_p))
    if params.typical_p < 1.0:
        warpers.append(TypicalLogitsWarper(params.typical_p))
    return warpers
