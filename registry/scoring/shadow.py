"""Shadow scoring: another alias scored on the users just served, off the request path, only logged.

One batch at a time on one worker thread; when it falls behind, batches are dropped (and counted) rather
than queued without bound, so a slow shadow never slows serving.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from registry.scoring.results import Score

shadow_log = logging.getLogger("shopscore.shadow")

# (model, alias, user ids) -> scores: how the shadow asks the scorer for the shadow alias's answers.
ScoreAlias = Callable[[str, str, list[int]], list[Score]]


class Shadow:
    def __init__(self, score_alias: ScoreAlias, *, max_pending: int = 64) -> None:
        self.score_alias = score_alias
        self.max_pending = max_pending
        self.dropped = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopscore-shadow")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, model: str, shadow: str, served: list[Score]) -> None:
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                return
            future = self._pool.submit(self._run, model, shadow, served)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _run(self, model: str, shadow: str, served: list[Score]) -> None:
        """Score the shadow alias on the users just served and log both answers, one JSON line per user."""
        try:
            shadowed = self.score_alias(model, shadow, [s.user_id for s in served])
        except Exception as exc:  # a broken shadow must never affect serving; say so in the log
            shadow_log.warning("shadow alias %r of model %r failed: %s", shadow, model, exc)
            return
        for main, other in zip(served, shadowed, strict=True):
            shadow_log.info(
                json.dumps(
                    {
                        "event": "shadow_score",
                        "model": model,
                        "user_id": main.user_id,
                        "served_alias": main.alias,
                        "served_version": main.version,
                        "served_answer": main.answer,
                        "served_value": main.to_dict()["value"],
                        "shadow_alias": other.alias,
                        "shadow_version": other.version,
                        "shadow_answer": other.answer,
                        "shadow_value": other.to_dict()["value"],
                    },
                    sort_keys=True,
                )
            )

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the batches submitted so far are scored and logged (tests, shutdown)."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
