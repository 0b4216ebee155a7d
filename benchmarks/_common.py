"""Shared helpers for the benchmarks: timing, XLA cost analysis, device peak."""
from __future__ import annotations

import time

import jax

# Dense peak FLOP/s by device kind: (float32 without tensor cores, tf32/bf16 tensor cores).
PEAKS = {
    "H100": (67e12, 989e12),   # SXM: 67 TF fp32, 989 TF bf16 dense
    "H200": (67e12, 989e12),
    "A100": (19.5e12, 312e12),
    "TPU v4": (275e12, 275e12),
    "TPU v5": (197e12, 197e12),
}


def device_peak(precision: str = "float32"):
    """Best-known dense peak FLOP/s of device 0 for `precision` ('float32' or 'bf16'); None if unknown."""
    kind = jax.devices()[0].device_kind
    for k, (fp32, bf16) in PEAKS.items():
        if k.lower() in kind.lower():
            return fp32 if precision == "float32" else bf16
    return None


def compiled_flops(fn, *args) -> float | None:
    """FLOPs of one call of jitted `fn(*args)` from XLA's cost analysis (None if unavailable)."""
    try:
        ca = jax.jit(fn).lower(*args).compile().cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0]
        return float(ca.get("flops", 0.0)) or None
    except Exception:  # cost analysis is best-effort on some backends
        return None


def time_fn(fn, *args, iters: int = 5, warmup: int = 1) -> float:
    """Median seconds per call of `fn(*args)` (blocking on the result), after compilation."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def print_table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))
