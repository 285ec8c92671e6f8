"""run_parallel: the same results as calling the function here, in order, one torch thread each."""

import time

import pytest
import torch

from lessonlib.parallel import run_parallel


def draw(seed: int) -> tuple[int, list[float]]:
    """What a worker sees: its thread count, and a seeded draw (the job's own RNG, not the process's)."""
    torch.manual_seed(seed)
    return torch.get_num_threads(), torch.rand(3).tolist()


def test_jobs_come_back_in_order_single_threaded_and_as_if_run_here():
    jobs = [dict(seed=s) for s in (5, 1, 5, 2)]
    results = run_parallel(draw, jobs, workers=2)
    assert [threads for threads, _ in results] == [1, 1, 1, 1]
    assert [values for _, values in results] == [draw(**job)[1] for job in jobs]


def fail_or_sleep(seconds: float) -> float:
    if seconds == 0:
        raise RuntimeError("job failed at once")
    time.sleep(seconds)
    return seconds


def test_a_failed_job_is_reported_at_once_not_after_the_others_finish():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="job failed at once"):
        run_parallel(fail_or_sleep, [dict(seconds=60), dict(seconds=0), dict(seconds=60)], workers=2,
                     show=False)
    assert time.perf_counter() - start < 30  # the sleeping jobs are stopped, not waited for
