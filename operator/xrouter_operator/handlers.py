"""kopf glue: watch events only enqueue a key; one worker reconciles each key.

Only ``@kopf.on.event`` handlers are used. They keep no state on the object, so kopf
never adds a finalizer and never writes annotations: deletion works with the operator
down, and a steady state makes no writes. Children are watched with our labels as a
server-side label selector (``configure``) and map back to their XRouter through
``xrouter.io/instance``. Secrets are not watched at all (see ``kinds``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine, Mapping
from typing import Any

import kopf

from . import metrics
from .kinds import WATCHED_CHILDREN, XROUTER
from .kube import Kube, KubeError
from .naming import INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER
from .reconcile import Reconciler

log = logging.getLogger("xrouter_operator")

Key = tuple[str, str]

_tasks: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


class Queue:
    """Deduplicating work queue: a key is reconciled by one task at a time; events that
    arrive meanwhile cause exactly one more run."""

    def __init__(self, reconciler: Reconciler, resync_seconds: float, debounce: float = 0.3) -> None:
        self.reconciler = reconciler
        self.resync_seconds = resync_seconds
        self.debounce = debounce
        self.known: set[Key] = set()
        self.dirty: set[Key] = set()
        self.running: set[Key] = set()
        self.failures: dict[Key, int] = {}
        self.timers: dict[Key, asyncio.TimerHandle] = {}
        self.wake = asyncio.Event()

    def add(self, key: Key) -> None:
        """An XRouter event: remember the key for resyncs and reconcile it soon."""
        self.known.add(key)
        self.touch(key)

    def touch(self, key: Key) -> None:
        """A child event or a retry: reconcile soon, but do not make the key known. A
        child of a deleted XRouter (garbage collection sends its events after the
        XRouter's DELETED) must not bring the key back into the resync set."""
        self.dirty.add(key)
        self.wake.set()

    def forget(self, key: Key) -> None:
        self.known.discard(key)
        self.dirty.discard(key)
        self.failures.pop(key, None)
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        metrics.forget(*key)

    async def run(self) -> None:
        _spawn(self._resync())
        while True:
            await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(self.debounce)
            for key in list(self.dirty - self.running):
                self.dirty.discard(key)
                self.running.add(key)
                _spawn(self._one(key))

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            for key in list(self.known):
                self.add(key)

    async def _one(self, key: Key) -> None:
        retry = gone = False
        requeue_after: float | None = None
        with metrics.RECONCILE_DURATION.time():
            try:
                outcome = await asyncio.to_thread(self.reconciler.reconcile, *key)
                gone = outcome.gone
                metrics.RECONCILES.labels(result=outcome.result).inc()
                if outcome.result == "error":
                    metrics.ERRORS.inc()
                retry = outcome.retry
                requeue_after = outcome.requeue_after
                if outcome.writes:
                    log.info("reconciled %s/%s: %s", key[0], key[1], "; ".join(outcome.writes))
            except Exception as e:  # a bug or the API being down: log, count, retry later
                metrics.RECONCILES.labels(result="error").inc()
                metrics.ERRORS.inc()
                log.error("reconcile of %s/%s failed: %s", key[0], key[1], e, exc_info=not _is_api_error(e))
                retry = True
        self.running.discard(key)
        if gone:
            # No such XRouter (any more): nothing to resync or retry. Unless an event came
            # in meanwhile (it may have been re-created): then the next run decides.
            if key not in self.dirty:
                self.forget(key)
        elif retry:
            n = self.failures.get(key, 0) + 1
            self.failures[key] = n
            delay = min(300.0, 2.0**n) * (0.8 + 0.4 * random.random())
            old = self.timers.pop(key, None)
            if old is not None:
                old.cancel()
            self.timers[key] = asyncio.get_running_loop().call_later(delay, self._retry, key)
        else:
            self.failures.pop(key, None)
            if requeue_after is not None:
                # A rollout step under analysis: look again on time, whatever else happens.
                old = self.timers.pop(key, None)
                if old is not None:
                    old.cancel()
                self.timers[key] = asyncio.get_running_loop().call_later(requeue_after, self._retry, key)
        if key in self.dirty:
            self.wake.set()

    def _retry(self, key: Key) -> None:
        self.timers.pop(key, None)
        self.touch(key)


def _is_api_error(e: Exception) -> bool:
    return isinstance(e, KubeError | ConnectionError | TimeoutError)


_queue: Queue | None = None
RESYNC_SECONDS = 300.0


# What every child carries. Given to the API server as the watch's labelSelector, so
# objects that are not ours (every other Pod, ConfigMap, ... in the cluster) are neither
# sent to us nor kept in memory. The handlers' labels= filter alone is applied by kopf
# after the API server has sent everything.
CHILD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGER},{INSTANCE_LABEL}"


def configure(settings: kopf.OperatorSettings) -> None:
    settings.posting.enabled = False  # we post our own events, and only on changes
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    for k in WATCHED_CHILDREN:
        settings.watching.label_selectors[(k.group, k.version, k.plural)] = CHILD_SELECTOR


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _queue
    configure(settings)
    kube = await asyncio.to_thread(Kube.from_environment)
    _queue = Queue(Reconciler(kube), RESYNC_SECONDS)
    _spawn(_queue.run())


@kopf.on.event(XROUTER.group, XROUTER.version, XROUTER.plural)
async def _xrouter(type: str | None, namespace: str | None, name: str | None, **_: Any) -> None:
    if _queue is None or namespace is None or name is None:
        return
    if type == "DELETED":
        _queue.forget((namespace, name))
        return
    _queue.add((namespace, name))


async def _child(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
    instance = labels.get(INSTANCE_LABEL)
    if _queue is None or namespace is None or not instance:
        return
    _queue.touch((namespace, instance))


for _kind in WATCHED_CHILDREN:
    kopf.on.event(
        _kind.group,
        _kind.version,
        _kind.plural,
        id=f"child-{_kind.plural}",
        labels={MANAGED_BY_LABEL: MANAGER, INSTANCE_LABEL: kopf.PRESENT},
    )(_child)
