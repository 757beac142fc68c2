"""The server's daily retention sweep: shortly after start, then every 24 hours.

Every node runs one; the purge claims each recording with a conditional UPDATE, so nodes
sweeping at the same time neither double-delete nor double-audit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tongban.periodic import Periodic

FIRST_SWEEP_AFTER_S = 60.0
SWEEP_EVERY_S = 24 * 3600.0


class RetentionSweeper(Periodic):
    def __init__(
        self,
        sweep: Callable[[], Awaitable[int]],
        *,
        first_after: float = FIRST_SWEEP_AFTER_S,
        every: float = SWEEP_EVERY_S,
    ) -> None:
        super().__init__(sweep, name="retention sweep", first_after=first_after, every=every)
