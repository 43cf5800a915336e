"""The work queue: deleted XRouters leave it for good (no resync, no retry timer, no
re-adding by their children's events)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import cast

from xrouter_operator.handlers import Queue
from xrouter_operator.reconcile import Outcome, Reconciler

KEY = ("ns", "gone")


class FakeReconciler:
    """Reconciles a key that exists until ``delete`` is called."""

    def __init__(self, retry: bool = False) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.exists = True
        self.retry = retry
        self.lock = threading.Lock()

    def reconcile(self, namespace: str, name: str) -> Outcome:
        with self.lock:
            self.calls[(namespace, name)] += 1
        if not self.exists:
            return Outcome("skipped", gone=True)
        return Outcome("error" if self.retry else "success", retry=self.retry)


async def _run(rec: FakeReconciler, scenario: str) -> Queue:
    q = Queue(cast(Reconciler, rec), resync_seconds=0.05, debounce=0.0)
    task = asyncio.create_task(q.run())
    try:
        q.add(KEY)  # the XRouter's ADDED event
        await asyncio.sleep(0.2)
        rec.exists = False
        if scenario == "deleted-event":
            q.forget(KEY)  # its DELETED event ...
        q.touch(KEY)  # ... then garbage collection deletes a child: a child event
        await asyncio.sleep(0.3)
        before = rec.calls[KEY]
        await asyncio.sleep(0.5)  # ten resync periods
        assert rec.calls[KEY] == before, "a deleted XRouter is still being reconciled"
        assert KEY not in q.known and KEY not in q.timers
        return q
    finally:
        task.cancel()


def test_deleted_xrouter_is_not_requeued_by_child_events_or_resync() -> None:
    asyncio.run(_run(FakeReconciler(), "deleted-event"))


def test_a_missed_deleted_event_is_caught_by_the_reconcile() -> None:
    # The operator was down when the XRouter went away: the next reconcile finds nothing.
    asyncio.run(_run(FakeReconciler(), "no-deleted-event"))


def test_retry_timer_of_a_deleted_xrouter_is_cancelled() -> None:
    async def scenario() -> None:
        rec = FakeReconciler(retry=True)
        q = Queue(cast(Reconciler, rec), resync_seconds=3600, debounce=0.0)
        task = asyncio.create_task(q.run())
        try:
            q.add(KEY)
            await asyncio.sleep(0.1)
            assert KEY in q.timers  # an error schedules a retry
            q.forget(KEY)
            assert KEY not in q.timers
            await asyncio.sleep(2.5)  # past the first back-off (2 s +- 20 %)
            assert rec.calls[KEY] == 1
        finally:
            task.cancel()

    asyncio.run(scenario())
