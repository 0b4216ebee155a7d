"""Loading a StyleGAN2 generator checkpoint of any supported format: format detection and dispatch.

Formats: a converted folder (orbax, ``params_io``), an NVlabs network pickle (``nvlabs.py``, read by the
allow-list unpickler in ``safe_pickle.py``, no torch) and a rosinality ``.pt`` (``rosinality.py``, via the
one ``torch.load(weights_only=True)`` reader ``torch_pt.py``). All give the same ``(params, config)``:
the official ``G_ema.state_dict()`` names nested on '.', float32, shapes as in
``models.generator.param_shapes``, without the constant ``resample_filter`` buffers.

The readers' public names are re-exported here (``read_nvlabs_pkl``, ``nvlabs_to_params``,
``read_rosinality_pt``, ``rosinality_to_params``, ``infer_channel_base``, ``flatten_params``,
``STANDARD_FILTER``), so ``from styleclip_jax.checkpoints import stylegan2`` keeps working.
torch is never imported at module import time.
"""
from __future__ import annotations

import pathlib

from ..errors import CheckpointError, CheckpointFormatError, CheckpointNotFoundError, UnsafeCheckpointError
from . import nvlabs, params_io, rosinality
from .generator_params import STANDARD_FILTER, flatten_params
from .nvlabs import nvlabs_to_params, read_nvlabs_pkl
from .rosinality import infer_channel_base, read_rosinality_pt, rosinality_to_params

__all__ = [
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "UnsafeCheckpointError",
    "read_nvlabs_pkl",
    "nvlabs_to_params",
    "read_rosinality_pt",
    "rosinality_to_params",
    "infer_channel_base",
    "load_generator_arrays",
    "detect_format",
    "flatten_params",
    "STANDARD_FILTER",
]


def detect_format(path) -> str:
    """Return 'orbax' (a checkpoint directory), 'nvlabs_pkl' or 'rosinality_pt' for ``path``.

    The extension decides (``.pkl``; ``.pt``/``.pth``/``.ckpt``); otherwise the first bytes do (a zip
    archive is a torch checkpoint; a pickle whose first object is the legacy torch magic number is a
    torch checkpoint; any other pickle is taken as a network pickle).
    """
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: file or directory does not exist")
    if path.is_dir():
        return "orbax"
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        return "nvlabs_pkl"
    if suffix in (".pt", ".pth", ".ckpt"):
        return "rosinality_pt"
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:2] == b"PK":
        return "rosinality_pt"
    if head[:1] == b"\x80":
        # legacy torch.save starts with the pickled magic number (LONG1 opcode 0x8a, 10 bytes).
        if head[2:4] == b"\x8a\x0a":
            return "rosinality_pt"
        return "nvlabs_pkl"
    raise CheckpointFormatError(f"{path}: unknown checkpoint format; expected an NVlabs .pkl, a rosinality "
                                ".pt/.pth, or a converted checkpoint directory")


def load_generator_arrays(path, *, key: str = "G_ema", latent_avg=None) -> tuple[dict, dict]:
    """Load StyleGAN2 generator ``(params, config)`` from any supported source.

    * a directory written by ``checkpoints_convert/convert_stylegan2.py`` (``checkpoints.save_params``);
    * an NVlabs ``.pkl`` network pickle (``key`` picks the network, ``'G_ema'`` by default);
    * a rosinality ``.pt``/``.pth`` checkpoint (``latent_avg`` overrides/supplies the average w).

    The returned config never contains the bookkeeping key ``'kind'``.
    """
    fmt = detect_format(path)
    if fmt == "orbax":
        params, config = params_io.load_params(path)
        kind = config.pop("kind", "stylegan2_generator")
        if kind != "stylegan2_generator":
            raise CheckpointFormatError(f"{path}: checkpoint kind is {kind!r}, expected 'stylegan2_generator'")
        return params, config
    if fmt == "nvlabs_pkl":
        sd, kwargs = nvlabs.read_nvlabs_pkl(path, key=key)
        return nvlabs.nvlabs_to_params(sd, kwargs, source=f"{path} [{key}]")
    sd, stored_avg = rosinality.read_rosinality_pt(path)
    return rosinality.rosinality_to_params(sd, stored_avg if latent_avg is None else latent_avg, source=str(path))
