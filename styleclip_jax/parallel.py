"""The one data-parallel helper every mode uses: a 1-D mesh over the devices, batch sharding, replication.

Programs are written for one device and run SPMD through `jax.jit` with `NamedSharding`s (no pmap): the
batch axis (pairs, images, channels) is split over the mesh axis "data", parameters are replicated, and XLA
inserts the collectives. Batches are padded to a multiple of the device count by repeating their last row;
callers drop the padding from the results.

Several processes (`jax.distributed.initialize`, one per host): a mesh over `jax.devices()` spans all of
them (mapper training, latent optimisation), or each process runs its own share of independent work units
on a mesh of its local devices (the fs3 sweep: `process_share`) and the results meet through `allgather`.
Only process 0 writes files and prints progress (`is_writer`). Row-independent work (statistics, generation,
encoding, mapper inference, the renders of edit studies) runs through `map_batched` / `iter_batched`: calls
of a fixed number of rows per device over every device of every process, sized to the free memory.
"""
from __future__ import annotations

import functools
from typing import Callable, Iterator, List, Optional, Sequence, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"
T = TypeVar("T")


def data_mesh(devices: Optional[Sequence] = None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (AXIS,))


def local_mesh(devices: Optional[Sequence] = None) -> Mesh:
    """A 1-D mesh over this process's devices (default: `jax.local_devices()`); refuses other processes'."""
    devices = list(jax.local_devices() if devices is None else devices)
    me = jax.process_index()
    foreign = [d for d in devices if d.process_index != me]
    if foreign:
        raise ValueError(f"devices {foreign} belong to other processes; this work runs on process {me}'s own "
                         "devices (jax.local_devices())")
    return data_mesh(devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the mesh."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def padded_size(n: int, mesh: Mesh) -> int:
    """The smallest multiple of the device count that holds n rows."""
    return -(-int(n) // mesh.size) * mesh.size


def pad_index(index: np.ndarray, mesh: Mesh) -> np.ndarray:
    """Row indices padded (repeating the last one) to a multiple of the device count."""
    index = np.asarray(index)
    extra = padded_size(len(index), mesh) - len(index)
    return np.concatenate([index, np.repeat(index[-1:], extra)]) if extra else index


def is_writer() -> bool:
    """True on the one process that writes files and prints progress (process 0)."""
    return jax.process_index() == 0


def process_share(items: Sequence[T], process_index: Optional[int] = None,
                  process_count: Optional[int] = None) -> List[T]:
    """This process's share of a list of independent work units: items i with i % process_count ==
    process_index. Deterministic given the list, so every process agrees on who does what, and a resumed
    run with another process count re-deals only the units that are still unfinished."""
    p = jax.process_index() if process_index is None else int(process_index)
    n = jax.process_count() if process_count is None else int(process_count)
    return list(items[p::n])


def allgather(x: np.ndarray) -> np.ndarray:
    """(process_count, *x.shape): x from every process, in process order (x itself, stacked, on one process).
    Every process must call it with the same shape and dtype."""
    x = np.asarray(x)
    if jax.process_count() == 1:
        return x[None]
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=False))


def broadcast_from_writer(x):
    """Process 0's value of the pytree x on every process (same structure and shapes everywhere)."""
    if jax.process_count() == 1:
        return x
    from jax.experimental import multihost_utils
    return multihost_utils.broadcast_one_to_all(x)


def to_host(tree):
    """numpy copies of a pytree of arrays; an array sharded across processes is gathered whole on every one."""
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)
    return jax.tree_util.tree_map(one, tree)


_BATCHED: dict = {}


def _fn_key(fn):
    if isinstance(fn, functools.partial):  # partials of a module-level function: equal when their arguments are
        return (fn.func, fn.args, tuple(sorted(fn.keywords.items())))
    return fn


def _jitted(fn, mesh: Mesh):
    key = (_fn_key(fn), mesh)
    if key not in _BATCHED:
        _BATCHED[key] = jax.jit(fn, out_shardings=batch_sharded(mesh))
    return _BATCHED[key]


def rows_per_device(rows_per_call: int, devices=None) -> int:
    """A config's rows per call over all devices (batch_size) as rows per device, rounded up."""
    return -(-int(rows_per_call) // data_mesh(devices).size)


def batch_plan(fn: Callable, consts, rows, per_device: int, *, devices=None, memory_fraction: float = 0.9,
               memory_budget: Optional[int] = None, what: str = "rows"):
    """(mesh, rows per device per call) for `iter_batched`: per_device capped by the rows there are and, where the
    device reports its memory (or a budget is given), by the largest call that fits (`memory.fit_batch` on XLA's
    analysis of the compiled call; a call that does not fit at 1 row per device: ConfigError, before running)."""
    from . import memory
    mesh = data_mesh(devices)
    n = int(jax.tree_util.tree_leaves(rows)[0].shape[0])
    per_device = max(1, min(int(per_device), -(-n // mesh.size)))
    avail = memory.available_bytes(memory_fraction, memory_budget, jax.local_devices()[0])
    if avail is not None and n:
        f, bat = _jitted(fn, mesh), batch_sharded(mesh)
        c_abs = memory.abstract(consts, replicated(mesh))

        def bytes_at(b):
            r_abs = jax.tree_util.tree_map(
                lambda a: jax.ShapeDtypeStruct((b * mesh.size,) + np.shape(a)[1:], a.dtype, sharding=bat), rows)
            return memory.program_bytes(f, c_abs, r_abs)
        per_device = memory.fit_batch(bytes_at, per_device, avail, what + " per device")
    # every process must run calls of the same shape: process 0's fit decides (the hosts' devices are alike)
    return mesh, int(broadcast_from_writer(np.int32(per_device)))


def iter_batched(fn: Callable, consts, rows, per_device: int, *, mesh: Optional[Mesh] = None) -> Iterator:
    """Yield (start, outputs) of `fn(consts, rows[start:start + call])` for consecutive calls of
    call = per_device x mesh.size rows, each call's rows split over the devices of every process (`mesh`: default
    `data_mesh()`), `consts` (parameters) replicated. Outputs come back as numpy on every process, trimmed to the
    rows there are. fn must treat rows independently (mapping, rendering, encoding): results then equal one
    device's. The last call is padded by repeating its last row, so every call has one shape (one compile)."""
    mesh = data_mesh() if mesh is None else mesh
    call = int(per_device) * mesh.size
    f, rep, bat = _jitted(fn, mesh), replicated(mesh), batch_sharded(mesh)
    consts = jax.device_put(consts, rep)
    n = int(jax.tree_util.tree_leaves(rows)[0].shape[0])
    for i0 in range(0, n, call):
        m = min(call, n - i0)

        def take(a):
            a = np.asarray(a[i0:i0 + m])
            return np.concatenate([a, np.repeat(a[-1:], call - m, axis=0)]) if m < call else a
        out = to_host(f(consts, jax.device_put(jax.tree_util.tree_map(take, rows), bat)))
        yield i0, jax.tree_util.tree_map(lambda a: a[:m], out)


def map_batched(fn: Callable, consts, rows, per_device: int, *, devices=None, memory_fraction: float = 0.9,
                memory_budget: Optional[int] = None, what: str = "rows", verbose: bool = False):
    """All outputs of `iter_batched`, concatenated along the rows (numpy pytree), with the calls sized by
    `batch_plan`; verbose: print the `describe` line first (process 0)."""
    mesh, per = batch_plan(fn, consts, rows, per_device, devices=devices, memory_fraction=memory_fraction,
                           memory_budget=memory_budget, what=what)
    if verbose and is_writer():
        print("  " + describe(mesh, per, what), flush=True)
    parts = [out for _, out in iter_batched(fn, consts, rows, per, mesh=mesh)]
    return jax.tree_util.tree_map(lambda *p: np.concatenate(p), *parts)


def describe(mesh: Mesh, per_device: int, unit: str) -> str:
    """The one line a job prints at start: how it runs. A mesh of this process's devices only, in a run of
    several processes, stands for the same mesh on every process (work dealt out by `process_share`)."""
    p = jax.process_count()
    me = jax.process_index()
    local = all(d.process_index == me for d in mesh.devices.flat)
    n = mesh.size * p if (local and p > 1) else mesh.size
    where = f"{p} process{'es' if p != 1 else ''}"
    if local and p > 1:
        where += f", {mesh.size} device{'s' if mesh.size != 1 else ''} each"
    return f"running on {n} device{'s' if n != 1 else ''} ({where}): {per_device} {unit} per device"


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> str:
    """`jax.distributed.initialize` (main.py --distributed): with no arguments the settings are auto-detected
    (TPU VM slices, SLURM, Open MPI, ...); explicit ones run several processes anywhere, e.g. on one machine
    for testing (`--coordinator_address=127.0.0.1:PORT --num_processes=2 --process_id=I`; on CPU the
    processes talk through gloo collectives). Returns the line that says how the run is set up."""
    explicit = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(explicit) and not all(explicit):
        from .errors import ConfigError
        raise ConfigError("--coordinator_address, --num_processes and --process_id go together (or none of them: "
                          "auto-detected settings)")
    if coordinator_address is not None and not (0 <= int(process_id) < int(num_processes)):
        from .errors import ConfigError
        raise ConfigError(f"--process_id={process_id}: expected 0 <= process_id < --num_processes={num_processes}")
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes need a collective backend
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
    return run_line()


def run_line() -> str:
    """`running on N devices (P processes)`: the job-independent part of the line every job prints at start."""
    n, p = jax.device_count(), jax.process_count()
    return f"running on {n} device{'s' if n != 1 else ''} ({p} process{'es' if p != 1 else ''})"
