"""Fault injection for tasker_aio: resources, tasks, hooks and callers that misbehave on demand.

Five parts, usable on their own or together:

* :class:`FaultyResources` is an ``on_create``/``on_destroy`` pair whose calls fail or
  hang (for a bounded number of loop steps or seconds) when asked. A failure raises what
  ``create_fault``/``destroy_fault`` say (a :data:`FaultKind`): an ordinary exception,
  ``KeyboardInterrupt``, ``SystemExit``, a custom ``BaseException`` (:class:`HookFault`)
  or a *stray* ``CancelledError`` (one nobody asked for: the hook awaited a future that
  somebody else cancelled, see :func:`stray_cancel`). It records every creation and
  destruction and flags a resource used by two tasks at once, used after it was
  destroyed, destroyed twice or never destroyed.
* Task builders (:func:`succeed`, :func:`fail_healthy`, :func:`fail_unhealthy`,
  :func:`raise_base`, :func:`ignore_cancellation`, :func:`block_loop`,
  :func:`non_awaitable`, :func:`cancel_self`, :func:`cancel_into_timeout`,
  :func:`raise_stray_cancel`, :func:`kill_inside`, :func:`stop_inside`, or :func:`task`
  from a :class:`Step`) make tasks that hold their resource exclusively while they run.
  :func:`check_health` is the companion health check: :class:`UnhealthyFault` is
  unhealthy, everything else healthy.
* Hooks that raise on demand: :class:`ListLogger` (a logger whose next calls raise),
  :class:`FaultyCollector` (the default collector, whose next calls of a method raise
  and lose that one event); the :class:`Ledger` makes its ``check_health`` and
  ``retry_backoff`` raise when its ``health_raises``/``backoff_raises`` counters say so,
  and its callbacks raise, or shut the manager down, when asked.
* :class:`RandomCaller` awaits a call like an impatient client: with a seeded
  ``random.Random`` it sometimes cancels after a random number of loop steps and
  sometimes times out after a random delay.
* :class:`Ledger` puts them together around one :class:`~tasker_aio.TaskManager`. It
  submits work through every public entry point, shuts the manager down from wherever a
  user might (a task, a ``run_task`` function, a sync or async callback, another thread,
  the cancelled host task; :meth:`Ledger.shut_down`), predicts what each caller must get
  (value, the task's own error, ``MaxRetriesExceededError`` with every attempt,
  ``ManagerStoppedError``, ``QueueFullError`` or a cancellation) from the contract in
  SPEC.md and the README, and checks the invariants: every caller, future and callback
  answered exactly once; no task started after its caller cancelled it; resources
  exclusive and destroyed exactly once; workers never above ``max_worker_count``;
  ``stats()`` matching the work in flight; metrics totals matching its own count (less
  the events a failing collector lost).

Usage against your own configuration (read the ledger's problems, which it also keeps
checking while work runs)::

    import asyncio, random
    from tests.faults import FaultyCollector, Ledger, RandomCaller, Step

    async def main() -> None:
        ledger = Ledger(worker_count=4, max_worker_count=8, task_retries=1,
                        retry_backoff=lambda attempt: 0.0, burst_interval=0.01,
                        collector=FaultyCollector())
        caller = RandomCaller(random.Random(7), cancel_rate=0.2, timeout_rate=0.1)
        async with ledger.manager:
            ledger.resources.fail_creates = 1  # the next on_create fails...
            ledger.resources.create_fault = "stray"  # ...with a stray CancelledError
            ledger.health_raises, ledger.health_fault = 1, "keyboard"  # check_health too
            ledger.logger.fail_next = 2  # and the logger, twice
            ledger.collector.fail("record_completion", kind="base")  # and the collector
            ledger.submit((Step("healthy"), Step("ok")))  # a future: fails once, re-runs
            ledger.callback((Step("unhealthy"), Step("ok")), raises=True, raise_kind="exit")
            ledger.submit((Step("self_cancel"),))  # cancels its own asyncio task
            ledger.submit((Step("cancel_to_timeout"), Step("stray_cancel")), retries=1)
            for _ in range(20):  # impatient callers that cancel or time out at random
                ledger.spawn(ledger.ticket((Step("ok", steps=5),), "await"), caller=caller)
            ledger.spawn(ledger.ticket((Step("fatal"),), "run_task"))
            ledger.map([(Step("ok"),), (Step("not_awaitable"),)], ordered=False)
            ledger.cancel_own_tasks()  # as an application cancelling every task
            await ledger.quiet()  # every caller has its answer
            ledger.assert_ok()  # the invariants hold so far
            ledger.shut_down("thread_kill")  # or "stop", "callback_kill", "run_task_kill", ...
            await ledger.finish()  # the shutdown asked for has run
        await ledger.settle()
        ledger.assert_ok(final=True)  # and after shutdown: all answered, all destroyed

    asyncio.run(main())

Task results are ticket numbers (``int``); a task's plan is a tuple of :class:`Step`,
one per attempt (the last one repeats), so ``(Step("healthy"), Step("ok"))`` fails
healthily once and then succeeds.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import astuple, dataclass
from functools import partial
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args

from tasker_aio import (
    Config,
    ManagerStoppedError,
    MaxRetriesExceededError,
    QueueFullError,
    ResourceCreationError,
    TaskLifecycleTimestamps,
    TaskManager,
    TaskMetrics,
    exponential_backoff,
    new_collector,
)

__all__ = [
    "AWAIT_METHODS",
    "CALLBACK_METHODS",
    "CARE_FAULTS",
    "COLLECTOR_METHODS",
    "FAULT_KINDS",
    "FUTURE_METHODS",
    "KNOWN_ENGINE_BUGS",
    "SHUTDOWN_HOWS",
    "STEP_KINDS",
    "BackoffFault",
    "CallbackFault",
    "CareFault",
    "CheckFault",
    "CollectorFault",
    "CollectorMethod",
    "CreateFault",
    "DestroyFault",
    "FatalFault",
    "FaultKind",
    "FaultyCare",
    "FaultyCollector",
    "FaultyResource",
    "FaultyResources",
    "HealthCheckFault",
    "HealthyFault",
    "HookFault",
    "Ledger",
    "ListLogger",
    "LoggerFault",
    "MapBatch",
    "Outcome",
    "Probe",
    "RandomCaller",
    "ResetFault",
    "ShutdownHow",
    "Step",
    "StepKind",
    "Stoppable",
    "ThreadCall",
    "Ticket",
    "UnhealthyFault",
    "block_loop",
    "cancel_and_return",
    "cancel_into_timeout",
    "cancel_self",
    "check_health",
    "check_health_cancel_unhealthy",
    "fail_healthy",
    "fail_unhealthy",
    "ignore_cancellation",
    "kill_inside",
    "make_fault",
    "non_awaitable",
    "raise_base",
    "raise_fault",
    "raise_stray_cancel",
    "stop_inside",
    "stray_cancel",
    "succeed",
    "task",
]

T = TypeVar("T")

# ------------------------------------------------------------------------- faults


class HealthyFault(Exception):
    """A task failure that leaves the resource usable (:func:`check_health` -> True)."""


class UnhealthyFault(Exception):
    """A task failure that breaks the resource (:func:`check_health` -> False)."""


class FatalFault(BaseException):
    """A ``BaseException`` that is not an ``Exception``, as a task may raise."""


class HookFault(BaseException):
    """A ``BaseException`` that is not an ``Exception``, raised by a hook on demand."""


class CreateFault(ConnectionError):
    """Raised by an injected ``on_create`` failure."""


class DestroyFault(ConnectionError):
    """Raised by an injected ``on_destroy`` failure."""


class CallbackFault(Exception):
    """Raised by a callback that is told to fail."""


class HealthCheckFault(Exception):
    """Raised by a ``check_health`` that is told to fail."""


class BackoffFault(Exception):
    """Raised by a ``retry_backoff`` that is told to fail."""


class LoggerFault(Exception):
    """Raised by a logger method that is told to fail."""


class CollectorFault(Exception):
    """Raised by a collector method that is told to fail."""


FaultKind = Literal["error", "keyboard", "exit", "base", "stray"]
"""What an injected hook failure raises: ``"error"`` an ordinary exception (of the
hook's own fault class), ``"keyboard"`` ``KeyboardInterrupt``, ``"exit"``
``SystemExit``, ``"base"`` :class:`HookFault`, ``"stray"`` a stray ``CancelledError``."""
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)


def make_fault(kind: FaultKind, error: Callable[[str], BaseException], what: str) -> BaseException:
    """The exception an injected failure of ``kind`` raises; ``error`` makes the ordinary one.

    A ``"stray"`` one is a bare ``CancelledError`` (what a plain function can raise);
    async hooks raise a real stray one with :func:`stray_cancel`.
    """
    message = f"{what} (injected)"
    if kind == "error":
        return error(message)
    if kind == "keyboard":
        return KeyboardInterrupt(message)
    if kind == "exit":
        return SystemExit(message)
    if kind == "base":
        return HookFault(message)
    return asyncio.CancelledError(f"stray: {message}")


async def stray_cancel() -> None:
    """Raise a ``CancelledError`` nobody asked for: await a future somebody else cancels.

    The calling task is not cancelled (its ``cancelling()`` count does not move): this is
    what code awaiting a shared future sees when another party cancels that future.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    loop.call_soon(future.cancel)
    await future
    raise AssertionError("the stray future was not cancelled")  # pragma: no cover


async def raise_fault(kind: FaultKind, error: Callable[[str], BaseException], what: str) -> None:
    """Raise an injected failure of ``kind`` from async code (a real stray for ``"stray"``)."""
    if kind == "stray":
        await stray_cancel()
    raise make_fault(kind, error, what)


def check_health(error: BaseException) -> bool:
    """The companion health check: only :class:`UnhealthyFault` is unhealthy."""
    return not isinstance(error, UnhealthyFault)


def check_health_cancel_unhealthy(error: BaseException) -> bool:
    """Like :func:`check_health`, and a resource interrupted mid-use is unhealthy too."""
    return not isinstance(error, (UnhealthyFault, asyncio.CancelledError))


async def _hang(steps: int, seconds: float) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)
    if seconds > 0:
        await asyncio.sleep(seconds)


# ---------------------------------------------------------------------- resources


class FaultyResource:
    """One resource made by :class:`FaultyResources`; knows who holds it."""

    __slots__ = ("destroyed", "holder", "ident", "owner", "uses")

    def __init__(self, owner: FaultyResources, ident: int) -> None:
        self.owner = owner
        self.ident = ident
        self.holder: object = None
        self.destroyed = False
        self.uses = 0

    def __repr__(self) -> str:
        return f"FaultyResource({self.ident})"

    def acquire(self, who: object) -> None:
        """Start using the resource; flags sharing and use after destruction."""
        if self.destroyed:
            self.owner.violation(f"{self!r} used by {who!r} after it was destroyed")
        if self.holder is not None:
            self.owner.violation(f"{self!r} used by {who!r} while {self.holder!r} uses it")
        self.holder = who
        self.uses += 1

    def release(self, who: object) -> None:
        if self.holder is who:
            self.holder = None


class FaultyResources:
    """An ``on_create``/``on_destroy`` pair that fails or hangs on demand and keeps count.

    Set the public attributes at any time: ``fail_creates``/``fail_destroys`` make the
    next N calls fail, raising what ``create_fault``/``destroy_fault`` say (a
    :data:`FaultKind`; ``"error"``, the default, raises :class:`CreateFault`/
    :class:`DestroyFault`); ``create_steps`` and ``create_delay`` (``destroy_*``
    likewise) make every call first wait that many loop steps and seconds, a bounded
    hang; ``hang_creates`` makes the next N async calls hang until cancelled (only
    ``kill()`` can end them). A failing ``on_destroy`` still counts as the resource's one
    destruction.
    ``limit`` (a callable) bounds the resources in service (alive and not being
    destroyed) or being created at any moment; exceeding it is a violation.
    :meth:`made_fault` tells whether an exception is one that an injected ``on_create``
    failure raised.
    """

    def __init__(
        self, *, limit: Callable[[], int] | None = None, keep_history: bool = True
    ) -> None:
        self.limit = limit
        self.fail_creates = 0
        self.fail_destroys = 0
        self.create_fault: FaultKind = "error"
        self.destroy_fault: FaultKind = "error"
        self.hang_creates = 0
        self.hung = 0  # on_create calls that hung until cancelled
        self.create_steps = 0
        self.create_delay = 0.0
        self.destroy_steps = 0
        self.destroy_delay = 0.0
        self.created = 0
        self.destroyed = 0
        self.creating = 0
        self.create_failures = 0
        self.destroy_failures = 0
        self.peak = 0  # most resources alive or being created at once
        # max_resources: live resources (alive, being created or being destroyed, less
        # the destructions abandoned after destroy_timeout) above it are a violation.
        self.cap: int | None = None
        self.abandoned: set[int] = set()  # idents whose on_destroy was abandoned, still running
        self.live_peak = 0  # most live resources at once, as max_resources counts them
        self.alive: dict[int, FaultyResource] = {}
        self.history: list[FaultyResource] | None = [] if keep_history else None
        self.violations: list[str] = []
        self.create_errors: deque[BaseException] = deque(maxlen=64)  # the last ones raised

    def violation(self, message: str) -> None:
        if len(self.violations) < 100:
            self.violations.append(message)

    @property
    def live(self) -> int:
        """Live resources as ``max_resources`` counts them (see ``cap``)."""
        return len(self.alive) - len(self.abandoned) + self.creating

    def abandon(self, ident: int) -> None:
        """The manager gave up waiting for the ``on_destroy`` of resource ``ident``."""
        if ident in self.alive:
            self.abandoned.add(ident)

    def made_fault(self, error: BaseException | None) -> bool:
        """Whether ``error`` is what one of the last injected ``on_create`` failures raised."""
        return any(error is raised for raised in self.create_errors)

    async def create(self) -> FaultyResource:
        """``on_create``: an async factory."""
        self._creation_starts()
        try:
            await _hang(self.create_steps, self.create_delay)
            if self.hang_creates > 0:
                self.hang_creates -= 1
                self.hung += 1
                await asyncio.sleep(3600)  # until cancelled
            kind = self._create_fails()
            if kind is not None:
                try:
                    await raise_fault(kind, CreateFault, "on_create failure")
                except BaseException as exc:
                    self.create_errors.append(exc)
                    raise
            return self._creation_ends()
        finally:
            self.creating -= 1

    def create_sync(self) -> FaultyResource:
        """``on_create`` as a plain function (it cannot hang)."""
        self._creation_starts()
        try:
            kind = self._create_fails()
            if kind is not None:
                error = make_fault(kind, CreateFault, "on_create failure")
                self.create_errors.append(error)
                raise error
            return self._creation_ends()
        finally:
            self.creating -= 1

    async def destroy(self, resource: FaultyResource) -> None:
        """``on_destroy``: an async function; flags being cancelled (it must be shielded)."""
        first = self._destruction_starts(resource)
        try:
            await _hang(self.destroy_steps, self.destroy_delay)
        except asyncio.CancelledError:
            self.violation(f"on_destroy({resource!r}) was cancelled; it must run shielded")
            raise
        finally:
            self._destruction_ends(resource, first)
        kind = self._destroy_fails()
        if kind is not None:
            await raise_fault(kind, DestroyFault, "on_destroy failure")

    def destroy_sync(self, resource: FaultyResource) -> None:
        """``on_destroy`` as a plain function."""
        self._destruction_ends(resource, self._destruction_starts(resource))
        kind = self._destroy_fails()
        if kind is not None:
            raise make_fault(kind, DestroyFault, "on_destroy failure")

    def _create_fails(self) -> FaultKind | None:
        if self.fail_creates <= 0:
            return None
        self.fail_creates -= 1
        self.create_failures += 1
        return self.create_fault

    def _destroy_fails(self) -> FaultKind | None:
        if self.fail_destroys <= 0:
            return None
        self.fail_destroys -= 1
        self.destroy_failures += 1
        return self.destroy_fault

    def _creation_starts(self) -> None:
        self.creating += 1
        self.peak = max(self.peak, len(self.alive) + self.creating)
        # A replacement is created while the resource it replaces is destroyed, so
        # those being destroyed do not count against the workers' bound.
        live = sum(not r.destroyed for r in self.alive.values()) + self.creating
        self.live_peak = max(self.live_peak, self.live)
        if self.cap is not None and self.live > self.cap:
            self.violation(
                f"{self.live} live resources (alive, being created or being destroyed),"
                f" above max_resources {self.cap}"
            )
        if self.limit is not None:
            bound = self.limit()
            if live > bound:
                self.violation(
                    f"{live} resources in service or being created, above the bound {bound}"
                )

    def _creation_ends(self) -> FaultyResource:
        self.created += 1
        resource = FaultyResource(self, self.created)
        self.alive[resource.ident] = resource
        if self.history is not None:
            self.history.append(resource)
        return resource

    def _destruction_starts(self, resource: FaultyResource) -> bool:
        if not isinstance(resource, FaultyResource) or resource.owner is not self:
            self.violation(f"on_destroy given {resource!r}, which on_create never made")
            return False
        if resource.holder is not None:
            self.violation(f"{resource!r} destroyed while {resource.holder!r} uses it")
        if resource.destroyed:
            self.violation(f"{resource!r} destroyed twice")
            return False
        resource.destroyed = True
        return True

    def _destruction_ends(self, resource: FaultyResource, first: bool) -> None:
        if first:
            del self.alive[resource.ident]
            self.abandoned.discard(resource.ident)
            self.destroyed += 1

    def problems(self, *, finished: bool = False) -> list[str]:
        """Violations so far; with ``finished``, also resources never destroyed."""
        found = list(self.violations)
        if finished:
            if self.creating:
                found.append(f"{self.creating} on_create calls still running after shutdown")
            if self.alive:
                found.append(f"resources never destroyed: {sorted(self.alive)}")
            if self.created != self.destroyed:
                found.append(f"created {self.created} resources but destroyed {self.destroyed}")
        return found


# ------------------------------------------------------------------- resource care

CareFault = Literal["false", "error", "keyboard", "exit", "base", "stray", "hang"]
"""What an injected ``on_reset``/``check_resource`` fault does: ``"false"`` the check
says the resource is not usable (an ``on_reset`` returns normally), ``"hang"`` it waits
until cancelled, for ``hang_seconds`` at most (then succeeds; a plain function cannot
hang), anything else raises as the :data:`FaultKind` of that name."""
CARE_FAULTS: tuple[CareFault, ...] = get_args(CareFault)


class ResetFault(Exception):
    """Raised by an injected ``on_reset`` failure."""


class CheckFault(Exception):
    """Raised by an injected ``check_resource`` failure."""


class FaultyCare:
    """``on_reset`` and ``check_resource`` for :class:`FaultyResources`, faulty on demand.

    ``fail_resets``/``fail_checks`` make the next N calls do what ``reset_fault``/
    ``check_fault`` say (a :data:`CareFault`); ``steps`` makes every async call first
    take that many loop steps. Each call holds its resource exclusively while it runs,
    so a task (or another hook) using it meanwhile, or its destruction, is flagged, as is
    a call on a resource already destroyed. ``listener`` hears every check's verdict as
    the manager will see it (True: it returned something true), when the check ends.
    """

    def __init__(self, resources: FaultyResources, *, hang_seconds: float = 0.01) -> None:
        self.resources = resources
        self.fail_resets = 0
        self.reset_fault: CareFault = "error"
        self.fail_checks = 0
        self.check_fault: CareFault = "false"
        self.steps = 0
        self.hang_seconds = hang_seconds
        self.resets = 0
        self.checks = 0
        self.faults: Counter[str] = Counter()
        self.listener: Callable[[FaultyResource, bool], None] | None = None

    def _begin(self, hook: str, resource: FaultyResource) -> object:
        if not isinstance(resource, FaultyResource) or resource.owner is not self.resources:
            self.resources.violation(f"{hook} given {resource!r}, which on_create never made")
            return None
        who = f"{hook} #{self.resets + self.checks}"
        resource.acquire(who)
        return who

    def _fault(self, hook: str) -> CareFault | None:
        if hook == "on_reset":
            if self.fail_resets <= 0:
                return None
            self.fail_resets -= 1
            kind = self.reset_fault
        else:
            if self.fail_checks <= 0:
                return None
            self.fail_checks -= 1
            kind = self.check_fault
        self.faults[f"{hook} {kind}"] += 1
        return kind

    async def _act(self, hook: str, kind: CareFault | None) -> bool:
        await _hang(self.steps, 0.0)
        if kind is None:
            return True
        if kind == "false":
            return hook == "on_reset"
        if kind == "hang":
            await asyncio.sleep(self.hang_seconds)  # until cancelled, bounded
            return True
        await raise_fault(kind, ResetFault if hook == "on_reset" else CheckFault, hook)
        raise AssertionError("raise_fault returned")  # pragma: no cover

    def _act_sync(self, hook: str, kind: CareFault | None) -> bool:
        if kind is None or kind == "hang":
            return True
        if kind == "false":
            return hook == "on_reset"
        raise make_fault(kind, ResetFault if hook == "on_reset" else CheckFault, hook)

    async def reset(self, resource: FaultyResource) -> None:
        """``on_reset``: an async function."""
        self.resets += 1
        who = self._begin("on_reset", resource)
        try:
            await self._act("on_reset", self._fault("on_reset"))
        finally:
            resource.release(who)

    def reset_sync(self, resource: FaultyResource) -> None:
        """``on_reset`` as a plain function."""
        self.resets += 1
        who = self._begin("on_reset", resource)
        try:
            self._act_sync("on_reset", self._fault("on_reset"))
        finally:
            resource.release(who)

    async def check(self, resource: FaultyResource) -> bool:
        """``check_resource``: an async function."""
        self.checks += 1
        who = self._begin("check_resource", resource)
        usable = False
        try:
            usable = await self._act("check_resource", self._fault("check_resource"))
            return usable
        finally:
            resource.release(who)
            self._heard(resource, usable)

    def check_sync(self, resource: FaultyResource) -> bool:
        """``check_resource`` as a plain function."""
        self.checks += 1
        who = self._begin("check_resource", resource)
        usable = False
        try:
            usable = self._act_sync("check_resource", self._fault("check_resource"))
            return usable
        finally:
            resource.release(who)
            self._heard(resource, usable)

    def _heard(self, resource: FaultyResource, usable: bool) -> None:
        if self.listener is not None and isinstance(resource, FaultyResource):
            self.listener(resource, usable)


# -------------------------------------------------------------------------- tasks


class Probe(Protocol):
    """Told when an attempt of a task starts and how it ends."""

    def started(self, resource: FaultyResource) -> None: ...
    def finished(self, resource: FaultyResource, error: BaseException | None) -> None: ...


class Stoppable(Protocol):
    """What a task that shuts the manager down calls (a TaskManager, or a Ledger)."""

    async def stop(self) -> None: ...
    async def kill(self) -> None: ...


StepKind = Literal[
    "ok",
    "healthy",
    "unhealthy",
    "fatal",
    "keyboard",
    "exit",
    "ignore_cancel",
    "block",
    "not_awaitable",
    "self_cancel",
    "cancel_and_return",
    "cancel_to_timeout",
    "stray_cancel",
    "stop_inside",
    "kill",
]
STEP_KINDS: tuple[StepKind, ...] = get_args(StepKind)


@dataclass(frozen=True, slots=True)
class Step:
    """What one attempt of a task does.

    ``kind``: ``"ok"`` returns the value; ``"healthy"``/``"unhealthy"``/``"fatal"`` raise
    :class:`HealthyFault`/:class:`UnhealthyFault`/:class:`FatalFault`, ``"keyboard"``/
    ``"exit"`` ``KeyboardInterrupt``/``SystemExit``; ``"ignore_cancel"`` swallows every
    cancellation for ``steps`` loop steps, then returns (or re-raises the last one if
    ``then_raise``); ``"block"`` blocks the whole loop with ``time.sleep(block)``;
    ``"not_awaitable"`` is a plain function returning the value; ``"self_cancel"``
    cancels its own asyncio task and awaits (:func:`cancel_self`); ``"cancel_and_return"``
    cancels it and returns the value before any await (:func:`cancel_and_return`);
    ``"cancel_to_timeout"`` does so and turns the cancellation into ``TimeoutError``
    without ``uncancel()`` (:func:`cancel_into_timeout`); ``"stray_cancel"`` raises a
    stray ``CancelledError`` (:func:`raise_stray_cancel`); ``"stop_inside"`` awaits
    ``stop()``, which must refuse at once, then returns (:func:`stop_inside`);
    ``"kill"`` awaits ``kill()``, which must cancel it (:func:`kill_inside`).
    ``steps``: loop steps (``await asyncio.sleep(0)``) taken before the outcome.
    """

    kind: StepKind = "ok"
    steps: int = 0
    then_raise: bool = False
    block: float = 0.001


TaskFn = Callable[[FaultyResource], Any]


async def _attempt(
    resource: FaultyResource, probe: Probe | None, body: Callable[[], Awaitable[T]]
) -> T:
    """One attempt: hold ``resource`` exclusively and tell ``probe`` how it went."""
    who: object = probe if probe is not None else body
    resource.acquire(who)
    if probe is not None:
        probe.started(resource)
    error: BaseException | None = None
    try:
        return await body()
    except BaseException as exc:
        error = exc
        raise
    finally:
        resource.release(who)
        if probe is not None:
            probe.finished(resource, error)


async def _steps(steps: int) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)


async def _value_after(steps: int, value: T) -> T:
    await _steps(steps)
    return value


async def _raise_after(steps: int, error: BaseException) -> Any:
    await _steps(steps)
    raise error


async def _ignoring(steps: int, then_raise: bool, value: T) -> T:
    swallowed: asyncio.CancelledError | None = None
    for _ in range(max(steps, 1)):
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError as exc:  # deliberately misbehaving
            swallowed = exc
    if swallowed is not None and then_raise:
        raise swallowed
    return value


async def _blocking(seconds: float, value: T) -> T:
    time.sleep(seconds)  # noqa: ASYNC251 - the fault: it blocks the event loop
    return value


async def _cancelling_self(steps: int, into_timeout: bool) -> Any:
    await _steps(steps)
    current = asyncio.current_task()
    assert current is not None, "a task runs in an asyncio task"
    current.cancel()
    if not into_timeout:
        await asyncio.sleep(0)  # raises the CancelledError asked for just now
    else:
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:  # the fault: no uncancel(), a pending count is left
            raise TimeoutError("turned its own cancellation into a timeout (injected)") from None
    raise AssertionError("a task that cancelled its own asyncio task was not cancelled")


async def _cancelling_then_returning(steps: int, value: T) -> T:
    await _steps(steps)
    current = asyncio.current_task()
    assert current is not None, "a task runs in an asyncio task"
    current.cancel()
    return value  # before the cancellation could be delivered


async def _stray(steps: int) -> Any:
    await _steps(steps)
    await stray_cancel()


async def _stopping_inside(manager: Stoppable, steps: int, value: T) -> T:
    await _steps(steps)
    try:
        await manager.stop()
    except RuntimeError as exc:
        if "would wait for itself" not in str(exc):
            raise
        return value
    raise AssertionError("stop() awaited inside a task returned instead of refusing")


async def _killing_inside(manager: Stoppable, steps: int) -> Any:
    await _steps(steps)
    await manager.kill()  # cancels this very task
    raise AssertionError("kill() awaited inside a task returned instead of cancelling it")


def succeed(value: T, *, steps: int = 0, probe: Probe | None = None) -> TaskFn:
    """A task that returns ``value`` after ``steps`` loop steps."""
    return lambda resource: _attempt(resource, probe, partial(_value_after, steps, value))


def fail_healthy(
    *, steps: int = 0, error: BaseException | None = None, probe: Probe | None = None
) -> TaskFn:
    """A task that raises a fresh :class:`HealthyFault` (or ``error``) each attempt."""

    def run(resource: FaultyResource) -> Awaitable[Any]:
        exc = error if error is not None else HealthyFault("healthy failure (injected)")
        return _attempt(resource, probe, partial(_raise_after, steps, exc))

    return run


def fail_unhealthy(*, steps: int = 0, probe: Probe | None = None) -> TaskFn:
    """A task that raises a fresh :class:`UnhealthyFault`: its resource is broken."""

    def run(resource: FaultyResource) -> Awaitable[Any]:
        exc = UnhealthyFault("unhealthy failure (injected)")
        return _attempt(resource, probe, partial(_raise_after, steps, exc))

    return run


_BASE_ERRORS: dict[str, Callable[[str], BaseException]] = {
    "fatal": FatalFault,
    "keyboard": KeyboardInterrupt,
    "exit": SystemExit,
}


def raise_base(
    *,
    steps: int = 0,
    probe: Probe | None = None,
    kind: Literal["fatal", "keyboard", "exit"] = "fatal",
) -> TaskFn:
    """A task that raises a fresh ``BaseException`` that is not an ``Exception``.

    ``kind``: :class:`FatalFault` (``"fatal"``), ``KeyboardInterrupt`` or ``SystemExit``.
    """

    def run(resource: FaultyResource) -> Awaitable[Any]:
        error = _BASE_ERRORS[kind](f"{kind} (injected)")
        return _attempt(resource, probe, partial(_raise_after, steps, error))

    return run


def ignore_cancellation(
    value: T, *, steps: int, then_raise: bool = False, probe: Probe | None = None
) -> TaskFn:
    """A task that swallows cancellation for ``steps`` loop steps (bounded), then returns.

    With ``then_raise`` it re-raises the last cancellation it swallowed, if any.
    """
    return lambda resource: _attempt(resource, probe, partial(_ignoring, steps, then_raise, value))


def block_loop(value: T, *, seconds: float = 0.001, probe: Probe | None = None) -> TaskFn:
    """A task that blocks the whole event loop with ``time.sleep(seconds)``."""
    return lambda resource: _attempt(resource, probe, partial(_blocking, seconds, value))


def non_awaitable(value: T, *, probe: Probe | None = None) -> TaskFn:
    """A plain (sync) function: it returns ``value`` itself, not an awaitable."""

    def run(resource: FaultyResource) -> T:
        resource.acquire(probe if probe is not None else run)
        if probe is not None:
            probe.started(resource)
        resource.release(probe if probe is not None else run)
        if probe is not None:
            probe.finished(resource, None)
        return value

    return run


def cancel_self(*, steps: int = 0, probe: Probe | None = None) -> TaskFn:
    """A task that cancels its own asyncio task (``current_task().cancel()``), then awaits.

    On a worker it fails with that ``CancelledError`` (its caller gets it as the task's
    error) and the worker carries on; in ``run_task`` it cancels the caller's task.
    """
    return lambda resource: _attempt(resource, probe, partial(_cancelling_self, steps, False))


def cancel_and_return(value: T, *, steps: int = 0, probe: Probe | None = None) -> TaskFn:
    """A task that cancels its own asyncio task, then returns ``value`` before any await.

    The cancellation is still pending when it returns: on a worker it must be withdrawn
    (the task succeeded; the next task on that worker must not see it); in ``run_task``
    it is the caller's own, and must reach the caller.
    """
    return lambda resource: _attempt(
        resource, probe, partial(_cancelling_then_returning, steps, value)
    )


def cancel_into_timeout(*, steps: int = 0, probe: Probe | None = None) -> TaskFn:
    """A task that cancels its own asyncio task and turns that into ``TimeoutError``.

    It does not ``uncancel()``, as careless timeout code does: the asyncio task is left
    with a pending cancel count that must not hit the next task.
    """
    return lambda resource: _attempt(resource, probe, partial(_cancelling_self, steps, True))


def raise_stray_cancel(*, steps: int = 0, probe: Probe | None = None) -> TaskFn:
    """A task that raises a stray ``CancelledError`` (see :func:`stray_cancel`): a failure."""
    return lambda resource: _attempt(resource, probe, partial(_stray, steps))


def stop_inside(
    manager: Stoppable, value: T, *, steps: int = 0, probe: Probe | None = None
) -> TaskFn:
    """A task that awaits ``manager.stop()``, which must refuse; then it returns ``value``.

    ``stop()`` awaited inside one of the manager's own tasks must raise RuntimeError at
    once; anything else (another error, or ``stop()`` returning) fails the task.
    """
    return lambda resource: _attempt(
        resource, probe, partial(_stopping_inside, manager, steps, value)
    )


def kill_inside(manager: Stoppable, *, steps: int = 0, probe: Probe | None = None) -> TaskFn:
    """A task that awaits ``manager.kill()``, which must cancel the task itself."""
    return lambda resource: _attempt(resource, probe, partial(_killing_inside, manager, steps))


def task(
    step: Step, value: T, probe: Probe | None = None, manager: Stoppable | None = None
) -> TaskFn:
    """The task that ``step`` describes, returning ``value`` when it succeeds.

    ``manager`` is what ``"stop_inside"`` and ``"kill"`` steps call.
    """
    kind = step.kind
    if kind == "ok":
        return succeed(value, steps=step.steps, probe=probe)
    if kind == "healthy":
        return fail_healthy(steps=step.steps, probe=probe)
    if kind == "unhealthy":
        return fail_unhealthy(steps=step.steps, probe=probe)
    if kind in ("fatal", "keyboard", "exit"):
        return raise_base(steps=step.steps, probe=probe, kind=kind)
    if kind == "ignore_cancel":
        return ignore_cancellation(value, steps=step.steps, then_raise=step.then_raise, probe=probe)
    if kind == "block":
        return block_loop(value, seconds=step.block, probe=probe)
    if kind == "self_cancel":
        return cancel_self(steps=step.steps, probe=probe)
    if kind == "cancel_and_return":
        return cancel_and_return(value, steps=step.steps, probe=probe)
    if kind == "cancel_to_timeout":
        return cancel_into_timeout(steps=step.steps, probe=probe)
    if kind == "stray_cancel":
        return raise_stray_cancel(steps=step.steps, probe=probe)
    if kind in ("stop_inside", "kill"):
        if manager is None:
            raise ValueError(f"a {kind!r} step needs the manager to call")
        if kind == "kill":
            return kill_inside(manager, steps=step.steps, probe=probe)
        return stop_inside(manager, value, steps=step.steps, probe=probe)
    return non_awaitable(value, probe=probe)


# ------------------------------------------------------------------------ callers

CallKind = Literal["value", "error", "cancelled", "timeout"]


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """How a :meth:`RandomCaller.call` ended."""

    kind: CallKind
    value: T | None = None
    error: BaseException | None = None


class RandomCaller:
    """Awaits calls like an impatient client, reproducibly (a seeded ``random.Random``).

    Each :meth:`call` draws one of: wait for the answer; cancel the calling task after a
    random number (0..``max_steps``) of loop steps; or time out after a random delay
    (0..``max_timeout`` seconds), which is a cancellation scheduled with
    ``loop.call_later`` exactly as ``asyncio.timeout()`` does it. ``on_cancel`` is called
    right before the cancellation is delivered (a ledger marks it there).
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        cancel_rate: float = 0.1,
        timeout_rate: float = 0.1,
        max_steps: int = 20,
        max_timeout: float = 0.005,
    ) -> None:
        self.rng = rng
        self.cancel_rate = cancel_rate
        self.timeout_rate = timeout_rate
        self.max_steps = max_steps
        self.max_timeout = max_timeout
        self.counts: Counter[str] = Counter()

    async def call(
        self, make: Callable[[], Awaitable[T]], *, on_cancel: Callable[[], object] | None = None
    ) -> Outcome[T]:
        """Await ``make()``, maybe giving up at a random point; never raises for it."""
        current = asyncio.current_task()
        assert current is not None, "RandomCaller.call must run in a task"
        loop = asyncio.get_running_loop()
        draw = self.rng.random()
        mode = (
            "cancel"
            if draw < self.cancel_rate
            else "timeout"
            if draw < self.cancel_rate + self.timeout_rate
            else "wait"
        )
        fired = False
        over = False
        handle: asyncio.Handle | None = None
        base = current.cancelling()

        def fire() -> None:
            nonlocal fired, handle
            handle = None
            if over or current.done():
                return
            fired = True
            if on_cancel is not None:
                on_cancel()
            current.cancel()

        def tick(left: int) -> None:
            nonlocal handle
            if left <= 0:
                fire()
            else:
                handle = loop.call_soon(tick, left - 1)

        if mode == "cancel":
            handle = loop.call_soon(tick, self.rng.randint(0, self.max_steps))
        elif mode == "timeout":
            handle = loop.call_later(self.rng.uniform(0.0, self.max_timeout), fire)
        try:
            value = await make()
        except asyncio.CancelledError:
            if fired and current.uncancel() <= base:
                kind: CallKind = "timeout" if mode == "timeout" else "cancelled"
                self.counts[kind] += 1
                return Outcome(kind)
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            if fired:
                current.uncancel()  # the callee turned our cancel into an error
            self.counts["error"] += 1
            return Outcome("error", error=exc)
        finally:
            over = True
            if handle is not None:
                handle.cancel()
        if fired:
            current.uncancel()  # the callee swallowed our cancel
        self.counts["value"] += 1
        return Outcome("value", value=value)


# ------------------------------------------------------------------------- logger


class ListLogger:
    """A tasker_aio Logger that keeps the last records (debug is dropped) and counts.

    ``fail_next`` makes the next N calls (any level) raise what ``fail_kind`` says, after
    the record is kept; ``listener``, if set, hears every record above debug (level,
    text) first.
    """

    def __init__(self, keep: int = 200) -> None:
        self.records: deque[tuple[str, str]] = deque(maxlen=keep)
        self.counts: Counter[str] = Counter()
        self.fail_next = 0
        self.fail_kind: FaultKind = "error"
        self.failures = 0
        self.listener: Callable[[str, str], None] | None = None

    def _log(self, level: str, msg: str, args: tuple[Any, ...]) -> None:
        self.counts[level] += 1
        if level != "debug":  # debug is per task: not kept, not formatted
            text = msg % args if args else msg
            self.records.append((level, text))
            if self.listener is not None:
                self.listener(level, text)
        if self.fail_next > 0:
            self.fail_next -= 1
            self.failures += 1
            raise make_fault(self.fail_kind, LoggerFault, f"logger.{level} failure")

    def debug(self, msg: str, *args: Any) -> None:
        self._log("debug", msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._log("info", msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log("warning", msg, args)

    def error(self, msg: str, *args: Any) -> None:
        self._log("error", msg, args)


CollectorMethod = Literal[
    "record_arrival", "record_completion", "record_failure", "record_retry", "metrics"
]
COLLECTOR_METHODS: tuple[CollectorMethod, ...] = get_args(CollectorMethod)


class FaultyCollector:
    """The default collector behind a custom one's protocol calls, failing on demand.

    :meth:`fail` makes the next calls of a method raise (a :data:`FaultKind`); each such
    call loses its one event, counted in ``lost`` so that a :class:`Ledger` can still
    check the totals. While ``reading`` is set (the ledger reading ``metrics()`` for its
    own checks) ``metrics()`` does not fail.
    """

    def __init__(self, window: float = 10.0) -> None:
        self.inner = new_collector(window=window)
        self.fail_next: Counter[str] = Counter()
        self.fail_kind: FaultKind = "error"
        self.lost: Counter[str] = Counter()
        self.reading = False
        self.raised: deque[BaseException] = deque(maxlen=64)  # the last ones raised

    def made(self, error: BaseException) -> bool:
        """Whether ``error`` is what one of the last injected failures raised."""
        return any(error is raised for raised in self.raised)

    def fail(self, method: CollectorMethod, count: int = 1, kind: FaultKind = "error") -> None:
        """The next ``count`` calls of ``method`` raise ``kind``."""
        self.fail_next[method] += count
        self.fail_kind = kind

    def _call(self, method: CollectorMethod) -> None:
        if self.fail_next[method] > 0 and not (method == "metrics" and self.reading):
            self.fail_next[method] -= 1
            self.lost[method] += 1
            error = make_fault(self.fail_kind, CollectorFault, f"collector.{method} failure")
            self.raised.append(error)
            raise error

    def record_arrival(self) -> None:
        self._call("record_arrival")
        self.inner.record_arrival()

    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None:
        self._call("record_completion")
        self.inner.record_completion(stamps)

    def record_failure(self, stamps: TaskLifecycleTimestamps) -> None:
        self._call("record_failure")
        self.inner.record_failure(stamps)

    def record_retry(self) -> None:
        self._call("record_retry")
        self.inner.record_retry()

    def metrics(self) -> TaskMetrics:
        self._call("metrics")
        return self.inner.metrics()


# ------------------------------------------------------------------------ threads


class ThreadCall:
    """``fn(self)`` run in a thread of its own: a call of the manager from outside its loop.

    ``submitted`` is set by ``fn`` once its call is on its way (and when it ends);
    ``errors`` holds what ``fn`` raised, ``problems`` what it found wrong.
    """

    def __init__(self, name: str, fn: Callable[[ThreadCall], object]) -> None:
        self.name = name
        self.fn = fn
        self.submitted = threading.Event()
        self.errors: list[BaseException] = []
        self.problems: list[str] = []
        self.thread = threading.Thread(target=self._main, name=f"faults: {name}", daemon=True)

    def __repr__(self) -> str:
        return f"<ThreadCall {self.name} alive={self.alive} errors={self.errors!r}>"

    def start(self) -> None:
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def _main(self) -> None:
        try:
            self.fn(self)
        except BaseException as exc:  # reported by the ledger
            self.errors.append(exc)
        finally:
            self.submitted.set()


async def _contained(awaitable: Awaitable[T]) -> T | None:
    """Await ``awaitable``; a ``KeyboardInterrupt`` or ``SystemExit`` it raises ends here.

    A task may raise either, and its caller gets it unchanged; asyncio would re-raise it
    out of the event loop from the caller's task, so the ledger's caller tasks (which
    have judged the answer by then) stop it here.
    """
    try:
        return await awaitable
    except (KeyboardInterrupt, SystemExit):
        return None


# ------------------------------------------------------------------------- ledger

KNOWN_ENGINE_BUGS: frozenset[str] = frozenset()
"""Engine bugs this harness found that are not fixed yet, each with a strict-xfail test in
``tests/test_found_by_faults.py``. A :class:`Ledger` tolerates them (and the state machine
and the soak avoid triggering the first) so that the rest of the contract stays checked.
``TASKER_FAULTS_STRICT=1`` in the environment tolerates none, ``TASKER_FAULTS_STRICT=a,b``
none of those named. Remove a name once its test passes."""

_STRICT = os.environ.get("TASKER_FAULTS_STRICT", "")
if _STRICT:
    KNOWN_ENGINE_BUGS = (
        frozenset() if _STRICT in ("1", "all") else KNOWN_ENGINE_BUGS - set(_STRICT.split(","))
    )

ShutdownHow = Literal[
    "stop",
    "kill",
    "stop_timeout",
    "thread_stop",
    "thread_kill",
    "callback_stop",
    "callback_kill",
    "async_callback_stop",
    "async_callback_kill",
    "task_kill",
    "task_stop_inside",
    "run_task_kill",
    "run_task_stop_inside",
]
SHUTDOWN_HOWS: tuple[ShutdownHow, ...] = get_args(ShutdownHow)

Form = Literal["await", "future", "callback", "run_task", "map"]
AWAIT_METHODS = (
    "queue_task",
    "queue_task_with_priority",
    "queue_task_once",
    "queue_task_with_priority_once",
)
FUTURE_METHODS = (
    "submit",
    "queue_task_async",
    "queue_task_with_priority_async",
    "queue_task_once_async",
    "queue_task_with_priority_once_async",
)
CALLBACK_METHODS = (
    "queue_task_with_callback",
    "queue_task_with_priority_with_callback",
    "queue_task_once_with_callback",
    "queue_task_with_priority_once_with_callback",
)

_DEFAULT_METHODS: dict[str, str] = {
    "await": "queue_task",
    "future": "submit",
    "callback": "queue_task_with_callback",
    "run_task": "run_task",
    "map": "map",
}

# Ticket states (the model's view of a submission).
NEW = 0  # made, not submitted yet
PENDING = 1  # an awaiting submission that may still wait for room in a full queue
QUEUED = 2  # accepted, in a queue (or, for run_task, accepted and not started)
RUNNING = 3  # an attempt is running and the caller still waits
WAITING = 4  # failed healthily, waiting out its backoff
FINAL = 5  # its outcome is decided
REJECTED = 6  # never accepted (stopping, queue full, or withdrawn by its caller)
_STATE_NAMES = ("new", "pending", "queued", "running", "waiting", "final", "rejected")

_NOT_AWAITABLE = TypeError("task function returned a non-awaitable (model placeholder)")
_EPSILON = 0.005  # seconds of slack when deciding whether a backoff timer has fired
# Seconds within which kill() (and stop(timeout) past its timeout) must return: generous,
# for a loaded machine; on_destroy hangs the harness injects are a few loop steps.
_PROMPT = 5.0
_KILLED = "task manager was killed"
_ABANDONED = re.compile(
    r"on_destroy for FaultyResource\((\d+)\) still running after destroy_timeout"
)
_STOPPING = "task manager is shutting down"

Expect = tuple[str, object]


class Ticket:
    """One submission as the ledger models it; also the probe of its attempts."""

    __slots__ = (
        "accepted",
        "answers",
        "attempts",
        "caller",
        "cancel_outside",
        "cancelled",
        "due",
        "errors",
        "expect",
        "fail_pending",
        "form",
        "future",
        "healthy",
        "hit",
        "home",
        "ident",
        "in_attempt",
        "in_call",
        "ledger",
        "method",
        "once",
        "outcome",
        "plan",
        "queue",
        "retries",
        "runner",
        "state",
        "step",
        "unhealthy",
    )

    def __init__(
        self,
        ledger: Ledger,
        ident: int,
        form: Form,
        plan: Sequence[Step],
        method: str,
        priority: bool,
        once: bool,
        retries: int,
    ) -> None:
        self.ledger = ledger
        self.ident = ident
        self.form: Form = form
        self.plan = tuple(plan) or (Step(),)
        self.method = method
        self.home = "priority" if priority else "main"
        self.queue = self.home
        self.once = once
        self.retries = retries
        self.state = NEW
        self.accepted: bool | None = None  # None: not known (yet)
        self.cancelled = False
        self.in_call = False
        self.in_attempt = False
        self.fail_pending = False
        self.attempts = 0
        self.healthy = 0
        self.unhealthy = 0
        self.errors: list[BaseException] = []
        self.outcome = ""
        self.expect: Expect | None = None
        self.answers = 0
        self.due = 0.0
        self.step = self.plan[0]
        self.future: asyncio.Future[int] | None = None
        self.caller: asyncio.Task[Any] | None = None
        self.runner: asyncio.Task[Any] | None = None  # the asyncio task of the last attempt
        self.hit = False  # that task was cancelled from outside during the attempt
        self.cancel_outside = False  # run_task: the caller was cancelled outside fn

    def __repr__(self) -> str:
        return (
            f"<Ticket {self.ident} {self.form}/{self.method} {_STATE_NAMES[self.state]}"
            f" {self.outcome or '-'} plan={[s.kind for s in self.plan]}"
            f" attempts={self.attempts} answers={self.answers}>"
        )

    def fn(self, resource: FaultyResource) -> Any:
        """The task function handed to the manager; each call is one attempt."""
        step = self.plan[min(self.attempts, len(self.plan) - 1)]
        self.step = step
        return task(step, self.ident, self, self.ledger)(resource)

    def started(self, resource: FaultyResource) -> None:
        self.ledger._started(self)

    def finished(self, resource: FaultyResource, error: BaseException | None) -> None:
        self.ledger._finished(self, resource, error)


def _map_fn(resource: FaultyResource, ticket: Ticket) -> Any:
    return ticket.fn(resource)


class MapBatch:
    """One ``map()`` call: its consumer task and the tickets it pulled."""

    def __init__(self, ordered: bool, limit: int) -> None:
        self.ordered = ordered
        self.limit = limit
        self.pulled: list[Ticket] = []
        self.yielded: set[int] = set()
        self.consumer: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.closed = False
        self.values: list[int] = []

    def in_flight(self) -> list[Ticket]:
        return [
            t
            for t in self.pulled
            if t.ident not in self.yielded and t.state not in (REJECTED, NEW) and t.answers == 0
        ]


class Ledger:
    """A TaskManager over :class:`FaultyResources`, and a model of what it must do.

    ``config`` is passed to :class:`~tasker_aio.Config`; the ledger fills in
    ``on_create``/``on_destroy`` (from ``resources``), ``check_health``
    (:func:`check_health` unless given), ``logger`` (a :class:`ListLogger`, its own:
    it learns of ``kill()`` from its "task manager killed" record, whoever called it)
    and wraps ``check_health`` and ``retry_backoff`` to see each verdict and delay and
    to make them raise on demand (``health_raises``/``backoff_raises`` calls raise
    ``health_fault``/``backoff_fault``). A :class:`FaultyCollector` given as
    ``collector`` has its lost events taken into account. Submit through the ledger's
    methods, cancel through :meth:`cancel`/:meth:`note_cancel`, shut down through
    :meth:`stop`/:meth:`kill`/:meth:`shut_down` (or any way at all: a ``"kill"`` step,
    cancelling the task that entered the manager), and read :meth:`problems` between
    loop steps and at the end.

    The model follows SPEC.md: one arrival per accepted submission; a completion per
    value; a failure per task that ends with an error after running, or that its caller
    cancelled while it ran or waited out a backoff, or that kill() stopped after it ran;
    neither for a task discarded from its queue or killed before it ever ran.
    """

    def __init__(
        self,
        resources: FaultyResources | None = None,
        *,
        keep_history: bool = True,
        sync_factories: bool = False,
        tolerate: frozenset[str] = KNOWN_ENGINE_BUGS,
        on_reset: Literal["sync", "async"] | None = None,
        check_resource: Literal["sync", "async"] | None = None,
        **config: Any,
    ) -> None:
        if "logger" in config:
            raise ValueError("the ledger needs its own logger (it hears of kill() from it)")
        self.resources = resources if resources is not None else FaultyResources()
        self.resources.limit = self._resource_bound
        self.logger = ListLogger()
        self.logger.listener = self._heard
        inner_backoff = config.pop("retry_backoff", None) or exponential_backoff()
        settings: dict[str, Any] = {
            "on_create": (self.resources.create_sync if sync_factories else self.resources.create),
            "on_destroy": (
                self.resources.destroy_sync if sync_factories else self.resources.destroy
            ),
            "check_health": check_health,
            "logger": self.logger,
            "retry_backoff": self._observed(inner_backoff, None),
        }
        # Resource care: the ledger's FaultyCare, plain or async, if asked for.
        self.care = FaultyCare(self.resources)
        self.care.listener = self._check_ended
        if on_reset is not None:
            settings["on_reset"] = self.care.reset_sync if on_reset == "sync" else self.care.reset
        if check_resource is not None:
            settings["check_resource"] = (
                self.care.check_sync if check_resource == "sync" else self.care.check
            )
        settings.update(config)
        self.health: Callable[[BaseException], bool] | None = settings["check_health"]
        if self.health is not None:
            settings["check_health"] = self._checked_health
        collector = settings.get("collector")
        self.collector = collector if isinstance(collector, FaultyCollector) else None
        self.config: Config[FaultyResource] = Config(**settings)
        self.manager: TaskManager[FaultyResource, int] = TaskManager(self.config)
        workers: int = settings["worker_count"]
        self.worker_count = workers
        self.max_workers: int = settings.get("max_worker_count") or 2 * workers
        self.cap: int | None = settings.get("max_resources")
        self.resources.cap = self.cap
        pool = settings.get("resource_pool_size")
        if pool is None:  # as Config resolves it: worker_count, as far as the cap leaves room
            pool = workers if self.cap is None else min(workers, self.cap - workers)
        self.pool_size: int = pool
        # A healthy failure on a worker is followed by check_resource, whose verdict
        # decides whether it counts as unhealthy: those tickets wait for it, by resource.
        self.checks_failures = settings.get("check_resource") is not None
        self.judging: dict[int, tuple[Ticket, BaseException]] = {}
        self.max_retries: int = settings.get("max_retries", 3)
        self.task_retries: int = settings.get("task_retries", 0)
        self.queue_size: int = settings.get("max_queue_size", 0)
        self.keep_history = keep_history
        self.tolerate = tolerate
        # Hook faults on demand: the next N calls raise.
        self.health_raises = 0
        self.health_fault: FaultKind = "error"
        self.backoff_raises = 0
        self.backoff_fault: FaultKind = "error"
        self.hook_failures: Counter[str] = Counter()
        self._health_marks: dict[int, tuple[BaseException, FaultKind]] = {}
        # Seconds of slack when deciding whether a backoff timer has fired (a loop whose
        # clock is coarser or cached, as uvloop's is, needs more).
        self.epsilon = _EPSILON
        self.history: list[Ticket] = []
        self.live: dict[int, Ticket] = {}
        self.next_ident = 0
        self.violations: list[str] = []
        # The model's running totals.
        self.arrived = 0
        self.unsure = 0  # submissions whose acceptance cannot be known (cancelled waiting)
        self.completed = 0
        self.failed = 0
        self.ambiguous = 0  # failure or neither: cancelled as a backoff timer fired
        self.retried = 0
        self.neither = 0
        self.rejected = 0
        self.fail_pending = 0
        self.in_attempt_workers = 0
        self.run_in_flight = 0
        self.queued = {"main": 0, "priority": 0, "run": 0}
        self.maybe = {"main": 0, "priority": 0}
        # Cancels whose effect (a discard, a failure count) runs in a scheduled callback.
        self.lag = {"main": 0, "priority": 0, "failed": 0}
        self.waiting: set[Ticket] = set()
        self.stop_seen = False
        self.kill_seen = False  # kill() took effect while there was work to kill
        self.kills_heard = 0  # "task manager killed" records
        self._last_failed: Ticket | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        # Shutdowns requested by callbacks and threads, and what went wrong with them.
        self.shutdowns: list[asyncio.Future[Any]] = []
        self.threads: list[ThreadCall] = []
        self.shutdown_errors: list[str] = []
        self.open = 0  # tickets not answered yet
        self.forms: Counter[str] = Counter()

    # -------------------------------------------------------------- model state

    def _resource_bound(self) -> int:
        # Workers (base + burst, creating included) + the pool + temporaries of run_task.
        return self.max_workers + self.pool_size + self.run_in_flight

    def violation(self, message: str) -> None:
        if len(self.violations) < 100:
            self.violations.append(message)

    def _move(self, t: Ticket, state: int, queue: str | None = None) -> None:
        old = t.state
        if old == QUEUED:
            self.queued[t.queue] -= 1
        elif old == WAITING:
            self.waiting.discard(t)
        elif old == PENDING:
            self.maybe[t.home] -= 1
        if state == QUEUED:
            t.queue = queue or t.home
            self.queued[t.queue] += 1
        elif state == WAITING:
            self.waiting.add(t)
        elif state == PENDING:
            self.maybe[t.home] += 1
        t.state = state

    def _final(self, t: Ticket, outcome: str, expect: Expect) -> None:
        self._move(t, FINAL)
        t.outcome = outcome
        t.expect = expect
        if outcome == "completed":
            self.completed += 1
        elif outcome == "failed":
            self.failed += 1
        elif outcome == "ambiguous":
            self.ambiguous += 1
        else:
            self.neither += 1
        self._retire(t)

    def _reject(self, t: Ticket, why: str) -> None:
        self._move(t, REJECTED)
        t.accepted = False
        t.expect = (why, None)
        self.rejected += 1
        self._retire(t)

    def _accept(self, t: Ticket) -> None:
        t.accepted = True
        self.arrived += 1
        if t.form == "run_task":
            self._move(t, QUEUED, "run")
        else:
            self._move(t, QUEUED)

    def _resolve(self, t: Ticket, accepted: bool) -> None:
        """A PENDING submission turned out accepted (it ran or was killed) or not."""
        if t.accepted is None:
            t.accepted = accepted
            if accepted:
                self.arrived += 1
            if t.cancelled:
                self.unsure -= 1

    def _retire(self, t: Ticket) -> None:
        """Forget a decided, answered ticket that holds no resource (bounded memory)."""
        if t.state in (FINAL, REJECTED) and t.answers and not t.in_attempt and t.ident in self.live:
            del self.live[t.ident]

    def _sync(self) -> None:
        """Apply a shutdown the model has not seen yet: backoffs end at once."""
        if not self.stop_seen and self.manager.state in ("stopping", "stopped"):
            self.stop_seen = True
            for t in list(self.waiting):
                self._move(t, QUEUED)
        if not self.kills_heard and self.manager._run.killed:
            self.violation("kill() took effect without logging 'task manager killed'")
            self.kills_heard = 1  # once
        if self._last_failed is not None:
            self.violation(
                f"{self._last_failed!r}: the model expected a healthy re-run, but the manager"
                " never asked its backoff"
            )
            self._last_failed = None

    def _enter(self, t: Ticket) -> None:
        """An awaiting submission (or a map item) is being made, right now."""
        if self.manager.state != "running":
            t.expect = ("stopping", None)
            self._move(t, PENDING)  # answered with ManagerStoppedError at once
            return
        # A caller cancelled while waiting for room leaves the line only when it wakes
        # up (a step later, see _lag): until then a newcomer queues behind it.
        room = self.queue_size == 0 or (
            self.maybe[t.home] == 0
            and self.lag[t.home] == 0
            and self._live(t.home) < self.queue_size
        )
        if room:
            self._accept(t)
        else:
            self._move(t, PENDING)

    def _live(self, queue: str) -> int:
        stats = self.manager.stats()
        return stats.priority_tasks if queue == "priority" else stats.queued_tasks

    def _healthy(self, error: BaseException) -> bool:
        """The verdict the manager's check_health call on ``error`` must reach.

        If ``health_raises`` says the check fails next, it is marked to raise when the
        manager asks, and the contract's verdict for a failing check is "healthy".
        """
        if self.health is None:
            return True
        if self.health_raises > 0 and error is not _NOT_AWAITABLE:
            self.health_raises -= 1
            if len(self._health_marks) < 1000:
                self._health_marks[id(error)] = (error, self.health_fault)
            return True
        try:
            return bool(self.health(error))
        except BaseException:
            return True

    def _checked_health(self, error: BaseException) -> bool:
        """The check_health the manager calls: raises for an error marked by _healthy."""
        mark = self._health_marks.pop(id(error), None)
        if mark is not None and mark[0] is error:
            self.hook_failures["check_health"] += 1
            raise make_fault(mark[1], HealthCheckFault, "check_health failure")
        assert self.health is not None
        return self.health(error)

    def _observed(
        self, inner: Callable[[int], float], ticket: Ticket | None
    ) -> Callable[[int], float]:
        def backoff(attempt: int) -> float:
            delay = inner(attempt)
            t, self._last_failed = self._last_failed, None
            if ticket is not None and t is not ticket:
                self.violation(f"{ticket!r}'s backoff was called for another task")
            if t is None:
                self.violation("retry_backoff called with no healthy failure to re-run")
                return delay
            if attempt != t.healthy:
                self.violation(f"{t!r}: backoff({attempt}) for healthy re-run {t.healthy}")
            if self.backoff_raises > 0:  # the contract: a failing backoff re-runs at once
                self.backoff_raises -= 1
                self.hook_failures["retry_backoff"] += 1
                raise make_fault(self.backoff_fault, BackoffFault, "retry_backoff failure")
            if t.state == QUEUED and delay > 0 and self.manager.state == "running":
                self._move(t, WAITING)
                t.due = time.monotonic() + float(delay)
            return delay

        return backoff

    def _heard(self, level: str, text: str) -> None:
        """The manager logged ``text``: "task manager killed" is the moment kill() acts.

        A job of the manager's own that ended with an error, or an ``on_destroy`` whose
        task was cancelled (nobody here cancels it), is a violation.
        """
        if level == "info" and text == "task manager killed":
            self._kill_begins()
        elif level == "error" and (found := _ABANDONED.match(text)):
            self.resources.abandon(int(found.group(1)))
        elif level == "error" and (
            (text.startswith("tasker_aio: ") and " failed: " in text)
            or (text.startswith("on_destroy for ") and text.endswith(" was cancelled"))
        ):
            self.violation(f"logged {level}: {text}")

    def _kill_begins(self) -> None:
        """kill() is acting now, in this very step: decide every task it answers."""
        self.kills_heard += 1
        self._sync()
        if self.manager.state == "stopped":  # a kill() after the end: nothing to kill
            return
        self.kill_seen = True
        for t in list(self.live.values()):
            if t.form == "run_task":
                continue
            if t.state in (QUEUED, WAITING):
                self._final(t, "failed" if t.attempts else "neither", ("killed", None))
            elif t.state == RUNNING:
                self._final(t, "failed", ("killed", None))
            if t.fail_pending:  # kill() counts the interrupted task now
                t.fail_pending = False
                self.fail_pending -= 1

    # ------------------------------------------------------- attempts (probes)

    def _started(self, t: Ticket) -> None:
        self._sync()
        t.attempts += 1
        worker = t.form != "run_task"
        if t.in_attempt:
            self.violation(f"{t!r} started while an attempt of it was still running")
        t.in_attempt = True
        t.runner = asyncio.current_task()
        t.hit = False
        if worker:
            self.in_attempt_workers += 1
        state = t.state
        if state == PENDING:
            self._resolve(t, True)
        elif state == WAITING:
            now = time.monotonic()
            if self.manager.state == "running" and now < t.due - self.epsilon:
                self.violation(f"{t!r} re-ran {t.due - now:.3f}s before its backoff ended")
        elif state != QUEUED:
            why = (
                "after its caller cancelled it"
                if t.cancelled
                else "after it was answered"
                if state == FINAL
                else "before it was accepted"
            )
            self.violation(f"{t!r} started {why}")
            return
        self._move(t, RUNNING)

    def _finished(self, t: Ticket, resource: FaultyResource, error: BaseException | None) -> None:
        self._sync()
        if t.in_attempt:
            t.in_attempt = False
            if t.form != "run_task":
                self.in_attempt_workers -= 1
        if t.fail_pending and self.checks_failures and t.form != "run_task":
            # Its caller gave up while it ran: the worker counts the failure once
            # check_resource has judged a healthy one (see _check_ended).
            lib_error = _NOT_AWAITABLE if t.step.kind == "not_awaitable" else error
            if lib_error is not None and (self.health is None or self.health(lib_error)):
                self.judging[resource.ident] = (t, lib_error)
                return
        if t.fail_pending:
            t.fail_pending = False
            self.fail_pending -= 1
        if t.state != RUNNING:
            self._retire(t)
            return
        if isinstance(error, asyncio.CancelledError) and not self._explained(t):
            self.violation(
                f"{t!r} saw a CancelledError nobody asked for (not its own, its caller's,"
                " kill()'s, or one of its asyncio task from outside)"
            )
        lib_error = _NOT_AWAITABLE if t.step.kind == "not_awaitable" else error
        if t.form == "run_task":
            if lib_error is None:
                self._final(t, "completed", ("value", t.ident))
            else:
                self._healthy(lib_error)  # the verdict only decides the resource's fate
                self._final(t, "failed", ("error", lib_error))
            return
        if lib_error is None:
            self._final(t, "completed", ("value", t.ident))
            return
        healthy = self._healthy(lib_error)
        if healthy and self.checks_failures:
            # check_resource is asked next, on this resource: its verdict decides.
            if resource.ident in self.judging:
                self.violation(f"{t!r} failed on {resource!r}, which is still being judged")
            self.judging[resource.ident] = (t, lib_error)
            return
        self._conclude(t, lib_error, healthy)

    def _check_ended(self, resource: FaultyResource, usable: bool) -> None:
        """check_resource on ``resource`` just ended; a ticket waiting for it is decided."""
        judged = self.judging.pop(resource.ident, None)
        if judged is None:
            return
        t, lib_error = judged
        self._sync()
        if t.fail_pending:  # its caller cancelled it while the check ran
            t.fail_pending = False
            self.fail_pending -= 1
        if t.state != RUNNING:  # its caller gave up, or kill() answered it, meanwhile
            self._retire(t)
            return
        self._conclude(t, lib_error, usable)

    def _conclude(self, t: Ticket, lib_error: BaseException, healthy: bool) -> None:
        """A worker's attempt of ``t`` failed with ``lib_error``, healthy or not."""
        t.errors.append(lib_error)
        if healthy:
            t.healthy += 1
            last = t.once or t.healthy > t.retries
        else:
            t.unhealthy += 1
            last = t.once or t.unhealthy > self.max_retries
        if last:
            if len(t.errors) == 1 and healthy:
                self._final(t, "failed", ("error", lib_error))
            else:
                self._final(t, "failed", ("retries", tuple(t.errors)))
            return
        self.retried += 1
        self._move(t, QUEUED, t.home if healthy else "priority")
        if healthy:
            self._last_failed = t  # the manager asks its backoff next, synchronously

    def _explained(self, t: Ticket) -> bool:
        """Whether a CancelledError that ended an attempt of ``t`` has a known source."""
        if t.step.kind in ("self_cancel", "stray_cancel"):
            return True  # its own
        if t.form == "run_task":  # its caller, or kill() cancelling the call
            return t.cancelled or self.kill_seen
        return t.hit  # a worker's asyncio task cancelled from outside (see cancel_own_tasks)

    # ------------------------------------------------------------ cancellation

    def _cancelled(self, t: Ticket, *, scheduled: bool) -> None:
        """The caller of ``t`` gave up now; ``scheduled``: the discard runs next step."""
        self._sync()
        t.cancelled = True
        state = t.state
        if t.form == "run_task" and state != NEW:
            if not t.in_attempt:  # it lands in the manager's code, which must pass it on
                t.cancel_outside = True
            return  # it runs in its caller's task: its own outcome decides
        if state == NEW:
            self._reject(t, "withdrawn")
            self._count_answer(t)
            self._retire(t)
        elif state == PENDING:
            if t.expect is not None:  # being refused: it gets ManagerStoppedError anyway
                return
            self.unsure += 1
            self._move(t, FINAL)
            t.outcome = "neither"
            t.expect = ("cancelled", None)
            self.neither += 1
            self._lag(t.home, scheduled)
        elif state == QUEUED:
            queue = t.queue
            self._final(t, "neither", ("cancelled", None))
            if queue != "run":
                self._lag(queue, scheduled)
        elif state == RUNNING:
            self._final(t, "failed", ("cancelled", None))
            t.fail_pending = True
            self.fail_pending += 1
        elif state == WAITING:
            if time.monotonic() < t.due - self.epsilon:
                self._final(t, "failed", ("cancelled", None))
                if scheduled and t.form in ("map", "await"):
                    # Its caller's task forgets it a step later; a stop() that begins in
                    # between re-queues it first, and it is then discarded (neither).
                    self._lag(t.home, scheduled)
                    self._later(partial(self._forgotten, t), "")
            else:  # its timer may have re-queued it already: failure or neither
                self._final(t, "ambiguous", ("cancelled", None))
                self._lag(t.home, scheduled)
            if scheduled:  # the manager counts it when the future's callback runs
                self.lag["failed"] += 1
                self._later(self._lagged, "failed")

    def _lag(self, queue: str, scheduled: bool) -> None:
        if scheduled:
            self.lag[queue] += 1
            self._later(self._lagged, queue)

    @staticmethod
    def _later(callback: Callable[[str], None], key: str) -> None:
        """Run ``callback(key)`` after every callback scheduled in this step (two hops:
        the cancel that follows a mark schedules the manager's own callbacks)."""
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, callback, key)

    def _lagged(self, queue: str) -> None:
        self.lag[queue] -= 1

    def _forgotten(self, t: Ticket, _: str) -> None:
        """``t``'s caller has forgotten it: if a shutdown began meanwhile, it may have been
        re-queued first and discarded, counted as neither rather than a failure."""
        self._sync()
        if self.stop_seen and t.outcome == "failed":
            t.outcome = "ambiguous"
            self.failed -= 1
            self.ambiguous += 1

    def note_cancel(self, t: Ticket) -> None:
        """``t``'s caller task is being cancelled right now (call just before)."""
        if t.form == "map":
            return
        if t.state == NEW:
            self._cancelled(t, scheduled=True)
        elif t.in_call:
            self._cancelled(t, scheduled=True)
            t.cancelled = True

    def cancel(self, target: Ticket | MapBatch) -> bool:
        """Cancel a future, an awaiting caller, a run_task caller or a map consumer."""
        if isinstance(target, MapBatch):
            return self._cancel_map(target)
        t = target
        if t.form == "future":
            assert t.future is not None
            if t.future.cancel():
                self._cancelled(t, scheduled=True)
                return True
            return False
        caller = t.caller
        if caller is None or caller.done() or t.form not in ("await", "run_task"):
            return False
        self.note_cancel(t)
        caller.cancel()
        return True

    def own_tasks(self) -> list[asyncio.Task[Any]]:
        """The manager's own asyncio tasks still running: workers first, then its jobs."""
        m = self.manager
        workers = [w.task for w in m._workers._workers if w.task is not None]
        jobs = sorted(m._run._jobs - set(workers), key=lambda job: job.get_name())
        return [task for task in workers + jobs if not task.done()]

    def cancel_own_tasks(self, index: int | None = None) -> int:
        """Cancel the manager's own asyncio tasks from outside, as an application
        cancelling every task at shutdown does; ``index`` picks just one. How many?

        The manager must withdraw each cancellation (or start the job again) and carry on;
        a task a cancelled worker was running sees the ``CancelledError`` and fails with it
        like any other error.
        """
        own = self.own_tasks()
        if index is not None and own:
            own = [own[index % len(own)]]
        for task in own:
            for t in self.live.values():
                if t.in_attempt and t.runner is task:
                    t.hit = True
            task.cancel()
        return len(own)

    def _cancel_map(self, batch: MapBatch) -> bool:
        consumer = batch.consumer
        if consumer is None or consumer.done() or batch.closed:
            return False
        if any(t.state == PENDING for t in batch.pulled):
            # The consumer waits for room, or awaits the head's future: the model cannot
            # tell which of the two its cancellation would hit, so it leaves it be.
            return False
        batch.cancelled = True
        if batch.ordered:
            # The consumer awaits the head's future; cancelling it cancels that future.
            head = batch.in_flight()
            if head and head[0].state != FINAL:
                self._cancelled(head[0], scheduled=True)
        consumer.cancel()
        return True

    # ------------------------------------------------------------------ answers

    def _count_answer(self, t: Ticket) -> None:
        t.answers += 1
        if t.answers == 1:
            self.open -= 1

    def _answered(self, t: Ticket, value: int | None, error: BaseException | None) -> None:
        self._sync()
        self._count_answer(t)
        if t.answers > 1:
            self.violation(f"{t!r} answered {t.answers} times")
            return
        problem = self._judge(t, value, error)
        if problem:
            self.violation(f"{t!r} expected {t.expect!r}, got {problem}")
        self._retire(t)

    def _judge(self, t: Ticket, value: int | None, error: BaseException | None) -> str:
        """Why the answer is wrong, or ''."""
        got = f"value {value!r}" if error is None else f"{type(error).__name__}: {error}"
        if t.form == "run_task":
            return self._judge_run(t, value, error, got)
        if isinstance(error, asyncio.CancelledError):
            return "" if t.cancelled or self._own(t, error) else got + " though nobody cancelled it"
        if isinstance(error, ManagerStoppedError) and str(error) == _STOPPING:
            if t.state == PENDING and t.accepted is None:
                self._reject(t, "stopping")
                return ""
            return "" if t.state == REJECTED and t.expect == ("stopping", None) else got
        if isinstance(error, ManagerStoppedError) and str(error) == _KILLED:
            if t.state == PENDING:
                self._resolve(t, True)
                self._final(t, "neither", ("killed", None))
                return ""
            return "" if t.expect == ("killed", None) else got
        if t.state == REJECTED:
            return "" if _matches(t.expect, value, error) else got
        if t.state != FINAL:
            return got + f" while the model has it {_STATE_NAMES[t.state]}"
        return "" if _matches(t.expect, value, error) else got

    def _judge_run(
        self, t: Ticket, value: int | None, error: BaseException | None, got: str
    ) -> str:
        """run_task: the task's own outcome, or what stopped it before it started."""
        if t.state == REJECTED:
            return "" if _matches(t.expect, value, error) else got
        if isinstance(error, asyncio.CancelledError):
            if t.cancelled or self._own(t, error) or t.step.kind == "cancel_and_return":
                return ""  # the last: its function cancelled the caller, the manager passed it on
            return got + " though nobody cancelled it"
        if isinstance(error, ManagerStoppedError):
            return "" if str(error) == _KILLED and self.kill_seen else got
        if t.attempts == 0:  # never started: only a failed temporary resource explains it
            # ...or a failed pool resource made in place of one check_resource rejected,
            # or max_resources all held by base workers with no pool to wait for.
            text = str(error)
            ok = isinstance(error, ResourceCreationError) and (
                (
                    text.startswith(
                        ("failed to create temporary resource", "failed to create a pool resource")
                    )
                    and self.resources.made_fault(error.__cause__)
                )
                or (
                    "is held by a base worker and the pool is empty" in text
                    and self.cap == self.worker_count
                    and self.pool_size == 0
                )
            )
            return "" if ok else got
        if t.state != FINAL:
            return got + f" while the model has it {_STATE_NAMES[t.state]}"
        return "" if _matches(t.expect, value, error) else got

    @staticmethod
    def _own(t: Ticket, error: BaseException) -> bool:
        """Whether ``error`` is the task's own final error (a CancelledError it raised)."""
        return t.state == FINAL and _matches(t.expect, None, error)

    # -------------------------------------------------------------- submitting

    def ticket(
        self,
        plan: Sequence[Step],
        form: Form,
        method: str = "",
        *,
        priority: bool = False,
        once: bool = False,
        retries: int | None = None,
    ) -> Ticket:
        """A new ticket for ``plan``; ``method`` (default: the form's plain method) picks
        the entry point, and priority/once with it."""
        method = method or _DEFAULT_METHODS[form]
        if "priority" in method:
            priority = True
        if "once" in method:
            once = True
        self.next_ident += 1
        t = Ticket(
            self,
            self.next_ident,
            form,
            plan,
            method,
            priority,
            once,
            self.task_retries if retries is None else retries,
        )
        self.live[t.ident] = t
        self.open += 1
        if self.keep_history:
            self.history.append(t)
        self.forms[t.method] += 1
        return t

    def submit(
        self,
        plan: Sequence[Step],
        method: str = "submit",
        *,
        priority: bool = False,
        once: bool = False,
        retries: int | None = None,
        backoff: Callable[[int], float] | None = None,
    ) -> Ticket:
        """Submit through ``submit`` or a ``*_async`` method; the future is ``t.future``."""
        t = self.ticket(plan, "future", method, priority=priority, once=once, retries=retries)
        prediction = self._predict(t)
        if method == "submit":
            future = self.manager.submit(
                t.fn,
                priority=t.home == "priority",
                once=t.once,
                retries=retries,
                backoff=None if backoff is None else self._observed(backoff, t),
            )
        else:
            future = getattr(self.manager, method)(t.fn)
        t.future = future
        if future.done():
            error = None if future.cancelled() else future.exception()
            why = "full" if isinstance(error, QueueFullError) else "stopping"
            if prediction == "accept":
                self.violation(f"{t!r} refused with {error!r} though its queue had room")
            self._reject(t, why)
        else:
            if prediction != "accept":
                self.violation(f"{t!r} accepted though the model expected {prediction}")
            self._accept(t)
        future.add_done_callback(partial(self._future_done, t))
        return t

    def _predict(self, t: Ticket) -> str:
        if self.manager.state != "running":
            return "stopping"
        if self.queue_size and self._live(t.home) >= self.queue_size:
            return "full"
        admission = self.manager._admission
        queue = admission.priority if t.home == "priority" else admission.main
        if queue.line:  # room goes first to awaiting callers in line (README)
            return "full"
        return "accept"

    def _future_done(self, t: Ticket, future: asyncio.Future[int]) -> None:
        if future.cancelled():
            self._answered(t, None, asyncio.CancelledError())
        elif future.exception() is not None:
            self._answered(t, None, future.exception())
        else:
            self._answered(t, future.result(), None)

    def callback(
        self,
        plan: Sequence[Step],
        method: str = "queue_task_with_callback",
        *,
        coroutine: bool = False,
        raises: bool = False,
        raise_kind: FaultKind = "error",
        then: Literal["stop", "kill"] | None = None,
    ) -> Ticket:
        """Submit through a ``*_with_callback`` method (a sync or async callback).

        The callback records its answer, then asks for a shutdown if ``then`` says so (a
        sync one schedules it, an async one awaits it), then raises ``raise_kind`` if
        ``raises``.
        """
        t = self.ticket(plan, "callback", method)
        prediction = self._predict(t)

        def answer(value: int | None, error: BaseException | None) -> None:
            self._answered(t, value, error)
            if then == "stop":
                self._track(asyncio.ensure_future(self.stop()))
            elif then == "kill":
                self._track(asyncio.ensure_future(self.kill()), _PROMPT)
            if raises:
                self.hook_failures["callback"] += 1
                raise make_fault(raise_kind, CallbackFault, "callback failure")

        async def answer_later(value: int | None, error: BaseException | None) -> None:
            await asyncio.sleep(0)
            self._answered(t, value, error)
            if then is not None:
                await (self.stop() if then == "stop" else self.kill())
            if raises:
                self.hook_failures["callback"] += 1
                await raise_fault(raise_kind, CallbackFault, "callback failure")

        getattr(self.manager, method)(t.fn, answer_later if coroutine else answer)
        if prediction == "accept":
            self._accept(t)
        else:
            self._reject(t, prediction)
        return t

    async def call(self, t: Ticket) -> int:
        """Await ``t`` through its queue_task* method, from the current task."""
        if t.caller is None:
            t.caller = asyncio.current_task()
        self._enter(t)
        t.in_call = True
        try:
            value: int = await getattr(self.manager, t.method)(t.fn)
        except BaseException as exc:
            t.in_call = False
            self._answered(t, None, exc)
            raise
        t.in_call = False
        if t.cancelled and t.state != REJECTED:
            self.violation(f"{t!r}: its caller was cancelled but got the value {value!r}")
        self._answered(t, value, None)
        return value

    async def run(self, t: Ticket) -> int:
        """Call ``run_task`` for ``t`` from the current task."""
        if t.caller is None:
            t.caller = asyncio.current_task()
        counted = self.manager.state == "running"
        if counted:
            self._accept(t)
            self.run_in_flight += 1
        else:
            self._move(t, REJECTED)
            t.accepted = False
            t.expect = ("stopping", None)
            self.rejected += 1
        t.in_call = True
        try:
            value: int = await self.manager.run_task(t.fn)
        except BaseException as exc:
            self._ran(t, counted)
            self._check_passed_on(t, exc)
            self._answered(t, None, exc)
            raise
        self._ran(t, counted)
        self._check_passed_on(t, None)
        self._answered(t, value, None)
        if t.step.kind == "cancel_and_return" and t.attempts and not t.cancelled:
            await self._expect_own_cancel(t)
        return value

    def _check_passed_on(self, t: Ticket, error: BaseException | None) -> None:
        """A caller cancelled outside its run_task function must get its CancelledError."""
        if (
            t.cancel_outside
            and not self.kill_seen
            and not isinstance(error, asyncio.CancelledError)
            and "destroy_swallows_caller_cancel" not in self.tolerate
        ):
            got = "returned" if error is None else f"raised {error!r}"
            self.violation(
                f"{t!r}: its caller was cancelled while run_task ran the manager's own"
                f" code, but run_task {got}: the caller's cancellation was swallowed"
            )

    async def _expect_own_cancel(self, t: Ticket) -> None:
        """run_task returned for a function that cancelled its caller: still pending?"""
        current = asyncio.current_task()
        assert current is not None
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            current.uncancel()  # the one its function asked for: delivered
            return
        if not self.kill_seen and "destroy_swallows_caller_cancel" not in self.tolerate:
            self.violation(
                f"{t!r}: its run_task function cancelled the caller's task, and run_task"
                " swallowed that cancellation"
            )

    def _ran(self, t: Ticket, counted: bool) -> None:
        t.in_call = False
        if counted:
            self.run_in_flight -= 1
        if t.state == QUEUED and t.attempts == 0:  # never started: neither
            self._final(t, "neither", ("unstarted", None))

    def spawn(self, t: Ticket, *, caller: RandomCaller | None = None) -> None:
        """Run :meth:`call` (or :meth:`run` for run_task) for ``t`` in a new task.

        The task is ``t.caller``; with ``caller``, a :class:`RandomCaller` makes the call.
        """
        make = partial(self.run, t) if t.form == "run_task" else partial(self.call, t)
        if caller is None:
            coro: Awaitable[Any] = make()
        else:
            coro = caller.call(make, on_cancel=partial(self.note_cancel, t))
        spawned = asyncio.ensure_future(_contained(coro))
        t.caller = spawned
        self.tasks.add(spawned)
        spawned.add_done_callback(self._spawned_done)

    def _spawned_done(self, spawned: asyncio.Task[Any]) -> None:
        self.tasks.discard(spawned)
        if not spawned.cancelled():
            spawned.exception()  # retrieved: the ledger has judged it already

    def map(
        self,
        plans: Sequence[Sequence[Step]],
        *,
        priority: bool = False,
        ordered: bool = True,
        max_in_flight: int | None = None,
        take: int | None = None,
    ) -> MapBatch:
        """Start a ``map()`` over ``plans`` in a consumer task; ``take`` stops early."""
        limit = max_in_flight if max_in_flight is not None else 2 * self.max_workers
        batch = MapBatch(ordered, limit)
        consumer = asyncio.ensure_future(
            _contained(self._consume(batch, plans, priority, ordered, max_in_flight, take))
        )
        batch.consumer = consumer
        self.tasks.add(consumer)
        consumer.add_done_callback(self._spawned_done)
        return batch

    def _pull(
        self, batch: MapBatch, plans: Sequence[Sequence[Step]], priority: bool
    ) -> Iterator[Ticket]:
        for plan in plans:
            self._admitted(batch)  # map() pulls the next item only once the last is in
            in_flight = sum(
                1 for t in batch.pulled if t.ident not in batch.yielded and t.state != REJECTED
            )
            if in_flight >= batch.limit:
                self.violation(f"map pulled an item with {in_flight} in flight (max {batch.limit})")
            t = self.ticket(plan, "map", "map", priority=priority)
            batch.pulled.append(t)
            self._enter(t)
            yield t
        self._admitted(batch)

    def _admitted(self, batch: MapBatch) -> None:
        """The consumer moved on: every item it was (maybe) waiting to queue is queued."""
        for t in batch.pulled:
            if t.state == PENDING and t.expect is None and not t.cancelled:
                self._resolve(t, True)
                self._move(t, QUEUED)

    async def _consume(
        self,
        batch: MapBatch,
        plans: Sequence[Sequence[Step]],
        priority: bool,
        ordered: bool,
        max_in_flight: int | None,
        take: int | None,
    ) -> list[int]:
        results = self.manager.map(
            _map_fn,
            self._pull(batch, plans, priority),
            priority=priority,
            ordered=ordered,
            max_in_flight=max_in_flight,
        )
        try:
            async for value in results:
                self._map_yielded(batch, value)
                if take is not None and len(batch.values) >= take:
                    break
        except BaseException as exc:
            self._map_raised(batch, exc)
            raise
        finally:
            await results.aclose()
            self._map_closed(batch)
        return batch.values

    def _map_yielded(self, batch: MapBatch, value: int) -> None:
        if self.manager.state == "running":  # else the last item may have been refused
            self._admitted(batch)
        flight = batch.in_flight()
        t = next((t for t in flight if t.ident == value), None)
        if t is None:
            self.violation(f"map yielded {value!r}, not one of its items in flight")
            return
        if batch.ordered and flight[0] is not t:
            self.violation(f"ordered map yielded {t!r} before {flight[0]!r}")
        batch.yielded.add(t.ident)
        batch.values.append(value)
        self._answered(t, value, None)

    def _map_raised(self, batch: MapBatch, error: BaseException) -> None:
        cancelled = isinstance(error, asyncio.CancelledError)
        if cancelled and batch.cancelled:
            return
        if isinstance(error, ManagerStoppedError) and str(error) == _STOPPING:
            refused = [t for t in batch.pulled if t.state == PENDING and t.answers == 0]
            if not refused:
                self.violation("map raised 'shutting down' though it had no refused item")
            for t in refused:
                self._answered(t, None, error)
            return
        if self.manager.state == "running":  # a task error comes after the last admission
            self._admitted(batch)
        flight = batch.in_flight()
        candidates = flight[:1] if batch.ordered else flight
        for t in candidates:
            # A task's own CancelledError (it cancelled itself, or raised a stray one).
            if (t.state == PENDING and not cancelled) or _matches(t.expect, None, error):
                batch.yielded.add(t.ident)
                self._answered(t, None, error)
                return
        if cancelled:
            self.violation(f"map raised {error!r} though nobody cancelled it")
            return
        self.violation(f"map raised {error!r}, which none of {candidates!r} expects")

    def _map_closed(self, batch: MapBatch) -> None:
        batch.closed = True
        for t in batch.in_flight():
            if t.state == PENDING and t.expect is not None:
                self._reject(t, "stopping")  # refused by shutdown; never accepted
            elif t.state not in (FINAL, REJECTED):
                self._cancelled(t, scheduled=False)  # the map cancels what it leaves
            self._count_answer(t)  # decided; the map drops its answer by design
            self._retire(t)
        batch.pulled.clear()

    # ----------------------------------------------------------------- shutdown

    async def stop(self) -> None:
        """``manager.stop()``; the model sees the drain begin."""
        await self.manager.stop()

    async def kill(self) -> None:
        """``manager.kill()``; the model decides what it answers when it logs that it acts."""
        await self.manager.kill()

    def shut_down(self, how: ShutdownHow, *, timeout: float = 0.001) -> ThreadCall | None:
        """Ask for a shutdown the way ``how`` says, without waiting for it.

        ``"stop"``/``"kill"``: from a task of their own; ``"stop_timeout"``:
        ``stop(timeout)`` from a task; ``"thread_stop"``/``"thread_kill"``: awaited in
        another thread's event loop (returns the :class:`ThreadCall`, whose
        ``submitted`` is set once the call is on its way to the manager's loop);
        ``"callback_stop"``/``"callback_kill"``: from the sync callback of a priority
        task, ``"async_callback_*"`` from an async one; ``"task_kill"``/
        ``"task_stop_inside"``: a priority task awaits ``kill()``/``stop()`` (the second
        must be refused); ``"run_task_kill"``/``"run_task_stop_inside"``: a
        ``run_task`` function does. Whatever kill() answers, the model decides when the
        manager logs "task manager killed".
        """
        if how in ("stop", "kill"):
            call = self.stop() if how == "stop" else self.kill()
            bound = None if how == "stop" else _PROMPT
            self._track(asyncio.ensure_future(call), bound)
        elif how == "stop_timeout":
            stopping = asyncio.ensure_future(self.manager.stop(timeout=timeout))
            self._track(stopping, timeout + _PROMPT)
        elif how in ("thread_stop", "thread_kill"):
            return self.call_from_thread("stop" if how == "thread_stop" else "kill")
        elif how.endswith(("callback_stop", "callback_kill")):
            self.callback(
                (Step("ok"),),
                "queue_task_with_priority_with_callback",
                coroutine=how.startswith("async"),
                then="stop" if how.endswith("stop") else "kill",
            )
        elif how.startswith("task_"):
            step = Step("kill") if how == "task_kill" else Step("stop_inside")
            self.submit((step,), "queue_task_with_priority_once_async")
        else:
            step = Step("kill") if how == "run_task_kill" else Step("stop_inside")
            self.spawn(self.ticket((step,), "run_task"))
        return None

    def _track(self, shutdown: asyncio.Future[Any], bound: float | None = None) -> None:
        """Keep a shutdown task for :meth:`finish`; what it raises is a violation, and so
        is taking more than ``bound`` seconds (kill() must be prompt, stop(timeout)
        bounded)."""
        self.shutdowns.append(shutdown)
        shutdown.add_done_callback(partial(self._shutdown_done, time.monotonic(), bound))

    def _shutdown_done(
        self, started: float, bound: float | None, shutdown: asyncio.Future[Any]
    ) -> None:
        took = time.monotonic() - started
        if shutdown.cancelled():
            self.shutdown_errors.append(f"a shutdown task was cancelled: {shutdown!r}")
        elif shutdown.exception() is not None:
            self.shutdown_errors.append(f"a shutdown raised {shutdown.exception()!r}")
        elif bound is not None and took > bound:
            self.shutdown_errors.append(f"{shutdown!r} took {took:.2f} s, over {bound:.2f} s")

    def call_from_thread(self, method: Literal["stop", "kill"]) -> ThreadCall:
        """Await ``manager.stop()``/``kill()`` in another thread, under ``asyncio.run`` there."""

        async def call(thread: ThreadCall) -> None:
            inner = asyncio.ensure_future(getattr(self.manager, method)())
            await asyncio.sleep(0)  # inner's first step has handed the call to the manager
            thread.submitted.set()
            started = time.monotonic()
            await inner
            took = time.monotonic() - started
            if method == "kill" and took > _PROMPT:
                thread.problems.append(f"kill() took {took:.2f} s, over {_PROMPT} s")

        thread = ThreadCall(f"{method}() from a thread", lambda thread: asyncio.run(call(thread)))
        self.threads.append(thread)
        thread.start()
        return thread

    def monitor_from_thread(self, reads: int = 5) -> ThreadCall:
        """Read ``stats()`` and ``metrics()`` ``reads`` times from another thread.

        Each snapshot is checked (counts in bounds, totals never going back); a metrics()
        call may fail only with what a :class:`FaultyCollector` was told to raise.
        """
        manager = self.manager

        def read(thread: ThreadCall) -> None:
            last: tuple[int, ...] = (0, 0, 0, 0)
            for _ in range(reads):
                stats = manager.stats()
                if min(astuple(stats)) < 0 or stats.active_workers > self.max_workers:
                    thread.problems.append(f"stats() from a thread read {stats}")
                if stats.active_workers != stats.base_workers + stats.burst_workers:
                    thread.problems.append(f"stats() from a thread read {stats}")
                try:
                    metrics = manager.metrics()
                except BaseException as exc:
                    if self.collector is None or not self.collector.made(exc):
                        raise
                    continue
                totals = (
                    metrics.total_tasks_arrived,
                    metrics.total_tasks_completed,
                    metrics.total_tasks_failed,
                    metrics.total_tasks_retried,
                )
                if any(now < before for now, before in zip(totals, last, strict=True)):
                    thread.problems.append(f"metrics() totals went back: {last} -> {totals}")
                last = totals
            thread.submitted.set()

        thread = ThreadCall("stats()/metrics() from a thread", read)
        self.threads.append(thread)
        thread.start()
        return thread

    async def finish(self, seconds: float = 30.0) -> None:
        """Wait for the shutdowns asked for and the threads started (a hang detector).

        Raises:
            AssertionError: one still runs after ``seconds``.
        """
        deadline = time.monotonic() + seconds
        while any(not s.done() for s in self.shutdowns) or any(t.alive for t in self.threads):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"shutdowns or threads still running after {seconds} s:"
                    f" {[s for s in self.shutdowns if not s.done()]}"
                    f" {[t.name for t in self.threads if t.alive]}"
                )
            await asyncio.sleep(0.001)

    async def settle(self, rounds: int = 10) -> None:
        """Let callbacks scheduled with call_soon run."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def quiet(self, seconds: float = 60.0) -> None:
        """Wait until every ticket has its answer and every caller task has ended.

        Raises:
            AssertionError: still not so after ``seconds`` (a hang detector).
        """
        deadline = time.monotonic() + seconds
        while self.open or self.tasks:
            if time.monotonic() > deadline:
                raise AssertionError(f"callers never answered: {self.unanswered()[:5]}")
            await asyncio.sleep(0.0005)

    def unanswered(self) -> list[Ticket]:
        return [t for t in self.live.values() if t.answers == 0]

    # ------------------------------------------------------------------ checks

    def problems(self, *, final: bool = False, metrics: bool = True) -> list[str]:
        """Every invariant broken so far (call between loop steps, not inside one).

        ``metrics=False`` skips comparing the metrics totals (``metrics()`` is costly).
        """
        self._sync()
        found = self.violations + self.resources.problems(finished=final) + self.shutdown_errors
        for thread in self.threads:
            found.extend(f"{thread.name}: {problem}" for problem in thread.problems)
            found.extend(f"{thread.name} raised {error!r}" for error in thread.errors)
        m = self.manager
        if m.state == "new":
            return found
        stats = m.stats()
        running = self.in_attempt_workers
        # A task whose failure waits for check_resource still counts as running.
        if not running <= stats.running_tasks <= running + len(self.judging):
            found.append(
                f"stats().running_tasks={stats.running_tasks} but {running} tasks are running"
                f" on workers and {len(self.judging)} wait for check_resource"
            )
        # The manager counts a slot from before on_create is called until after
        # on_destroy ended (or was abandoned): never fewer than the harness sees.
        live = self.resources.live
        if stats.live_resources < live:
            found.append(f"stats().live_resources={stats.live_resources} but {live} are live")
        if self.cap is not None and stats.live_resources > self.cap:
            found.append(
                f"stats().live_resources={stats.live_resources} > max_resources {self.cap}"
            )
        for queue, live in (("main", stats.queued_tasks), ("priority", stats.priority_tasks)):
            low = self.queued[queue]
            high = low + self.maybe[queue] + self.lag[queue]
            now = time.monotonic()  # the default loop's clock
            high += sum(1 for t in self.waiting if t.home == queue and now >= t.due - self.epsilon)
            if not low <= live <= high:
                found.append(f"{queue} queue holds {live} live tasks; the model: {low}..{high}")
        if stats.active_workers > self.max_workers:
            found.append(f"{stats.active_workers} workers > max_worker_count {self.max_workers}")
        if m.state == "running":  # capacity is never lost: each base worker keeps its slot
            base = sum(1 for worker in m._workers._workers if not worker.burst)
            if base != self.worker_count:
                found.append(f"{base} base workers while running, not {self.worker_count}")
        if stats.base_workers > self.worker_count:
            found.append(f"{stats.base_workers} base workers > worker_count {self.worker_count}")
        if stats.available_resources > self.pool_size:
            found.append(f"{stats.available_resources} pooled > pool size {self.pool_size}")
        if metrics or final:
            found.extend(self._metric_problems(m))
        if final:
            found.extend(self._final_problems(m))
        return found

    def _metric_problems(self, m: TaskManager[FaultyResource, int]) -> list[str]:
        found: list[str] = []
        collector = self.collector
        lost: Counter[str] = Counter()
        if collector is not None:  # each failed collector call lost its one event
            lost = collector.lost
            collector.reading = True
        try:
            metrics = m.metrics()
        finally:
            if collector is not None:
                collector.reading = False
        low = self.arrived - lost["record_arrival"]
        high = self.arrived + self.unsure + sum(self.maybe.values()) - lost["record_arrival"]
        if not low <= metrics.total_tasks_arrived <= high:
            found.append(
                f"total_tasks_arrived={metrics.total_tasks_arrived}; the model counted"
                f" {low}..{high}"
            )
        completed = self.completed - lost["record_completion"]
        if metrics.total_tasks_completed != completed:
            found.append(
                f"total_tasks_completed={metrics.total_tasks_completed}; the model counted"
                f" {completed}"
            )
        retried = self.retried - lost["record_retry"]
        if metrics.total_tasks_retried != retried:
            found.append(
                f"total_tasks_retried={metrics.total_tasks_retried}; the model counted {retried}"
            )
        low = self.failed - self.fail_pending - self.lag["failed"] - lost["record_failure"]
        high = self.failed + self.ambiguous - lost["record_failure"]
        if not low <= metrics.total_tasks_failed <= high:
            found.append(
                f"total_tasks_failed={metrics.total_tasks_failed}; the model counted {low}..{high}"
            )
        return found

    def _final_problems(self, m: TaskManager[FaultyResource, int]) -> list[str]:
        found: list[str] = []
        if m.state != "stopped":
            found.append(f"manager state {m.state!r} after shutdown")
        stats = m.stats()
        busy = (
            stats.running_tasks,
            stats.queued_tasks,
            stats.priority_tasks,
            stats.active_workers,
            stats.available_resources,
            stats.live_resources,
        )
        if any(busy):
            found.append(f"stats() not back to zero after shutdown: {stats}")
        if self.fail_pending:
            found.append(f"{self.fail_pending} interrupted tasks never ended")
        undecided = [t for t in self.live.values() if t.state not in (FINAL, REJECTED)]
        if undecided:
            found.append(f"tasks the model still expects to run: {undecided[:5]}")
        unanswered = self.unanswered()
        if unanswered:
            found.append(f"callers never answered: {unanswered[:5]}")
        running = [t for t in self.live.values() if t.in_attempt]
        if running:
            found.append(f"tasks still running after shutdown: {running[:5]}")
        waiting = [task for task in self.tasks if not task.done()]
        if waiting:
            found.append(f"{len(waiting)} caller tasks still waiting after shutdown")
        running_shutdowns = [s for s in self.shutdowns if not s.done()]
        if running_shutdowns:
            found.append(f"shutdowns still running after shutdown: {running_shutdowns}")
        alive = [thread.name for thread in self.threads if thread.alive]
        if alive:
            found.append(f"threads still waiting after shutdown: {alive}")
        if self.judging:
            found.append(
                "check_resource never ended after these failures:"
                f" {[t for t, _ in self.judging.values()][:5]}"
            )
        if self._health_marks:
            found.append(
                "check_health was never asked about these failures:"
                f" {[error for error, _ in self._health_marks.values()][:5]}"
            )
        for level, text in self.logger.records:
            if "task group failed" in text:
                found.append(f"logged {level}: {text}")
        return found

    def assert_ok(self, *, final: bool = False) -> None:
        """Raise AssertionError listing every broken invariant."""
        found = self.problems(final=final)
        assert not found, "\n".join(found)


def _same_error(expected: object, got: BaseException | None) -> bool:
    if expected is _NOT_AWAITABLE:
        return type(got) is TypeError and "not an awaitable" in str(got)
    return got is expected


def _matches(expect: Expect | None, value: int | None, error: BaseException | None) -> bool:
    if expect is None:
        return False
    kind, payload = expect
    if kind == "value":
        return error is None and value == payload
    if kind == "error":
        return _same_error(payload, error)
    if kind == "retries":
        assert isinstance(payload, tuple)
        return (
            isinstance(error, MaxRetriesExceededError)
            and str(error).startswith("max retries exceeded: ")
            and len(error.errors) == len(payload)
            and all(_same_error(e, g) for e, g in zip(payload, error.errors, strict=True))
            and error.__cause__ is error.errors[-1]
        )
    if kind == "killed":
        return isinstance(error, ManagerStoppedError) and str(error) == _KILLED
    if kind == "stopping":
        return isinstance(error, ManagerStoppedError) and str(error) == _STOPPING
    if kind == "full":
        return isinstance(error, QueueFullError)
    if kind == "cancelled":
        return isinstance(error, asyncio.CancelledError)
    return False
