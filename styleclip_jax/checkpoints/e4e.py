"""e4e / pSp checkpoints: the official ``.pt`` (encoder + rosinality decoder + opts + latent_avg) and converted folders.

An official checkpoint (``e4e_ffhq_encode.pt``, pSp's ``psp_ffhq_encode.pt``) is
``{'state_dict': {'encoder.*': ..., 'decoder.*': ...}, 'opts': dict, 'latent_avg': tensor}``; ``opts`` names
``encoder_type`` (``Encoder4Editing`` / ``GradualStyleEncoder``), ``stylegan_size`` and
``start_from_latent_avg``.  It is read once with ``torch_pt.load`` (``torch.load(weights_only=True)``).
A converted folder (``checkpoints_convert/convert_encoder.py``) is ``params_io`` orbax + ``config.json``
and loads without torch.  ``load_generator_arrays`` returns the ``decoder.*`` generator (rosinality layout,
mapped by ``stylegan2.rosinality_to_params``), so one file gives a matching encoder/generator pair.
"""
from __future__ import annotations

import os
import pathlib
import zipfile
from typing import Any, Mapping

import numpy as np

from ..errors import CheckpointFormatError, CheckpointNotFoundError
from . import torch_pt

WHAT = "e4e/pSp checkpoint (.pt)"
CONFIG_KIND = "encoder"
_SNIFF = b"encoder.input_layer"
_LEGACY_HEAD = 4 << 20


def is_e4e_checkpoint(path) -> bool:
    """True when ``path`` is a torch file whose pickle names ``encoder.input_layer*`` keys (an e4e/pSp
    checkpoint). Reads only the pickle (the zip's ``data.pkl``, or the first 4 MB of a legacy file)."""
    path = pathlib.Path(path)
    if not path.is_file() or path.suffix.lower() == ".pkl":
        return False
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("data.pkl")]
                return bool(names) and _SNIFF in z.read(names[0])
        with open(path, "rb") as f:
            return _SNIFF in f.read(_LEGACY_HEAD)
    except (OSError, zipfile.BadZipFile):
        return False


def read_e4e_pt(path) -> tuple[dict, dict, Any]:
    """Read an official checkpoint -> (state dict {key: numpy}, opts dict, latent_avg numpy or None)."""
    import argparse

    obj = torch_pt.load(path, WHAT, safe_globals=[argparse.Namespace])
    if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        keys = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointFormatError(f"{path}: expected an e4e/pSp checkpoint {{'state_dict': {{'encoder.*', "
                                    f"'decoder.*'}}, 'opts', 'latent_avg'}}, got {keys}")
    opts = obj.get("opts", {})
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    if not isinstance(opts, Mapping):
        raise CheckpointFormatError(f"{path}: 'opts' is a {type(opts).__name__}, expected a dict")
    sd = {str(k): torch_pt.to_numpy(v, k, path) for k, v in obj["state_dict"].items()}
    latent_avg = obj.get("latent_avg")
    if latent_avg is not None:
        latent_avg = torch_pt.to_numpy(latent_avg, "latent_avg", path)
    return sd, dict(opts), latent_avg


def _generator_size(opts: Mapping):
    """The generator resolution the options name: e4e's ``stylegan_size`` (pSp calls it ``output_size``)."""
    for key in ("stylegan_size", "output_size"):
        if opts.get(key) is not None:
            return int(opts[key])
    return None


def encoder_from_checkpoint(sd: Mapping, opts: Mapping, latent_avg, source: str):
    """Encoder from the pieces of an official checkpoint (``encoder.*`` keys of ``sd``)."""
    from ..models import encoder as enc

    enc_sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    if not enc_sd:
        raise CheckpointFormatError(f"{source}: no 'encoder.*' keys in state_dict; not an e4e/pSp checkpoint")
    etype = opts.get("encoder_type")
    if etype not in enc.ENCODER_TYPES:
        raise CheckpointFormatError(f"{source}: opts['encoder_type'] is {etype!r}; supported: "
                                    f"{', '.join(enc.ENCODER_TYPES)}")
    size = _generator_size(opts)
    num_ws = None if size is None else enc.num_ws_for(size)
    start = bool(opts.get("start_from_latent_avg", False))
    return enc.encoder_from_state_dict(enc_sd, etype, latent_avg if start else None, start_from_latent_avg=start,
                                       num_ws=num_ws, source=source)


def load_generator_arrays(path) -> tuple[dict, dict]:
    """The ``decoder.*`` rosinality generator of an official e4e/pSp checkpoint -> NVlabs-style (params, config)."""
    from .stylegan2 import rosinality_to_params

    sd, opts, latent_avg = read_e4e_pt(path)
    dec = {k[len("decoder."):]: v for k, v in sd.items() if k.startswith("decoder.")}
    if not dec:
        raise CheckpointFormatError(f"{path}: this e4e/pSp checkpoint holds no 'decoder.*' generator")
    params, config = rosinality_to_params(dec, latent_avg, source=f"{path} [decoder.*]")
    size = _generator_size(opts)
    if size is not None and size != config["img_resolution"]:
        raise CheckpointFormatError(f"{path}: the options say a {size}-px generator but the decoder is "
                                    f"{config['img_resolution']} px")
    return params, config


# --------------------------------------------------------------------------------------------
# converted folders
# --------------------------------------------------------------------------------------------
def save_encoder(directory, E, *, extra=None, overwrite: bool = False) -> pathlib.Path:
    """Write ``E`` (an Encoder) to ``directory``: orbax params (+ latent_avg) and config.json."""
    import jax

    from . import params_io
    from ..models import encoder as enc

    tree = {"params": jax.tree_util.tree_map(np.asarray, E.params)}
    if E.latent_avg is not None:
        tree["latent_avg"] = np.asarray(E.latent_avg)
    config = {"kind": CONFIG_KIND, "model": enc.MODEL_NAME, **E.config.to_dict()}
    return params_io.save_params(directory, tree, config, extra=extra, overwrite=overwrite)


def _load_folder(directory: pathlib.Path):
    import jax
    import jax.numpy as jnp

    from . import params_io
    from ..models import encoder as enc

    tree, cfg = params_io.load_params(directory)
    if cfg.get("kind") != CONFIG_KIND or cfg.get("model") != enc.MODEL_NAME:
        raise CheckpointFormatError(f"{directory}: config.json says kind={cfg.get('kind')!r} "
                                    f"model={cfg.get('model')!r}, expected an encoder folder written by "
                                    "checkpoints_convert/convert_encoder.py")
    try:
        config = enc.EncoderConfig.from_dict(cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointFormatError(f"{directory}: invalid encoder config.json ({e})") from None
    if "params" not in tree:
        raise CheckpointFormatError(f"{directory}: the checkpoint has no 'params' tree")
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), tree["params"])
    enc.check_params(params, config, str(directory))
    latent_avg = tree.get("latent_avg")
    if latent_avg is not None:
        latent_avg = enc.check_latent_avg(latent_avg, config, str(directory))
    elif config.start_from_latent_avg:
        raise CheckpointFormatError(f"{directory}: config says start_from_latent_avg but no latent_avg is stored")
    return enc.Encoder(params, config, latent_avg)


def load_encoder(path):
    """Load an e4e/pSp encoder from an official ``.pt`` checkpoint, a folder written by
    ``checkpoints_convert/convert_encoder.py`` (no torch needed), or ``"shapes"`` (the shipped one)."""
    from .. import shipped
    if shipped.is_shapes(path):
        d = shipped.SHAPES_ENCODER
        if not d.is_dir():
            raise CheckpointNotFoundError(f"{d}: the shapes-world encoder is not shipped in this version")
        return _load_folder(d)
    p = pathlib.Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise CheckpointNotFoundError(f"{p}: encoder checkpoint does not exist (expected an e4e/pSp .pt, a folder "
                                      "written by checkpoints_convert/convert_encoder.py, or 'shapes')")
    if p.is_dir():
        return _load_folder(p)
    sd, opts, latent_avg = read_e4e_pt(p)
    return encoder_from_checkpoint(sd, opts, latent_avg, str(p))
