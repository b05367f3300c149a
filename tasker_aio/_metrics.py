"""The default HDR-histogram collector, and the manager's hooks into any collector.

The default collector keeps the per-task cost to a few list appends and integer
increments: durations are buffered as floats and folded into the HDR histograms in
batches (one count per distinct 100 ns value, every duration counted), and percentiles
are computed in one pass over the cumulative counts only when someone reads them.
Arrival and completion rates come from fixed time buckets over a sliding window, so
they fall to zero once the load stops instead of averaging over the manager's life.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import accumulate
from math import floor
from typing import Literal, NamedTuple

from hdrh.histogram import HdrHistogram

from ._exceptions import ConfigError
from ._snapshots import TaskLifecycleTimestamps, TaskMetrics

__all__ = [
    "FoldListener", "HdrCollector", "Outcome", "Recorders", "new_collector", "outcome", "stamps",
]  # fmt: skip

_logger = logging.getLogger("tasker_aio")

_TICKS_PER_S = 10_000_000  # histogram unit: 100 ns, fine enough for task latencies
_TICKS = float(_TICKS_PER_S)
_HIGHEST = 3_600 * _TICKS_PER_S  # one hour; longer durations are recorded as one hour
_FOLD_AT = 4096  # buffered durations before they are folded into the histograms
_BUCKETS = 20  # time buckets per rate window


class _WindowRate:
    """Events per second over the last ``window`` seconds, in fixed time buckets."""

    __slots__ = ("_buckets", "_start", "_width", "current", "end", "window")

    def __init__(self, window: float, now: float) -> None:
        self.window = window
        self._width = window / _BUCKETS
        self._buckets = [0] * _BUCKETS  # ring of finished buckets, oldest first
        self.current = 0  # events in the bucket that ends at self.end
        self.end = now + self._width
        self._start = now

    def add_all(self, stamps: list[float]) -> None:
        """Count one event at each of ``stamps``, oldest first.

        One bucket boundary costs one bisect. Out-of-order stamps are still each
        counted once, in whichever bucket is current when they are reached.
        """
        i, n = 0, len(stamps)
        while i < n:
            now = stamps[i]
            if now >= self.end:
                self.advance(now)
            j = max(bisect_left(stamps, self.end, i), i + 1)
            self.current += j - i
            i = j

    def advance(self, now: float) -> None:
        passed = int((now - self.end) // self._width) + 1
        buckets = self._buckets
        if passed >= _BUCKETS:
            buckets[:] = [0] * _BUCKETS
        else:
            del buckets[:passed]
            buckets.append(self.current)
            buckets.extend([0] * (passed - 1))
        self.current = 0
        self.end += passed * self._width

    def rate(self, now: float) -> float:
        if now >= self.end:
            self.advance(now)
        # The ring holds the _BUCKETS - 1 newest finished buckets plus the current one.
        events = sum(self._buckets[1:]) + self.current
        current_start = self.end - self._width
        span = min(now - self._start, self.window - self._width + (now - current_start))
        return events / span if span > 0 else 0.0


class _Durations:
    """Exact count, sum, minimum and maximum, plus an HDR histogram of durations.

    The histogram is filled in batches, every duration counted (see add).
    """

    __slots__ = ("_cache", "count", "hist", "max", "min", "total")

    def __init__(self) -> None:
        self.hist = HdrHistogram(1, _HIGHEST, 3)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0
        self._cache: tuple[float, float, float] | None = (0.0, 0.0, 0.0)

    def add(
        self, total: float, durations: list[float], exact: tuple[float, float] | None = None
    ) -> None:
        """Count ``durations`` (their sum is ``total``), each one into the histogram.

        ``exact`` is their (min, max); without it, their range in histogram
        units stands in (the wait times: their range only clamps the percentiles).
        """
        count = len(durations)
        self.count += count
        self.total += total
        values = Counter([floor(d * _TICKS) for d in durations])  # floor: a fast C call
        lowest, highest = min(values), max(values)
        if lowest < 0 or highest > _HIGHEST:
            clamped: Counter[int] = Counter()
            for value, n in values.items():
                clamped[min(max(value, 0), _HIGHEST)] += n
            values = clamped
            lowest, highest = min(values), max(values)
        low, high = exact or (lowest / _TICKS_PER_S, highest / _TICKS_PER_S)
        self.min = min(self.min, low)
        self.max = max(self.max, high)
        # HdrHistogram.record_value costs ~1.3 us a call. In 100 ns ticks short tasks
        # share a few distinct values, so this adds each distinct value's count at the
        # index record_value would use (its _counts_index_for; unit_magnitude is 0,
        # the lowest trackable value being 1).
        hist = self.hist
        mask = hist.sub_bucket_mask
        shift = hist.sub_bucket_half_count_magnitude
        half = hist.sub_bucket_half_count
        counts = hist.counts
        for value, n in values.items():
            bucket = (value | mask).bit_length() - shift - 1
            counts[((bucket + 1) << shift) + (value >> bucket) - half] += n
        hist.total_count += count
        hist.min_value = min(hist.min_value, lowest)
        hist.max_value = max(hist.max_value, highest)
        self._cache = None

    def percentiles(self) -> tuple[float, float, float]:
        """p50, p95 and p99 in seconds, clamped to [min, max]; one pass over the counts."""
        if self._cache is not None:
            return self._cache
        hist = self.hist
        top = hist._counts_index_for(hist.get_max_value())
        cumulative = list(accumulate(hist.counts[: top + 1]))
        total = cumulative[-1]
        values = []
        for p in (50.0, 95.0, 99.0):
            target = max(int(p * total / 100 + 0.5), 1)
            index = min(bisect_left(cumulative, target), top)
            ticks = hist.get_highest_equivalent_value(hist.get_value_from_index(index))
            values.append(min(max(ticks / _TICKS_PER_S, self.min), self.max))
        self._cache = (values[0], values[1], values[2])
        return self._cache

    def cumulative(self, bounds: Sequence[float]) -> list[int]:
        """How many durations are at or below each of ``bounds`` (seconds, ascending)."""
        hist = self.hist
        counts, top = hist.counts, hist._counts_index_for(hist.get_max_value()) + 1
        found, start, total = [], 0, 0
        for bound in bounds:
            ticks = min(max(floor(bound * _TICKS), 0), _HIGHEST)
            # The bound's whole HDR bucket counts: a sliver above it, within 3 digits.
            end = min(hist._counts_index_for(ticks) + 1, top)
            if end > start:
                total += sum(counts[start:end])
                start = end
            found.append(total)
        return found


class HdrCollector:
    """The default :class:`~tasker_aio.MetricsCollector`: HDR histograms, windowed rates.

    Memory is constant in the number of tasks. Build one with :func:`new_collector`.
    """

    def __init__(
        self, *, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if (
            not isinstance(window, (int, float))
            or isinstance(window, bool)
            or not (0 < window < math.inf)
        ):
            raise ConfigError(f"window must be a positive number of seconds, got {window!r}")
        self._clock = clock
        now = clock()
        self._arrivals = _WindowRate(float(window), now)
        self._completions = _WindowRate(float(window), now)
        self._exec = _Durations()
        self._wait = _Durations()  # its min and max only clamp its percentiles
        self._arrived = 0
        self._completed = 0
        self._failed = 0
        self._retried = 0
        # Events not yet counted: arrival times, and flattened Outcome triples.
        self._arrival_log: list[float] = []
        self._completion_log: list[float] = []
        # metrics() may be read from another thread while the loop's thread appends:
        # folds take what is logged so far under this lock and leave later appends be.
        self._lock = threading.RLock()
        self._listeners: tuple[FoldListener, ...] = ()  # replaced, never changed in place

    def __repr__(self) -> str:
        return (
            f"<HdrCollector window={self._arrivals.window:g}s arrived={self._arrived}"
            f" completed={self._completed} failed={self._failed} retried={self._retried}"
            f" unfolded={len(self._arrival_log)}+{len(self._completion_log) // 3}>"
        )

    def recorders(self) -> Recorders:
        """The manager's per-task hooks: the logs' own ``append`` and ``extend``.

        Counting, rates and histograms are done later, in batches (see fold_if_long).
        """
        return Recorders(
            self._arrival_log.append,
            self._completion_log.extend,
            self.record_failure,
            self.record_retry,
            self.fold_if_long,
        )

    def record_arrival(self) -> None:
        self._arrival_log.append(self._clock())
        self.fold_if_long()

    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None:
        self._completion_log.extend(outcome(*stamps))
        self.fold_if_long()

    def record_failure(self, stamps: TaskLifecycleTimestamps | Outcome) -> None:
        self._failed += 1

    def _fold(self) -> None:
        """Count the logged events and add their durations to the histograms.

        The manager's hot path only appends to the logs (see recorders); the work
        of counting is done here, in batches, when the metrics are read or a worker
        reaches a slow point and finds the logs long (see fold_if_long()).
        """
        with self._lock:
            self._fold_locked()

    def _fold_locked(self) -> None:
        # Take what is logged now; appends from another thread meanwhile stay for the
        # next fold (``del log[:n]`` and ``extend`` of a triple are each atomic).
        arrivals, log = self._arrival_log, self._completion_log
        n = len(arrivals)
        if n:
            taken = arrivals[:n]
            del arrivals[:n]
            self._arrived += n
            self._arrivals.add_all(taken)
        n = len(log) // 3 * 3
        if n:
            done = log[:n]
            del log[:n]
            finished, runs, waits = done[0::3], done[1::3], done[2::3]
            count = len(finished)
            self._completed += count
            self._completions.add_all(finished)
            # Every duration goes into the histograms: a 1-in-4 sample of full batches
            # saved ~70 ns a task but put p99 of a long-tailed load 5% off.
            self._exec.add(sum(runs), runs, (min(runs), max(runs)))
            self._wait.add(sum(waits), waits)
            for listener in self._listeners:
                try:
                    listener(runs, waits)
                except Exception:  # an exporter's bug must not cost the collector its fold
                    _logger.exception("fold listener %r raised; missed %d", listener, count)

    def fold_if_long(self) -> None:
        """Fold the logs if they hold a batch: bounds their memory between reads."""
        if len(self._completion_log) >= 3 * _FOLD_AT or len(self._arrival_log) >= _FOLD_AT:
            self._fold()

    def record_retry(self) -> None:
        self._retried += 1

    def histogram(
        self, kind: Literal["execution", "wait"], bounds: Sequence[float]
    ) -> tuple[list[int], float, int]:
        """Completed tasks' execution or queue-wait times, counted at or below each bound.

        Folds what is logged first; safe from any thread. Bucket edges are exact to the
        histograms' 3 significant digits; every completed task is counted.

        Args:
            kind: ``"execution"`` or ``"wait"``.
            bounds: upper bounds in seconds, ascending.

        Returns:
            The cumulative count at each bound, the exact sum of the durations in
            seconds, and their exact count.

        Raises:
            ValueError: ``kind`` is neither.
        """
        if kind not in ("execution", "wait"):
            raise ValueError(f"kind must be 'execution' or 'wait', got {kind!r}")
        with self._lock:
            self._fold_locked()
            durations = self._exec if kind == "execution" else self._wait
            return durations.cumulative(bounds), durations.total, durations.count

    def add_fold_listener(self, listener: FoldListener) -> None:
        """Call ``listener(runs, waits)`` with each batch of completed tasks as it is folded.

        ``runs`` and ``waits``: the batch's execution and queue-wait times in seconds,
        every one, in the order logged; do not change them. It runs where
        the batch is folded (on the manager's loop every 4096 tasks under load, or in the
        thread reading the metrics), under the collector's lock: keep it quick. It hears
        tasks logged from now on (earlier ones are folded first, without it). What it
        raises is logged to the ``tasker_aio`` logger; the collector carries on.
        """
        with self._lock:
            self._fold_locked()
            self._listeners = (*self._listeners, listener)

    def remove_fold_listener(self, listener: FoldListener) -> None:
        """Stop calling ``listener``; a listener never added is ignored."""
        with self._lock:
            self._listeners = tuple(known for known in self._listeners if known != listener)

    def metrics(self) -> TaskMetrics:
        with self._lock:
            return self._metrics()

    def _metrics(self) -> TaskMetrics:
        self._fold()
        now = self._clock()
        ex, wait = self._exec, self._wait
        p50, p95, p99 = ex.percentiles()
        _, w95, w99 = wait.percentiles()
        finished = self._completed + self._failed
        return TaskMetrics(
            average_execution_time=ex.total / ex.count if ex.count else 0.0,
            min_execution_time=ex.min if ex.count else 0.0,
            max_execution_time=ex.max,
            p50_execution_time=p50,
            p95_execution_time=p95,
            p99_execution_time=p99,
            average_wait_time=wait.total / wait.count if wait.count else 0.0,
            p95_wait_time=w95,
            p99_wait_time=w99,
            task_arrival_rate=self._arrivals.rate(now),
            task_completion_rate=self._completions.rate(now),
            total_tasks_arrived=self._arrived,
            total_tasks_completed=self._completed,
            total_tasks_failed=self._failed,
            total_tasks_retried=self._retried,
            success_rate=self._completed / finished if finished else 0.0,
            failure_rate=self._failed / finished if finished else 0.0,
        )


FoldListener = Callable[[list[float], list[float]], object]
"""``listener(runs, waits)``: a folded batch's execution and queue-wait times, in seconds."""

# What the manager logs for a finished task: (finished_at, execution time, wait time).
# Its stamps come back exactly: nearby floats subtract without rounding (Sterbenz), so
# started_at == finished_at - run and queued_at == started_at - wait.
Outcome = tuple[float, float, float]


def outcome(queued_at: float, started_at: float, finished_at: float) -> Outcome:
    """The Outcome of a task with these stamps."""
    return (finished_at, finished_at - started_at, started_at - queued_at)


def stamps(result: Outcome) -> TaskLifecycleTimestamps:
    """The TaskLifecycleTimestamps an Outcome was logged from, exactly."""
    finished_at, run, wait = result
    started_at = finished_at - run
    return TaskLifecycleTimestamps(started_at - wait, started_at, finished_at)


class Recorders(NamedTuple):
    """The manager's hooks into its collector: one call per event on the hot path."""

    arrival: Callable[[float], None]
    completion: Callable[[Outcome], None]
    failure: Callable[[Outcome], None]
    retry: Callable[[], None]
    tidy: Callable[[], None]  # called at workers' slow points: bounds buffered events


def new_collector(*, window: float = 10.0) -> HdrCollector:
    """Return the default metrics collector.

    Args:
        window: length in seconds of the sliding window behind the arrival and
            completion rates.

    Raises:
        ConfigError: ``window`` is not a positive number.
    """
    return HdrCollector(window=window)
