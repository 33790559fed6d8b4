"""Independent backtest work in worker processes, with the serial run's results, in order.

`--workers N` runs the walk-forward's nights (`walkforward`) and the sweep's settings
(`frontier`) this way: each task is a pure function of what is sent to it, so where it
runs changes nothing (tests compare serial and parallel runs value for value). Workers
are spawned (a forked copy of a process holding sklearn's thread pools can hang), each
capped at CPUs / workers threads so that the processes do not fight over cores. Where
workers cannot start (a daemonic process; a script without a main guard, which breaks
the pool) the tasks not yet done run here, serially, with the same result.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool


def default_workers() -> int:
    """Both cores of the documented machine: one worker process per CPU this process may use."""
    return max(1, os.process_cpu_count() or 1)


def _limit_worker_threads(threads: int) -> None:
    # joblib (sklearn's n_jobs=-1) sizes its thread pool from this: two workers with two
    # threads each would fight over two cores.
    os.environ["LOKY_MAX_CPU_COUNT"] = str(threads)


def run_in_processes[Task, Result](
    function: Callable[[Task], Result],
    tasks: Sequence[Task],
    workers: int,
    on_result: Callable[[int, Result], None] | None = None,
    progress: Callable[[str], None] | None = None,
    remaining: str = "running the remaining tasks",
) -> list[Result]:
    """`[function(task) for task in tasks]`, in `workers` processes when more than one
    (`function` and the tasks must then pickle: a module-level function, a
    `functools.partial` of one). `on_result(position, result)` is called here, in order,
    as each result is in. If the workers fail, `progress` hears `remaining` + " serially"."""
    results: list[Result] = []

    def record(result: Result) -> None:
        results.append(result)
        if on_result is not None:
            on_result(len(results) - 1, result)

    # A daemonic process (a multiprocessing.Pool worker running backtests) may not start
    # processes of its own: its tasks run serially.
    if workers > 1 and len(tasks) > 1 and not multiprocessing.current_process().daemon:
        threads = max(1, default_workers() // workers)
        try:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(tasks)),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_worker_threads,
                initargs=(threads,),
            ) as pool:
                futures = [pool.submit(function, task) for task in tasks]
                for future in futures:
                    record(future.result())
        except BrokenProcessPool as error:
            # A worker could not start (a script that calls the backtest without an
            # `if __name__ == "__main__":` guard re-runs itself in every spawned process).
            if progress is not None:
                progress(f"worker processes failed ({error}); {remaining} serially")
    for task in tasks[len(results) :]:
        record(function(task))
    return results
