"""Memory-aware batching: the largest per-call batch whose compiled program fits the device's memory.

    need = memory.program_bytes(jitted, *example_args)        # XLA's memory analysis, bytes per device
    avail = memory.available_bytes(fraction=0.9, budget=None)  # free accelerator memory x fraction, or a budget
    b = memory.fit_batch(lambda b: need_at(b), max_batch, avail, "images per sweep call")

`program_bytes` compiles (it does not run) a jitted function for abstract arguments (`jax.ShapeDtypeStruct`
with shardings) and adds XLA's argument, output and temporary buffers (less the donated ones it aliases).
`fit_batch` compiles at batch 1 and 2, extrapolates the linear growth and checks the candidate with one more
compile, so a mode derives its batch from the executable instead of fixed defaults; a program that does not
fit even at batch 1 fails before running with a one-line `ConfigError` giving needed vs available bytes.

Where the budget comes from: accelerators report `device.memory_stats()` (bytes_limit - bytes_in_use);
`--config.memory_fraction` caps the share used. A CPU device reports nothing: there the modes probe only
when given an explicit budget (`--config.memory_budget_mb`), and otherwise keep their fixed defaults (a
probe costs two or three extra compiles, and host RAM rarely binds the small CPU runs).
"""
from __future__ import annotations

from typing import Callable, Optional

import jax

from .errors import ConfigError


# what `program_bytes` returns for a program whose compilation itself ran out of device memory
DOES_NOT_FIT = 1 << 62


def _out_of_memory(err: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(err) or "Out of memory" in str(err)


def program_bytes(jitted, *args, **kwargs) -> int:
    """Bytes per device that the compiled `jitted(*args, **kwargs)` holds at its peak: arguments + outputs +
    temporaries - donated (aliased) buffers, from `compiled.memory_analysis()`. Args may be abstract.

    On GPUs compiling runs cuDNN autotuning, which allocates real buffers: a candidate batch far too big for the
    device can fail to COMPILE with RESOURCE_EXHAUSTED (seen on an H100, benchmarks/results/2026-12-06_h100/
    run2_global_direction.txt). Such a program does not fit: DOES_NOT_FIT is returned instead of the error."""
    try:
        stats = jitted.lower(*args, **kwargs).compile().memory_analysis()
    except Exception as e:  # jax.errors.JaxRuntimeError (XlaRuntimeError in older jax)
        if _out_of_memory(e):
            return DOES_NOT_FIT
        raise
    if stats is None:  # a backend without the analysis
        return 0
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
               - stats.alias_size_in_bytes)


def abstract(tree, sharding=None):
    """`jax.ShapeDtypeStruct`s (with `sharding`) of a pytree of arrays: what `program_bytes` compiles for."""
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def device_free_bytes(device=None) -> Optional[int]:
    """Free memory of an accelerator (bytes_limit - bytes_in_use), None where the device reports none (CPU)."""
    device = jax.local_devices()[0] if device is None else device
    try:
        stats = device.memory_stats()
    except Exception:  # backends without the call
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def available_bytes(fraction: float = 0.9, budget: Optional[int] = None, device=None) -> Optional[int]:
    """The bytes a program may use per device: `budget` if given, else the device's free memory x fraction;
    None on a device that reports no memory (CPU) without a budget: nothing to fit, keep the defaults."""
    if not 0 < float(fraction) <= 1:
        raise ConfigError(f"--config.memory_fraction={fraction}: expected a number in (0, 1]")
    if budget is not None:
        if int(budget) <= 0:
            raise ConfigError(f"--config.memory_budget_mb: expected a positive budget, got {budget} bytes")
        return int(budget)
    free = device_free_bytes(device)
    return None if free is None else int(free * float(fraction))


def fit_batch(bytes_at: Callable[[int], int], max_batch: int, available: int, what: str) -> int:
    """The largest batch b in [1, max_batch] with bytes_at(b) <= available.

    bytes_at(b): bytes per device of the program at batch b (`program_bytes`); called for b = 1, 2 and the
    linear extrapolation from them (then smaller candidates until one fits). Raises ConfigError, before
    anything runs, when batch 1 does not fit."""
    max_batch = max(1, int(max_batch))
    need = bytes_at(1)
    if need > available:
        raise ConfigError(f"{what}: the program needs {need:,} bytes per device at batch 1 but {available:,} are "
                          f"available (raise --config.memory_fraction / --config.memory_budget_mb, or use a "
                          f"device with more memory)")
    if max_batch == 1:
        return 1
    need2 = bytes_at(2)
    if need2 > available:
        return 1
    per = max(need2 - need, 1)
    b = int(min(max_batch, 2 + (available - need2) // per))
    while b > 2 and bytes_at(b) > available:
        b = max(2, (b * 3) // 4)
    return b


def memory_args(config) -> dict:
    """`memory_fraction` / `memory_budget` keyword arguments from a mode config's memory fields
    (configs/common.py `memory`: memory_fraction, memory_budget_mb)."""
    mb = config.get("memory_budget_mb")
    if mb is not None and float(mb) <= 0:
        raise ConfigError(f"--config.memory_budget_mb={mb}: expected a positive number of MiB")
    fraction = float(config.get("memory_fraction", 0.9))
    if not 0 < fraction <= 1:
        raise ConfigError(f"--config.memory_fraction={fraction}: expected a number in (0, 1]")
    return {"memory_fraction": fraction, "memory_budget": None if mb is None else int(float(mb) * 2 ** 20)}
