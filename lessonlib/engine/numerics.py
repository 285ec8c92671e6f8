"""What this machine computes with: the CPU, the training precision (and the switch that forces it),
and the identity of those numerics that notebook outputs are recorded with.

Training numbers are reproducible bit for bit only where the numerics are the same: the kernels a CPU
family gets (AVX2 vs AVX-512/AMX), the precision (bf16 where a CPU computes it natively, fp32 where it
does not), the thread count (it changes the order of sums) and the torch version. `numerics_identity`
names those; nbval compares a notebook's training numbers only where they match (notebooks/conftest.py).
"""

import contextlib
import os
import platform

import torch

from lessonlib.core import default_device

PRECISION_ENV = "LESSONLIB_PRECISION"
PRECISIONS = ("fp32", "bf16")
# CPU flags that pick different kernels, or bf16 at all: AVX2 vs AVX-512 GEMMs, native bf16 products
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_info(field: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    """The first CPU's `field` in /proc/cpuinfo ("vendor_id": "AuthenticAMD", "flags": "fpu ... avx2 ..."),
    "" where the file does not say (not Linux)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return ""


def native_amp(device=None):
    """The Learner's `amp` for the hardware's native low precision: None on an accelerator (the Learner
    picks bf16 or fp16 there), "bf16" on a CPU that computes bfloat16 natively (AVX512-BF16 or AMX:
    faster than fp32), else False (emulated bf16 would be slower than fp32)."""
    device = torch.device(device) if device is not None else default_device()
    if device.type != "cpu":
        return None
    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else False
    except (AttributeError, RuntimeError):
        return False


def training_amp(device=None):
    """The `amp` the IMDB recipes train with: `$LESSONLIB_PRECISION` if set ("fp32": no autocast, "bf16":
    bf16 autocast, emulated and slow on a CPU without native bf16), else `native_amp(device)`."""
    forced = os.environ.get(PRECISION_ENV, "").strip().lower()
    if not forced:
        return native_amp(device)
    if forced not in PRECISIONS:
        raise ValueError(f"{PRECISION_ENV}={forced!r}: use one of {PRECISIONS}, or unset it for the "
                         "hardware's native precision")
    return "bf16" if forced == "bf16" else False


PRECISION_CHOICES = ("auto", "native", "fp32", "bf16", "fp16")


def check_precision(precision: str) -> str:
    """`precision` if it is one of PRECISION_CHOICES, else a ValueError naming them."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision={precision!r}: use one of {PRECISION_CHOICES}")
    return precision


def precision_amp(precision: str, device=None):
    """The Learner's `amp` for a `TrainConfig.precision`: "auto" = low precision on an accelerator
    only (fp32 on a CPU), "native" = `training_amp` (also bf16 on a CPU that computes it natively;
    `$LESSONLIB_PRECISION` overrides), "fp32", "bf16" or "fp16" = that precision everywhere."""
    if check_precision(precision) == "native":
        return training_amp(device)
    return {"auto": None, "fp32": False, "bf16": "bf16", "fp16": "fp16"}[precision]


def numerics_identity(device=None) -> dict:
    """What decides the training numbers here: device, CPU vendor and the ISA flags that pick kernels,
    training precision, torch threads and torch version. Equal identities give equal outputs."""
    device = torch.device(device) if device is not None else default_device()
    amp = training_amp(device)
    flags = set(cpu_info("flags").split())
    return {
        "device": device.type,
        "machine": platform.machine(),
        "cpu_vendor": cpu_info("vendor_id"),
        "cpu_flags": [f for f in ISA_FLAGS if f in flags],
        "precision": {False: "fp32", "bf16": "bf16", None: "auto"}.get(amp, str(amp)),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def identity_differences(recorded: dict | None, here: dict) -> list[str]:
    """The fields in which `here` differs from `recorded`, as "field: recorded -> here" lines; every field
    when nothing was recorded."""
    if not recorded:
        return ["no machine identity recorded with the outputs"]
    return [f"{key}: {recorded.get(key)} -> {here.get(key)}" for key in sorted(set(recorded) | set(here))
            if recorded.get(key) != here.get(key)]


def amp_dtype(amp, device: torch.device):
    """The autocast dtype for `amp`: None = bf16 (fp16 where bf16 is missing) on CUDA only, False = off,
    True = on, "bf16" (also on CPU) or "fp16" (CUDA only)."""
    if amp is None:
        amp = device.type == "cuda"
    if amp is False:
        return None
    if amp is True:
        return torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise ValueError(f"amp={amp!r}: use None (auto), False, True, 'bf16' or 'fp16'")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs CUDA; on the CPU use amp='bf16'")
    return dtypes[amp]


def autocast(device: torch.device, dtype):
    """torch.autocast in `dtype` on `device`'s type, or a do-nothing context when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
