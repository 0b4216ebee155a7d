"""The generator param pytree the StyleGAN2 readers produce: nesting, the check against the model's shapes, FIR filters.

Both readers (``nvlabs.py``, ``rosinality.py``) build ``{official dotted name: float32 array}`` and hand
it to :func:`finish`, which checks it against ``models.generator.param_shapes`` (the one table of
parameter shapes) and nests the names split on '.'.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import CheckpointFormatError
from ..models import layout as layout_lib

__all__ = ["STANDARD_FILTER", "check_filter", "check_layout", "finish", "flatten_params", "num_ws",
           "validate_resolution"]

# outer([1,3,3,1]) / 64: the FIR filter of every official StyleGAN2 generator.
STANDARD_FILTER = (np.outer([1.0, 3.0, 3.0, 1.0], [1.0, 3.0, 3.0, 1.0]) / 64.0).astype(np.float32)


def _set_nested(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def flatten_params(params: Mapping) -> dict[str, np.ndarray]:
    """Nested param dict -> ``{dotted name: array}`` (flax.traverse_util, as models.mapper.flatten_params)."""
    from flax.traverse_util import flatten_dict
    return flatten_dict(dict(params), sep=".")


def num_ws(img_resolution: int) -> int:
    return layout_lib.num_ws(img_resolution)


def validate_resolution(res, source: str) -> int:
    if not isinstance(res, int) or res < 4 or res & (res - 1):
        raise CheckpointFormatError(f"{source}: img_resolution {res!r} is not a power of two >= 4")
    return res


def _model_shapes(config: dict) -> dict[str, tuple]:
    from ..models.generator import GeneratorConfig, param_shapes  # jax is imported only when checking

    try:
        cfg = GeneratorConfig.from_dict(config)
    except (TypeError, ValueError) as e:
        raise CheckpointFormatError(f"invalid generator config {config}: {e}") from None
    return flatten_params(param_shapes(cfg))


def check_layout(flat: Mapping[str, np.ndarray], config: dict, source: str) -> None:
    """Raise if ``flat`` does not hold exactly the parameters (names and shapes) ``config`` implies."""
    try:
        expected = _model_shapes(config)
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{source}: {e}") from None
    missing = [k for k in expected if k not in flat]
    unexpected = [k for k in flat if k not in expected]
    if missing or unexpected:
        raise CheckpointFormatError(
            f"{source}: weights do not match a StyleGAN2 generator with config {config}: "
            f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}")
    for k, shape in expected.items():
        if tuple(flat[k].shape) != tuple(shape):
            raise CheckpointFormatError(f"{source}: {k} has shape {tuple(flat[k].shape)}, expected {tuple(shape)} "
                                        f"for config {config}")


def finish(flat: Mapping[str, np.ndarray], config: dict, source: str) -> tuple[dict, dict]:
    """Check ``flat`` against ``config`` and return ``(nested params, config)``."""
    check_layout(flat, config, source)
    params: dict = {}
    for name, arr in flat.items():
        _set_nested(params, name, arr)
    return params, config


def check_filter(name: str, value: np.ndarray, gain: float, source: str) -> None:
    value = np.asarray(value, dtype=np.float64)
    ref = STANDARD_FILTER.astype(np.float64) * gain
    if value.shape != ref.shape or not np.allclose(value, ref, rtol=0, atol=1e-7):
        raise CheckpointFormatError(f"{source}: {name} is not the standard StyleGAN2 FIR filter "
                                    f"outer([1,3,3,1])/64{' x %g' % gain if gain != 1 else ''}; "
                                    "custom resampling filters are not supported")
