"""Hugging Face CLIP checkpoints without transformers: find the folder, read config.json and the weights.

* :func:`resolve` turns a local folder or a hub name (``openai/clip-vit-base-patch32``) into a folder: the
  local Hugging Face cache first (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``, read
  directly), then a download with ``huggingface_hub`` when it is installed and the hub is reachable;
  otherwise one :class:`CLIPLoadError` saying which files to fetch and where to put them.
* :func:`read_params` reads ``flax_model.msgpack`` (``flax.serialization``, Flax layout as is),
  ``model.safetensors`` (``safetensors.numpy``; PyTorch names such as ``...q_proj.weight`` or Flax names),
  or ``pytorch_model.bin`` (only through ``checkpoints.torch_pt``, i.e. ``torch.load(weights_only=True)``);
  sharded safetensors / .bin (``*.index.json``) too. PyTorch tensors are renamed and transposed into the Flax tree of
  ``models.clip_net.param_shapes`` (Linear ``weight`` -> ``kernel`` transposed, LayerNorm ``weight`` ->
  ``scale``, Embedding ``weight`` -> ``embedding``, the patch conv (D, C, p, p) -> (p, p, C, D)); every
  float becomes float32, and the tree is checked against the config's shapes.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import urllib.parse

import numpy as np

from ..errors import CheckpointError, CLIPLoadError
from ..models.clip_net import Config, param_shapes

__all__ = ["NEEDED_FILES", "WEIGHT_FILES", "check_folder", "read_config", "read_params", "resolve", "torch_to_flax"]

WEIGHT_FILES = ("flax_model.msgpack", "model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
NEEDED_FILES = ("config.json (a CLIPConfig), model.safetensors (or flax_model.msgpack / pytorch_model.bin) and the "
                "tokenizer files vocab.json + merges.txt (or tokenizer.json)")


# --------------------------------------------------------------------------------------------------
# Finding the folder


def _weight_file(folder: pathlib.Path, name: str) -> bool:
    sharded = name != "flax_model.msgpack" and (folder / f"{name}.index.json").is_file()
    return (folder / name).is_file() or sharded


def check_folder(folder: pathlib.Path, label: str) -> None:
    """CLIPLoadError listing what a CLIP folder lacks."""
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any(_weight_file(folder, f) for f in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    has_bpe = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    if not has_bpe and not (folder / "tokenizer.json").is_file():
        missing.append("vocab.json + merges.txt (or tokenizer.json)")
    if missing:
        raise CLIPLoadError(f"CLIP folder {label} ({folder}) is missing: {'; '.join(missing)}. "
                            f"It needs {NEEDED_FILES}.")


def looks_like_path(name: str) -> bool:
    return (os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1
            or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name))


def hub_cache_dir() -> pathlib.Path:
    try:
        from huggingface_hub import constants
        return pathlib.Path(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - huggingface_hub is optional
        pass
    if os.environ.get("HF_HUB_CACHE"):
        return pathlib.Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return pathlib.Path(home).expanduser() / "hub"


def cached_snapshot(repo_id: str) -> pathlib.Path | None:
    """The cached snapshot folder of ``repo_id`` (the revision ``refs/main`` names, else the newest)."""
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file() and (snaps / ref.read_text().strip()).is_dir():
        return snaps / ref.read_text().strip()
    folders = sorted((p for p in snaps.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return folders[-1] if folders else None


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").upper() in {"1", "ON", "YES", "TRUE"}:
        return False
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    if getattr(constants, "HF_HUB_OFFLINE", False):
        return False
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _download(repo_id: str) -> pathlib.Path:
    from huggingface_hub import hf_hub_download

    folder = pathlib.Path(hf_hub_download(repo_id, "config.json")).parent
    for name in TOKENIZER_FILES:
        try:
            hf_hub_download(repo_id, name)
        except Exception:  # noqa: BLE001 - optional files
            pass
    errors = []
    for name in ("model.safetensors", "flax_model.msgpack", "pytorch_model.bin"):
        try:
            hf_hub_download(repo_id, name)
            return folder
        except Exception as e:  # noqa: BLE001
            errors.append(f"{name}: {type(e).__name__}")
    raise OSError("no weight file on the hub (" + ", ".join(errors) + ")")


def resolve(name: str, local_files_only: bool = False) -> pathlib.Path:
    """A local CLIP folder for ``name`` (a path or a hub repo id); see the module docstring."""
    path = pathlib.Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CLIPLoadError(f"CLIP model path {name!r} is a file; expected a folder with {NEEDED_FILES}")
        check_folder(path, repr(name))
        return path
    if looks_like_path(name):
        raise CLIPLoadError(f"CLIP model folder {name!r} does not exist. Put a Hugging Face CLIP checkpoint there: "
                            f"{NEEDED_FILES}")
    snap = cached_snapshot(name)
    if snap is not None:
        try:
            check_folder(snap, repr(name))
            return snap
        except CLIPLoadError:
            pass  # partial cache: download the rest below if we can
    reason = "the hub was not tried: local_files_only" if local_files_only else None
    if reason is None:
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:
            reason = "huggingface_hub is not installed (pip install huggingface_hub to download)"
    if reason is None and not hub_reachable():
        reason = "the hub was not tried: offline (HF_HUB_OFFLINE) or unreachable"
    if reason is None:
        try:
            folder = _download(name)
            check_folder(folder, repr(name))
            return folder
        except Exception as e:  # noqa: BLE001 - one message below
            reason = f"download failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    raise CLIPLoadError(
        f"could not load CLIP model {name!r}: not in the local Hugging Face cache ({hub_cache_dir()}) and not "
        f"downloadable ({reason}). On a machine with network run `huggingface-cli download {name} config.json "
        f"model.safetensors vocab.json merges.txt tokenizer_config.json special_tokens_map.json` (the cache is "
        f"$HF_HOME/hub, default ~/.cache/huggingface/hub; copy it over), or put a folder with {NEEDED_FILES} "
        f"anywhere and pass its path")


# --------------------------------------------------------------------------------------------------
# Reading


def read_config(folder: pathlib.Path) -> Config:
    path = folder / "config.json"
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CLIPLoadError(f"{path}: not a readable JSON file ({type(e).__name__}: {e})") from None
    is_clip = isinstance(d, dict) and d.get("model_type") in (None, "clip") and ("vision_config" in d
                                                                               or "vision_config_dict" in d)
    if not is_clip:
        raise CLIPLoadError(f"{path}: not a CLIP config (expected model_type 'clip' with text_config and "
                            "vision_config)")
    try:
        return Config.from_dict(d)
    except (TypeError, ValueError) as e:
        raise CLIPLoadError(f"{path}: {e}") from None


def _shards(folder: pathlib.Path, name: str) -> list[pathlib.Path]:
    if (folder / name).is_file():
        return [folder / name]
    index = folder / f"{name}.index.json"
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CLIPLoadError(f"{index}: not a readable shard index ({type(e).__name__}: {e})") from None
    return [folder / f for f in dict.fromkeys(weight_map.values())]


def _read_flat(path: pathlib.Path) -> dict[str, np.ndarray]:
    if path.name.endswith(".safetensors"):
        from safetensors.numpy import load_file
        try:
            return dict(load_file(str(path)))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise CLIPLoadError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    from . import torch_pt
    try:
        state = torch_pt.load(path, what="CLIP PyTorch checkpoint")
    except CheckpointError as e:
        raise CLIPLoadError(str(e)) from None
    if not isinstance(state, dict):
        raise CLIPLoadError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return {k: torch_pt.to_numpy(v, k, path) for k, v in state.items()}


def torch_to_flax(flat: dict[str, np.ndarray], cfg: Config) -> dict:
    """PyTorch CLIPModel state-dict names/layouts (or Flax names joined by '.') -> the Flax tree."""
    shapes = param_shapes(cfg)
    out: dict = {}
    for key, value in flat.items():
        parts = key.split(".")
        if parts[0] not in shapes or parts[-1] == "position_ids":
            continue  # buffers and unrelated heads
        node = shapes
        for k in parts[:-1]:
            node = node.get(k, {}) if isinstance(node, dict) else {}
        last = parts[-1]
        if isinstance(node, dict) and last == "weight":
            if "kernel" in node:
                last = "kernel"
                value = np.transpose(value, (2, 3, 1, 0)) if value.ndim == 4 else value.T
            elif "scale" in node:
                last = "scale"
            elif "embedding" in node:
                last = "embedding"
        target = out
        for k in parts[:-1]:
            target = target.setdefault(k, {})
        target[last] = value
    return out


def _check_tree(params: dict, cfg: Config, source: pathlib.Path) -> dict:
    """float32 copy of ``params`` restricted to the expected keys; CLIPLoadError on a missing key or shape."""
    def walk(p, s, prefix):
        if isinstance(s, tuple):
            if not hasattr(p, "shape"):
                raise CLIPLoadError(f"{source}: {prefix} is not an array")
            a = np.asarray(p)
            if a.shape != s:
                raise CLIPLoadError(f"{source}: {prefix} has shape {a.shape}, config.json implies {s}")
            return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) or a.dtype.kind == "V" else a
        missing = [k for k in s if not isinstance(p, dict) or k not in p]
        if missing:
            names = ", ".join(f"{prefix}.{k}".lstrip(".") for k in missing[:4]) + (" ..." if len(missing) > 4 else "")
            raise CLIPLoadError(f"{source}: missing CLIP weights {names} "
                                "(is this a CLIPModel checkpoint for this config.json?)")
        return {k: walk(p[k], s[k], f"{prefix}.{k}".lstrip(".")) for k in s}

    return walk(params, param_shapes(cfg), "")


def read_params(folder: pathlib.Path, cfg: Config, order=WEIGHT_FILES) -> tuple[dict, pathlib.Path]:
    """(float32 numpy parameter tree in the Flax CLIP layout, the file it came from) from the first weight
    file of ``order`` present in ``folder``."""
    name = next((f for f in order if _weight_file(folder, f)), None)
    if name is None:
        raise CLIPLoadError(f"{folder}: no CLIP weights ({' or '.join(order)})")
    files = _shards(folder, name)
    if name == "flax_model.msgpack":
        from flax import serialization
        try:
            tree = serialization.msgpack_restore(files[0].read_bytes())
        except Exception as e:  # noqa: BLE001 - msgpack raises many types
            raise CLIPLoadError(f"{files[0]}: not a readable Flax msgpack file ({type(e).__name__}: {e})") from None
    else:
        flat: dict = {}
        for f in files:
            flat.update(_read_flat(f))
        tree = torch_to_flax(flat, cfg)
    return _check_tree(tree, cfg, files[0]), files[0]
