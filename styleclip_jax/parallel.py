"""The one data-parallel helper every mode uses: a 1-D mesh over the devices, batch sharding, replication.

Programs are written for one device and run SPMD through `jax.jit` with `NamedSharding`s (no pmap): the
batch axis (pairs, images, channels) is split over the mesh axis "data", parameters are replicated, and XLA
inserts the collectives. Batches are padded to a multiple of the device count by repeating their last row;
callers drop the padding from the results.
"""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def data_mesh(devices: Optional[Sequence] = None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (AXIS,))


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


def describe(mesh: Mesh, per_device: int, unit: str) -> str:
    """The one line a job prints at start: how it runs."""
    n, p = mesh.size, jax.process_count()
    return (f"running on {n} device{'s' if n != 1 else ''} ({p} process{'es' if p != 1 else ''}): "
            f"{per_device} {unit} per device")
