"""Reading the default collector for exporters: histogram() buckets and fold listeners."""

from __future__ import annotations

import logging
import threading

import pytest

from tasker_aio import TaskLifecycleTimestamps, new_collector


def stamps(wait: float, run: float) -> TaskLifecycleTimestamps:
    return TaskLifecycleTimestamps(0.0, wait, wait + run)


def test_histogram_counts_durations_at_or_below_each_bound() -> None:
    """Cumulative counts per bound (a value on a bound is inside it); exact sum and count."""
    collector = new_collector()
    for run in (0.25, 0.5, 0.5, 1.0, 4.0):
        collector.record_completion(stamps(wait=run / 2, run=run))
    counts, total, count = collector.histogram("execution", (0.1, 0.25, 0.5, 1.0, 2.0))
    assert counts == [0, 1, 3, 4, 4]
    assert (total, count) == (6.25, 5)
    counts, total, count = collector.histogram("wait", (0.1, 0.25, 0.5, 1.0, 2.0))
    assert counts == [0, 3, 4, 4, 5]
    assert (total, count) == (3.125, 5)


def test_histogram_of_nothing_is_zeros() -> None:
    """A fresh collector: every bucket, the sum and the count are zero."""
    assert new_collector().histogram("wait", (0.001, 1.0)) == ([0, 0], 0.0, 0)


def test_histogram_folds_what_is_logged_first() -> None:
    """Completions logged through the manager's hooks (not yet folded) are counted."""
    collector = new_collector()
    completion = collector.recorders().completion
    for _ in range(3):
        completion((10.0, 0.002, 0.001))  # (finished_at, run, wait), as the manager logs
    assert collector.histogram("execution", (0.001, 0.01)) == ([0, 3], pytest.approx(0.006), 3)
    assert collector.metrics().total_tasks_completed == 3


def test_histogram_of_a_full_batch_counts_every_task() -> None:
    """A full batch (folded under load) puts each task in its bucket: the counts are exact."""
    collector = new_collector()
    completion = collector.recorders().completion
    for i in range(4098):
        completion((10.0, 0.001 if i < 2049 else 0.1, 0.0))
    collector.fold_if_long()
    counts, _, count = collector.histogram("execution", (0.01, 1.0))
    assert count == 4098
    assert counts == [2049, 4098]


def test_histogram_rejects_an_unknown_kind() -> None:
    """kind is "execution" or "wait"."""
    with pytest.raises(ValueError, match="'run'"):
        new_collector().histogram("run", (1.0,))  # type: ignore[arg-type]


def test_fold_listener_gets_every_duration_exactly() -> None:
    """A listener sees each batch's runs and waits in full, a full batch included."""
    collector = new_collector()
    batches: list[tuple[list[float], list[float]]] = []
    collector.add_fold_listener(lambda runs, waits: batches.append((runs, waits)))
    completion = collector.recorders().completion
    for i in range(4098):
        completion((10.0, i / 1e6, i / 1e7))
    collector.fold_if_long()  # a full, sampled batch
    completion((11.0, 0.5, 0.25))
    collector.metrics()  # a partial batch
    collector.metrics()  # nothing new: no call
    assert [len(runs) for runs, _ in batches] == [4098, 1]
    assert batches[0][0] == [i / 1e6 for i in range(4098)]
    assert batches[0][1] == [i / 1e7 for i in range(4098)]
    assert batches[1] == ([0.5], [0.25])


def test_a_raising_fold_listener_is_logged_and_harms_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The collector counts on, and later listeners still hear the batch."""
    collector = new_collector()
    heard: list[int] = []

    def broken(runs: list[float], waits: list[float]) -> None:
        raise RuntimeError("exporter bug")

    collector.add_fold_listener(broken)
    collector.add_fold_listener(lambda runs, waits: heard.append(len(runs)))
    collector.record_completion(stamps(wait=0.1, run=0.2))
    with caplog.at_level(logging.ERROR, logger="tasker_aio"):
        metrics = collector.metrics()
    assert metrics.total_tasks_completed == 1
    assert metrics.average_execution_time == pytest.approx(0.2)
    assert heard == [1]
    assert "fold listener" in caplog.text
    assert "exporter bug" in caplog.text


def test_removed_fold_listener_hears_nothing_more() -> None:
    """remove_fold_listener stops the calls; removing one never added is ignored."""
    collector = new_collector()
    heard: list[int] = []

    def listener(runs: list[float], waits: list[float]) -> None:
        heard.append(len(runs))

    collector.add_fold_listener(listener)
    collector.record_completion(stamps(wait=0.0, run=0.1))
    collector.metrics()
    collector.remove_fold_listener(listener)
    collector.remove_fold_listener(listener)
    collector.record_completion(stamps(wait=0.0, run=0.1))
    collector.metrics()
    assert heard == [1]


def test_histogram_read_from_another_thread_counts_each_task_once() -> None:
    """Reads in another thread while completions are logged: nothing lost or doubled."""
    collector = new_collector()
    completion = collector.recorders().completion
    done = threading.Event()
    counts: list[int] = []

    def read() -> None:
        while not done.is_set():
            counts.append(collector.histogram("execution", (1.0,))[2])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(20_000):
            completion((10.0, 0.001, 0.0))
    finally:
        done.set()
        reader.join(timeout=10)
    assert counts == sorted(counts)
    assert collector.histogram("execution", (1.0,)) == ([20_000], pytest.approx(20.0), 20_000)


def test_a_fold_listener_hears_only_tasks_logged_after_it_was_added() -> None:
    """What was logged before add_fold_listener is folded first, without the listener."""
    collector = new_collector()
    completion = collector.recorders().completion
    completion((10.0, 0.1, 0.0))  # logged, not yet folded
    heard: list[list[float]] = []
    collector.add_fold_listener(lambda runs, waits: heard.append(runs))
    completion((11.0, 0.2, 0.0))
    assert collector.metrics().total_tasks_completed == 2
    assert heard == [[0.2]]
