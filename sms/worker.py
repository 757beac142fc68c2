"""The outbox worker: sends what is due, at most ``concurrency`` messages at a time.

Each cycle (woken by ``notify()`` after an enqueue commits, when a send finishes, when the
next retry is due, or by a poll for entries other nodes enqueued):

1. entries left in ``sending`` by a node that stopped are settled (``outbox.recover_stale``);
2. reminders to a phone reminded moments ago are held for the coalescing window;
3. due entries are claimed (a conditional UPDATE: one owner per entry, across nodes), each
   claimed reminder pulling the other pending reminders to the same phone into one message;
4. each message is sent in its own task; the result is written back: sent, retry later, or
   failed for an administrator.

Only as many entries are claimed as there are free sending slots, so nothing claimed waits
in memory, and a stop loses no claim that was not in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

from sms import outbox
from sms.outbox import Entry
from sms.providers import ProviderError, SmsProvider
from sms.retry import RetryPolicy
from sms.templates import coalesce_reminders, render
from storage.database import Database
from tongban.clock import Clock
from tongban.masking import mask_phone
from web.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """``lease``: how long a claim holds; longer than the provider's whole timeout.
    ``coalesce_window``: reminders to one phone within it go out as one message.
    ``poll``: the longest sleep, for entries enqueued by other nodes.
    ``drain``: how long ``stop()`` waits for messages in flight."""

    lease: timedelta = timedelta(seconds=120)
    coalesce_window: timedelta = timedelta(minutes=2)
    poll: float = 5.0
    drain: float = 20.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Batch:
    """One message: ``entries[0]`` lends its id as the OutId; the others ride along."""

    entries: tuple[Entry, ...]
    template: str
    params: dict[str, str]

    @property
    def ids(self) -> list[int]:
        return [e.id for e in self.entries]

    @property
    def phone(self) -> str:
        return self.entries[0].phone

    @property
    def attempts(self) -> int:
        return max(e.attempts for e in self.entries)


def batches(entries: list[Entry]) -> list[Batch]:
    """Claimed entries as messages: all reminders to one phone become one; the rest go alone."""
    out: list[Batch] = []
    reminders: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: e.id):
        if entry.template == "reminder":
            reminders.setdefault(entry.phone, []).append(entry)
        else:
            out.append(Batch((entry,), entry.template, entry.params))
    for group in reminders.values():
        params = coalesce_reminders(e.params for e in group)
        out.append(Batch(tuple(group), "reminder", params))
    return out


class SmsWorker:
    def __init__(
        self,
        db: Database,
        provider: SmsProvider,
        clock: Clock,
        metrics: Metrics,
        node_id: str,
        concurrency: int = 4,
        options: WorkerOptions | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._db = db
        self._provider = provider
        self._clock = clock
        self._metrics = metrics
        self.node_id = node_id[:64]
        self._concurrency = concurrency
        self._options = options or WorkerOptions()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._rng = random.Random()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("the SMS worker is already started")
        self._stopping = False
        self._loop_task = asyncio.get_running_loop().create_task(
            self._run(), name=f"sms-worker {self.node_id}"
        )

    async def stop(self) -> None:
        """Stop claiming, let messages in flight finish (up to ``drain`` seconds), then cancel
        what is left; an entry whose send was cancelled is settled by ``recover_stale``.
        Idempotent."""
        self._stopping = True
        self._wake.set()
        task, self._loop_task = self._loop_task, None
        if task is not None:
            # let a cycle finish rather than cancel it: a claim committed but not yet handed
            # to a send task would look like a send lost in a crash (failed, not resent)
            done, _ = await asyncio.wait({task}, timeout=self._options.drain)
            if not done:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sends:
            _, pending = await asyncio.wait(set(self._sends), timeout=self._options.drain)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def notify(self) -> None:
        """Something was enqueued (and committed): look now rather than at the next poll."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._sends)

    # --- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        await self._refresh_attention()
        while not self._stopping:
            self._wake.clear()
            try:
                pause = await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away for a while: log, wait, go on
                log.exception("SMS worker cycle failed; trying again shortly")
                pause = self._options.poll
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(pause, 0.0))

    async def _cycle(self) -> float:
        """One pass; returns how long to sleep unless woken."""
        now = self._clock.now()
        opts = self._options
        async with self._db.begin() as conn:
            settled, unknown = await outbox.recover_stale(conn, now=now)
        if settled or unknown:
            log.warning(
                "SMS entries left sending by a stopped node: %d sent (receipt), %d failed "
                "(outcome unknown, not resent)",
                len(settled),
                len(unknown),
            )
            self._metrics.sms.labels("recovered_sent").inc(len(settled))
            self._metrics.sms.labels("outcome_unknown").inc(len(unknown))
            await self._refresh_attention()
        async with self._db.begin() as conn:
            await outbox.postpone_recently_reminded(conn, now=now, window=opts.coalesce_window)
        free = self._concurrency - len(self._sends)
        if free > 0 and not self._stopping:
            until = now + opts.lease
            async with self._db.begin() as conn:
                claimed = await outbox.claim_due(
                    conn, node_id=self.node_id, now=now, until=until, limit=free
                )
                phones = sorted({e.phone for e in claimed if e.template == "reminder"})
                claimed += await outbox.claim_companions(
                    conn, phones=phones, node_id=self.node_id, until=until
                )
            log.debug("SMS worker %s claimed %s", self.node_id, [e.id for e in claimed])
            for batch in batches(claimed):
                self._spawn(batch)
        if len(self._sends) >= self._concurrency:
            return opts.poll  # a finishing send wakes the loop
        async with self._db.connect() as conn:
            due = await outbox.next_due(conn)
        if due is None:
            return opts.poll
        return min(opts.poll, max(0.0, (due - self._clock.now()).total_seconds()))

    def _spawn(self, batch: Batch) -> None:
        task = asyncio.get_running_loop().create_task(
            self._deliver(batch), name=f"sms-send {batch.ids[0]}"
        )
        self._sends.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        self._wake.set()  # a slot is free
        if not task.cancelled() and task.exception() is not None:
            log.error("SMS send task failed", exc_info=task.exception())

    # --- one message ----------------------------------------------------------------------------

    async def _deliver(self, batch: Batch) -> None:
        if batch.attempts > 1:
            remaining = await self._drop_already_sent(batch)
            if remaining is None:
                return
            batch = remaining
        where = f"{batch.template} to {mask_phone(batch.phone)} (outbox {batch.ids})"
        try:
            params = render(batch.template, batch.params)
        except ValueError as err:
            await self._give_up(batch, f"sms_bad_params: {err}", where)
            return
        try:
            result = await self._provider.send(
                phone=batch.phone,
                template=batch.template,
                params=params,
                out_id=batch.entries[0].out_id,
            )
        except ProviderError as err:
            await self._failed(batch, err, where)
            return
        except Exception as err:  # a bug or an SDK surprise: keep the entry, try later
            log.exception("SMS %s: unexpected error from the provider", where)
            surprise = ProviderError(
                "sms_unexpected", type(err).__name__, retryable=True, maybe_sent=True
            )
            await self._failed(batch, surprise, where)
            return
        async with self._db.begin() as conn:
            await outbox.mark_sent(
                conn,
                batch.ids,
                biz_id=result.biz_id,
                request_id=result.request_id,
                now=self._clock.now(),
            )
        self._metrics.sms.labels("sent").inc()
        if len(batch.entries) > 1:
            self._metrics.sms.labels("coalesced").inc(len(batch.entries) - 1)
        log.info("SMS %s sent, biz id %s", where, result.biz_id)

    async def _drop_already_sent(self, batch: Batch) -> Batch | None:
        """Before a retry: entries a receipt shows the provider took after all (an earlier
        attempt timed out) are marked sent, not sent again. None if nothing is left."""
        async with self._db.begin() as conn:
            done = await outbox.already_sent(conn, list(batch.entries))
            for entry_id, biz_id in done.items():
                await outbox.mark_sent(
                    conn, [entry_id], biz_id=biz_id, request_id="", now=self._clock.now()
                )
        if not done:
            return batch
        log.info("SMS outbox %s: a receipt shows an earlier attempt arrived", sorted(done))
        self._metrics.sms.labels("receipt_before_retry").inc(len(done))
        rest = [e for e in batch.entries if e.id not in done]
        # one phone's reminders, or a single entry: ``batches`` gives back one message
        return batches(rest)[0] if rest else None

    async def _failed(self, batch: Batch, err: ProviderError, where: str) -> None:
        retry = self._options.retry
        now = self._clock.now()
        if err.needs_attention:
            await self._give_up(batch, str(err), where)
            return
        if err.retryable and retry.gives_up(batch.attempts):
            await self._give_up(batch, f"{err} (after {batch.attempts} attempts)", where)
            return
        pause = retry.delay(
            batch.attempts, limited=err.backoff, maybe_sent=err.maybe_sent, rng=self._rng
        )
        async with self._db.begin() as conn:
            await outbox.release(
                conn,
                batch.ids,
                node_id=self.node_id,
                next_attempt_at=now + pause,
                error=str(err),
            )
        self._metrics.sms.labels("limited" if err.backoff else "retry").inc()
        log.warning(
            "SMS %s not sent (%s, attempt %d%s); next try in %ds",
            where,
            err.code,
            batch.attempts,
            ", may have arrived" if err.maybe_sent else "",
            pause.total_seconds(),
        )

    async def _give_up(self, batch: Batch, error: str, where: str) -> None:
        async with self._db.begin() as conn:
            await outbox.fail(conn, batch.ids, node_id=self.node_id, error=error)
        self._metrics.sms.labels("failed").inc(len(batch.entries))
        await self._refresh_attention()
        log.error("SMS %s failed and needs an administrator: %s", where, error)

    async def _refresh_attention(self) -> None:
        """The gauge counts failed entries in the database, so every node and a restarted
        one report the same number."""
        try:
            async with self._db.connect() as conn:
                count = await outbox.count_in_state(conn, "failed")
        except Exception:
            log.exception("could not count the SMS entries needing attention")
            return
        self._metrics.sms_attention.set(count)
