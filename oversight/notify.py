"""In-app notice of escalations: the port the signaling layer implements.

The durable part of an escalation (its row, the audit record and the SMS in the outbox)
commits in one transaction; this notice is sent after the commit and is best effort, so a
supervisor with the page open sees it at once and one without it still gets the SMS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EscalationEvent:
    """What supervisors of ``to_agency_id`` are told; ``supervisor_ids`` are their accounts.

    ``kind`` is "new" (created or re-activated: Socket.IO ``escalation:new``) or "withdrawn"
    (``escalation:withdrawn``).
    """

    kind: str
    escalation_id: int
    month: str
    account_id: int
    username: str
    display_name: str
    from_agency_id: int
    from_agency_name: str
    to_agency_id: int
    confirmed_count: int
    supervisor_ids: tuple[int, ...]

    def payload(self) -> dict[str, object]:
        """The Socket.IO event body: no phone numbers, nothing an applicant gave."""
        return {
            "escalation_id": self.escalation_id,
            "month": self.month,
            "staff": {
                "id": self.account_id,
                "username": self.username,
                "display_name": self.display_name,
            },
            "from_agency": {"id": self.from_agency_id, "name": self.from_agency_name},
            "to_agency_id": self.to_agency_id,
            "confirmed_count": self.confirmed_count,
        }


class EscalationNotifier(Protocol):
    async def escalation_changed(self, event: EscalationEvent) -> None:
        """Emit ``escalation:new`` / ``escalation:withdrawn`` to ``event.supervisor_ids``."""


class NoNotifier:
    """The default: nobody is connected to tell."""

    async def escalation_changed(self, event: EscalationEvent) -> None:
        return None


class Notifiers:
    """Every registered notifier, told in turn; one failing does not stop the others, and
    never undoes the escalation that already committed."""

    def __init__(self) -> None:
        self._notifiers: list[EscalationNotifier] = []

    def add(self, notifier: EscalationNotifier) -> None:
        self._notifiers.append(notifier)

    async def escalation_changed(self, event: EscalationEvent) -> None:
        for notifier in list(self._notifiers):
            try:
                await notifier.escalation_changed(event)
            except Exception:  # best effort by design: the SMS is already in the outbox
                log.exception("escalation notice %s failed in %r", event.escalation_id, notifier)
