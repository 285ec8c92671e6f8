"""Learning-rate schedules: a function of training progress `pct` in [0, 1] that returns
(lr multiplier, beta1/momentum). The Learner multiplies each layer group's peak LR by the first.

Imports nothing of ours.
"""

import functools
import inspect
import math


def cosine(start: float, end: float, pct: float) -> float:
    """Cosine interpolation from `start` (pct=0) to `end` (pct=1)."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


def one_cycle(pct: float, pct_start: float = 0.25, div: float = 25.0, div_final: float = 1e5,
              moms: tuple = (0.95, 0.85)) -> tuple[float, float]:
    """Leslie Smith's one cycle: warm up from lr/div to lr over `pct_start` of training, then anneal to
    lr/div_final, both with cosine curves; momentum moves the other way (high, low, high)."""
    if pct < pct_start:
        p = pct / pct_start
        return cosine(1 / div, 1.0, p), cosine(moms[0], moms[1], p)
    p = (pct - pct_start) / (1 - pct_start)
    return cosine(1.0, 1 / div_final, p), cosine(moms[1], moms[0], p)


def constant(pct: float, mom: float = 0.9) -> tuple[float, float]:
    """The same LR and momentum throughout."""
    return 1.0, mom


SCHEDULES = {"one_cycle": one_cycle, "constant": constant}


def get_schedule(name):
    """A schedule by name ("one_cycle" or "constant"), or a callable `pct -> (lr_mult, mom)` as is."""
    if callable(name):
        return name
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}: use one of {sorted(SCHEDULES)} or a callable "
                         "pct -> (lr multiplier, momentum)")
    return SCHEDULES[name]


def schedule_name(schedule) -> str:
    """What a checkpoint records of a fit's schedule, the same in every process: its name, or a
    callable's module and qualified name (a partial's with its arguments, an instance's with its
    attributes), never a memory address."""
    if isinstance(schedule, str):
        return schedule
    named = [name for name, fn in SCHEDULES.items() if fn is schedule]
    if named:  # one_cycle and "one_cycle" are one schedule
        return named[0]
    if isinstance(schedule, functools.partial):
        args = [repr(a) for a in schedule.args] + [f"{k}={v!r}" for k, v in schedule.keywords.items()]
        return f"{schedule_name(schedule.func)}({', '.join(args)})"
    if inspect.isroutine(schedule) or isinstance(schedule, type):
        return f"{schedule.__module__}.{schedule.__qualname__}"
    cls = type(schedule)  # an instance of a callable class: its settings tell two instances apart
    state = ", ".join(f"{k}={v!r}" for k, v in sorted(getattr(schedule, "__dict__", {}).items()))
    return f"{cls.__module__}.{cls.__qualname__}({state})"
