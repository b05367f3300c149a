"""The engine behind :class:`~tasker_aio.TaskManager`, in parts.

Each part owns one concern and is wired to the others by the facade
(``tasker_aio/_manager.py``)::

    run.RunState        the manager's state, kill scopes, work still held (read by all)
    loop.loop_thread    "is this call on the manager's loop?" (asyncio internals live here)
    hooks.Hooks         calling user hooks and the logger: anything they raise contained
    queues              the task record and the two queues (asyncio.Queue subclasses)
    admission.Admission bounded admission, the line of callers waiting for room
    outcomes.Outcomes   answers, failures, retries now or after a backoff, kill answers
    failures            judging a failure: check_health, the error a caller gets
    slots.Slots         live resources counted against max_resources
    resources.Resources on_create with retries, on_destroy shielded and bounded
    care.Care           check, reset and recycle a held resource
    pool.ResourcePool   run_task's idle resources
    crew.Crew           what a worker may use of the others (a protocol)
    worker.Worker       one worker's loop: take a task, run it, settle it
    idle.IdleWorkers    idle workers, woken last-in first-out, base first
    workers.WorkerSet   spawning, waking, interrupting, retiring
    scaling             the pure decide() and the loop that applies it
    events.EventBus     lifecycle events to each subscriber's bounded buffer
    callbacks.Callbacks delivering outcomes to callbacks
    recording           the collector's per-task hooks
    lifecycle.Lifecycle entering, stop, kill and the order of shutdown

A task's path: ``submit``/``queue_task`` -> ``Admission.offer`` (queued, or in line
for room) -> a ``Worker`` pops it (priority first) and runs it on its resource ->
success answers its future; a failure goes to ``Outcomes.failed``, which answers it,
re-queues it (unhealthy: at once, to the priority queue) or sets a backoff timer
(healthy), and tells the worker whether to replace its resource through
``Resources``.
"""
