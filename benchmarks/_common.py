"""Shared helpers for the benchmarks: timing, XLA cost analysis, device peak."""
from __future__ import annotations

import contextlib
import fcntl
import os
import time

import jax

# Dense peak FLOP/s by device kind: (float32 without tensor cores, tf32 tensor cores, bf16 tensor cores).
PEAKS = {
    "H100": (67e12, 494.7e12, 989e12),   # SXM datasheet, dense (no sparsity)
    "H200": (67e12, 494.7e12, 989e12),
    "A100": (19.5e12, 156e12, 312e12),
    "TPU v4": (275e12, 275e12, 275e12),
    "TPU v5": (197e12, 197e12, 197e12),
}


def _cpuinfo():
    """(model name, cpu family, model, MHz, flags set, logical CPUs usable by this process) from /proc/cpuinfo."""
    info, flags = {}, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "flags":
                    flags = set(v.split())
                elif k and k not in info:
                    info[k] = v
    except OSError:
        pass
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (info.get("model name", "?"), int(info.get("cpu family", 0) or 0), int(info.get("model", 0) or 0),
            float(info.get("cpu MHz", 0) or 0), flags, ncpu)


def cpu_fp32_peak():
    """(FP32 peak FLOP/s of the CPUs this process may use, a line saying how it was derived).

    peak = cores x FMA pipes x FP32 lanes per pipe x 2 (an FMA is 2 FLOP) x clock. Assumptions, stated in the
    line: every logical CPU is a full core (a VM's vCPUs; with SMT two threads share one core's pipes);
    2 FMA pipes per core (Zen 1-5, Skylake-SP and later Xeons with 2 AVX-512 FMA units); the pipe width
    is 256 bit on AMD Zen 1-4 (AVX-512 is executed as two 256-bit halves on Zen 4) and whatever the widest
    flag says elsewhere (avx512f: 512 bit, avx2/fma: 256, else 128); the clock is /proc/cpuinfo's
    'cpu MHz' (under KVM the TSC rate: the nominal clock; boost, if any, is invisible and not counted)."""
    name, family, model, mhz, flags, ncpu = _cpuinfo()
    amd = "AMD" in name or "EPYC" in name or "Ryzen" in name
    if "avx512f" in flags and not (amd and family in (23, 25)):  # Zen 1-4 = families 0x17, 0x19
        width, why = 512, "avx512f"
    elif "avx512f" in flags or "avx2" in flags or "fma" in flags:
        width = 256
        why = ("avx512f executed as 2x256-bit on AMD family 0x19 (Zen 4)" if "avx512f" in flags
               else "avx2/fma")
    else:
        width, why = 128, "sse only"
    lanes = width // 32
    fma_pipes = 2 if ("fma" in flags) else 1
    flop_per_cycle = fma_pipes * lanes * (2 if "fma" in flags else 1)
    peak = ncpu * flop_per_cycle * mhz * 1e6
    line = (f"CPU FP32 peak {peak / 1e9:.0f} GFLOP/s = {ncpu} cores x {fma_pipes} FMA pipes x {lanes} FP32 lanes "
            f"({width}-bit: {why}) x 2 FLOP/FMA x {mhz / 1e3:.3f} GHz ('{name}', family {family} model {model}; "
            "assumes vCPU = core, 2 FMA pipes, nominal clock from /proc/cpuinfo, no boost)")
    return peak, line


def device_peak(precision: str = "float32"):
    """Dense peak FLOP/s of device 0 for `precision`: 'float32' (jax 'highest'), 'tf32' (jax 'default' on
    NVIDIA GPUs) or 'bf16'; None if the device kind is unknown. On CPU the FP32 peak of `cpu_fp32_peak`
    for every precision (XLA:CPU runs float32 convolutions)."""
    if jax.default_backend() == "cpu":
        return cpu_fp32_peak()[0] or None
    kind = jax.devices()[0].device_kind
    col = {"float32": 0, "highest": 0, "tf32": 1, "default": 1, "bf16": 2, "bfloat16": 2}[precision]
    for k, peaks in PEAKS.items():
        if k.lower() in kind.lower():
            return peaks[col]
    return None


def set_precision(precision: str):
    """Set JAX's default matmul/conv precision ('highest' or 'default'), print the device line, and return
    the device's peak FLOP/s for it (None if unknown). 'bfloat16' means 'default' for JAX plus bfloat16
    generator convolutions, which the caller passes to the method's config (`generator_precision`), and
    returns the bf16 peak."""
    jax.config.update("jax_default_matmul_precision", "default" if precision == "bfloat16" else precision)
    peak = device_peak(precision)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), precision={precision}, "
          f"peak={fmt(peak and peak / 1e12)} TFLOP/s", flush=True)
    if jax.default_backend() == "cpu":
        print(cpu_fp32_peak()[1], flush=True)
    return peak


def generator_precision(precision: str) -> str:
    """The methods' `precision` (generator convs) for a benchmark --precision flag."""
    return "bfloat16" if precision == "bfloat16" else "float32"


def compile_once(fn, *args):
    """(compiled executable, FLOPs from XLA's cost analysis or None, compile seconds) for jit(fn)(*args).

    One compilation serves both the FLOP count and the timing. XLA counts a while/scan body once, so
    for a looped program the count is about one iteration plus what runs outside the loop.
    """
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    sec = time.perf_counter() - t0
    try:
        ca = compiled.cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0] if ca else {}
        flops = float((ca or {}).get("flops", 0.0)) or None
    except Exception:  # cost analysis is best-effort on some backends
        flops = None
    return compiled, flops, sec


def emit(headers, row):
    """Print one result row as soon as it is measured (a run cut short by a time limit keeps it)."""
    print("row: " + ", ".join(f"{h}={v}" for h, v in zip(headers, row)), flush=True)


@contextlib.contextmanager
def device_lock():
    """Hold the file lock named by $BENCH_LOCK while timing, so benchmarks started in parallel (to overlap
    their compilations on the host) never share the device while they are timed. No-op when unset."""
    path = os.environ.get("BENCH_LOCK")
    if not path:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def time_fn(fn, *args, iters: int = 5, warmup: int = 1) -> float:
    """Median seconds per call of `fn(*args)` (blocking on the result), after compilation; the first
    (warm-up) call and the timed calls run under `device_lock()`."""
    with device_lock():
        return _time_fn(fn, *args, iters=iters, warmup=warmup)


def _time_fn(fn, *args, iters, warmup):
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
    if not rows:
        return
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))
