"""Independent training runs side by side, one process per CPU core, one torch thread each.

A small model cannot keep every core of a CPU busy: its matrix products are too small to split well
across threads. Several single-threaded runs side by side then finish sooner than the same runs one
after another on all the cores (benchmarks/README.md has the measured ratio). Each run's numbers
depend only on its own arguments (seed them inside `fn`), not on which process ran it or when.
"""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch

from lessonlib.core import progress


def _one_thread() -> None:
    torch.set_num_threads(1)


def run_parallel(fn, jobs: list[dict], workers: int | None = None, desc: str = "runs",
                 show: bool = True) -> list:
    """`[fn(**job) for job in jobs]`, computed `workers` at a time (default: one per CPU core) in
    separate processes with one torch thread each, a progress bar over the jobs unless `show` is False.
    The first job to fail (or a worker that dies) raises at once, and the jobs still running are
    stopped, as on an interrupt. `fn` must be importable (defined in a module, not a notebook), its
    arguments and results picklable. The one process pool of lessonlib: the notebooks' training runs
    and tokenization use it."""
    workers = workers or os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")  # a forked child would inherit torch's thread pool
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread)
    try:
        futures = [pool.submit(fn, **job) for job in jobs]
        for done in progress(as_completed(futures), total=len(futures), desc=desc, disable=not show):
            done.result()  # the first failure raises here, not after every other job
        return [f.result() for f in futures]
    except BaseException:
        _stop(pool)
        raise
    finally:
        pool.shutdown()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the jobs not started and end the running ones (the executor has no public way to; its
    `_processes` are the worker processes)."""
    running = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in running:
        process.terminate()
