"""The crisis policy (PROXY_SAFETY_POLICY): what follows a verdict.

    annotate  the verdict goes in the final event; nothing else changes
    prepend   a flagged request gets the resources message first, then the model's reply
    block     a flagged request gets only the resources message; the model is not called

The detector reads the request while the inference server is being asked (except under block,
where it must answer first), so its milliseconds mostly hide behind the connection's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import NamedTuple

from proxy.core.chat import ChatInput, Notice, SafetyVerdict
from proxy.policies.crisis.detector import CrisisDetector
from proxy.policies.crisis.resources import CrisisResources

logger = logging.getLogger(__name__)
NOTICE_KIND = "crisis_resources"
NOT_FLAGGED = SafetyVerdict(False)


class Screening(NamedTuple):
    verdict: SafetyVerdict
    referral: Notice | None  # the resources message to send, when the policy refers
    seconds: float
    failed: bool  # the detector raised: the request went on unscreened (logged)


class CrisisCareSetupError(RuntimeError):
    """The settings ask for crisis care that cannot run; the message says what to change."""


@cache
def shared_detector() -> CrisisDetector:
    """One per process: the model's session is thread-safe, and loading it takes a fraction of a second."""
    return CrisisDetector.load()


class CrisisCare:
    def __init__(
        self, policy: str, detector: CrisisDetector, resources: CrisisResources, workers: int | None = None
    ) -> None:
        if policy not in ("annotate", "prepend", "block"):
            raise ValueError(f"no crisis care under PROXY_SAFETY_POLICY={policy!r}")
        self.policy = policy
        self.blocks = policy == "block"
        self._detector = detector
        self._resources = resources
        # Threads of its own, not asyncio's default pool (cores + 4): 200 requests at once kept six
        # detector threads busy on two cores, and the event loop fell behind its streams.
        workers = workers or max(1, len(os.sched_getaffinity(0)) - 1)  # the cores this process may use
        self._workers = ThreadPoolExecutor(workers, thread_name_prefix="crisis-detector")

    @classmethod
    def from_settings(
        cls, policy: str, region: str, resources_file: Path | None, workers: int | None = None
    ) -> CrisisCare | None:
        if policy == "off":
            return None
        try:  # a bad region or a missing model fails start-up, not a request
            resources = CrisisResources.load(region, resources_file)
            detector = shared_detector()
        except (ValueError, OSError, ImportError) as exc:
            raise CrisisCareSetupError(f"{exc} (or set PROXY_SAFETY_POLICY=off to run without crisis care)") from None
        return cls(policy, detector, resources, workers)

    def start(self, chat: ChatInput) -> asyncio.Future[Screening]:
        """Screen `chat` in a worker thread; await the future for the outcome."""
        return asyncio.get_running_loop().run_in_executor(self._workers, self._screen, chat)

    def _screen(self, chat: ChatInput) -> Screening:
        started = time.perf_counter()
        try:
            verdict = self._detector.assess_chat(chat)
        except Exception:  # a bug must not take the conversation down with it: go on, loudly
            logger.exception("the crisis detector failed; this request goes on unscreened")
            return Screening(NOT_FLAGGED, None, time.perf_counter() - started, True)
        referral = None
        if verdict.flagged and self.policy != "annotate":
            referral = Notice(NOTICE_KIND, self._resources.message(verdict.category, chat.message))
        return Screening(verdict, referral, time.perf_counter() - started, False)
