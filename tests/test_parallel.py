"""run_parallel: the same results as calling the function here, in order, one torch thread each."""

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
