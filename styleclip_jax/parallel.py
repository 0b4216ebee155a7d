"""The one data-parallel helper every mode uses: a 1-D mesh over the devices, batch sharding, replication.

Programs are written for one device and run SPMD through `jax.jit` with `NamedSharding`s (no pmap): the
batch axis (pairs, images, channels) is split over the mesh axis "data", parameters are replicated, and XLA
inserts the collectives. Batches are padded to a multiple of the device count by repeating their last row;
callers drop the padding from the results.

Several processes (`jax.distributed.initialize`, one per host): a mesh over `jax.devices()` spans all of
them (mapper training, latent optimisation), or each process runs its own share of independent work units
on a mesh of its local devices (the fs3 sweep: `process_share`) and the results meet through `allgather`.
Only process 0 writes files and prints progress (`is_writer`).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, TypeVar

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
