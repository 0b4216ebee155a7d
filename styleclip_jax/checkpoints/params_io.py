"""Saving and loading parameter pytrees as orbax checkpoints with a JSON config.

A checkpoint directory written by :func:`save_params` looks like::

    DIR/
      params/        orbax PyTree checkpoint of the parameter tree
      config.json    the JSON config dict given by the caller
      manifest.json  path, shape and dtype of every leaf (checked on load)
      extra.json     optional JSON metadata (only if ``extra`` was given)

The whole directory is first written next to its destination (``DIR.tmp-<random>``) and then
renamed into place, so a crash never leaves a half-written ``DIR`` behind.

The module is generic: any nested dict/list/tuple of arrays plus a JSON-serialisable config can be
stored (generator weights, mapper weights, ...). Lists and tuples come back as lists, every leaf comes
back as a ``numpy.ndarray`` (python scalars become 0-d arrays).

orbax is imported lazily, so importing this module is cheap.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import uuid
from typing import Any, Mapping

import numpy as np

__all__ = [
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "UnsafeCheckpointError",
    "save_params",
    "load_params",
    "load_extra",
    "read_json",
    "write_json",
    "CONFIG_FILE",
    "MANIFEST_FILE",
    "EXTRA_FILE",
    "PARAMS_SUBDIR",
]

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
EXTRA_FILE = "extra.json"
PARAMS_SUBDIR = "params"
_MANIFEST_FORMAT = "styleclip_jax-params/1"


from ..errors import (CheckpointError, CheckpointFormatError, CheckpointNotFoundError,  # noqa: E402,F401
                      UnsafeCheckpointError)


# ----------------------------------------------------------------------------------------------
# JSON helpers


def _to_jsonable(obj: Any, where: str) -> Any:
    """Convert numpy scalars/arrays and tuples into plain JSON types, or raise naming ``where``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if not math.isfinite(value):
            raise TypeError(f"{where}: non-finite float {value!r} cannot be stored in JSON")
        return value
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.item() if obj.ndim == 0 else obj.tolist(), where)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: JSON object keys must be strings, got {key!r}")
            out[key] = _to_jsonable(value, f"{where}.{key}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: value of type {type(obj).__name__} is not JSON-serialisable")


def write_json(path, obj: Any, *, indent: int = 1) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file in the same folder + rename).

    numpy scalars and tuples are converted to plain JSON values; anything else that JSON cannot
    hold raises ``TypeError`` naming the offending entry.
    """
    from ..files import write_bytes
    path = pathlib.Path(path)
    text = json.dumps(_to_jsonable(obj, path.name), indent=indent, sort_keys=False) + "\n"
    write_bytes(path, text.encode("utf-8"))


def read_json(path, *, what: str = "JSON file", expect_type: type | None = dict) -> Any:
    """Read a JSON file, raising one clear error that names the file on any problem.

    Args:
      path: the file.
      what: a short description used in error messages (e.g. "checkpoint config").
      expect_type: the required type of the top-level value (``dict`` by default; ``None`` = any).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: {what} not found (expected a JSON file)")
    try:
        with open(path, "r", encoding="utf-8") as f:
            value = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointFormatError(f"{path}: {what} is not valid JSON ({e})") from None
    if expect_type is not None and not isinstance(value, expect_type):
        raise CheckpointFormatError(
            f"{path}: {what} must hold a JSON {'object' if expect_type is dict else expect_type.__name__},"
            f" got {type(value).__name__}")
    return value


# ----------------------------------------------------------------------------------------------
# Pytree <-> manifest


def _normalise_tree(tree: Any, path: tuple = ()) -> Any:
    """Copy ``tree`` into plain dicts/lists of numpy arrays, validating keys and leaves."""
    where = "/".join(str(p) for p in path) or "<root>"
    if isinstance(tree, Mapping):
        if not tree:
            raise ValueError(f"params: empty dict at {where} cannot be stored (orbax drops empty nodes)")
        out = {}
        for key, value in tree.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"params: dict keys must be non-empty strings, got {key!r} at {where}")
            if "." in key or "/" in key:
                raise ValueError(f"params: key {key!r} at {where} contains '.' or '/', which orbax "
                                 "uses as a path separator")
            out[key] = _normalise_tree(value, path + (key,))
        return out
    if isinstance(tree, (list, tuple)):
        if not tree:
            raise ValueError(f"params: empty sequence at {where} cannot be stored")
        return [_normalise_tree(v, path + (i,)) for i, v in enumerate(tree)]
    if tree is None or isinstance(tree, (str, bytes)):
        raise ValueError(f"params: leaf at {where} is {type(tree).__name__}; only arrays and numbers "
                         "can be stored")
    arr = np.asarray(tree)
    if arr.dtype == object:
        raise ValueError(f"params: leaf at {where} of type {type(tree).__name__} is not an array")
    if arr.size == 0:
        raise ValueError(f"params: leaf at {where} has zero size {arr.shape}; orbax cannot store it")
    return arr


def _manifest(tree: Any, path: tuple = ()) -> list:
    if isinstance(tree, dict):
        return [e for k, v in tree.items() for e in _manifest(v, path + (k,))]
    if isinstance(tree, list):
        return [e for i, v in enumerate(tree) for e in _manifest(v, path + (i,))]
    return [{"path": list(path), "shape": list(tree.shape), "dtype": str(tree.dtype)}]


def _leaf_count(tree: Any) -> int:
    if isinstance(tree, dict):
        return sum(_leaf_count(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(_leaf_count(v) for v in tree)
    return 1


def _get_path(tree: Any, path: list):
    node = tree
    for p in path:
        if isinstance(p, str):
            if not isinstance(node, dict) or p not in node:
                return None
        else:
            if not isinstance(node, list) or not 0 <= p < len(node):
                return None
        node = node[p]
    return node


def _to_numpy_tree(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _to_numpy_tree(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_to_numpy_tree(v) for v in tree]
    return np.asarray(tree)


# ----------------------------------------------------------------------------------------------
# Save / load


def save_params(directory, params: Any, config: Mapping, *, extra: Mapping | None = None,
                overwrite: bool = False) -> pathlib.Path:
    """Save a parameter pytree and its JSON config into ``directory`` (atomically).

    Args:
      directory: destination folder. Must not exist unless ``overwrite=True``.
      params: nested dicts / lists / tuples of arrays (numpy or jax) or numbers. Dict keys must be
        strings without '.' or '/'; zero-size arrays and empty containers are refused.
      config: JSON-serialisable dict (numpy scalars are converted), written to ``config.json``.
      extra: optional JSON-serialisable dict of metadata (provenance, training step, prompt, ...),
        written to ``extra.json``; read it back with :func:`load_extra`.
      overwrite: replace an existing ``directory``.

    Returns the absolute destination path.
    """
    directory = pathlib.Path(directory).expanduser().absolute()
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory}: already exists; pass overwrite=True to replace it")
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory}: exists and is not a directory; refusing to replace it")
    tree = _normalise_tree(params)
    config_json = _to_jsonable(dict(config), "config")
    extra_json = None if extra is None else _to_jsonable(dict(extra), "extra")
    manifest = {"format": _MANIFEST_FORMAT, "leaves": _manifest(tree)}

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f"{directory.name}.tmp-{uuid.uuid4().hex[:12]}")
    old = None
    try:
        tmp.mkdir()
        import orbax.checkpoint as ocp  # lazy: heavy import

        # written by the calling process alone: in a multi-process run only process 0 saves (jobs guard with
        # parallel.is_writer), and orbax's default would wait at a barrier for the others
        import jax
        me = jax.process_index()
        solo = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me},
                                                  barrier_sync_key_prefix=f"save_params_{me}")
        ckptr = ocp.Checkpointer(ocp.PyTreeCheckpointHandler(multiprocessing_options=solo),
                                 multiprocessing_options=solo)
        try:
            ckptr.save(tmp / PARAMS_SUBDIR, tree)
        finally:
            close = getattr(ckptr, "close", None)
            if close is not None:
                close()
        write_json(tmp / MANIFEST_FILE, manifest)
        if extra_json is not None:
            write_json(tmp / EXTRA_FILE, extra_json)
        # config.json last: its presence marks a complete checkpoint.
        write_json(tmp / CONFIG_FILE, config_json)
        if directory.exists():  # overwrite=True
            old = directory.with_name(f"{directory.name}.old-{uuid.uuid4().hex[:12]}")
            os.rename(directory, old)
        os.rename(tmp, directory)
    except BaseException:
        if old is not None and old.exists() and not directory.exists():
            os.rename(old, directory)  # put the previous checkpoint back
            old = None
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    return directory


def _check_dir(directory: pathlib.Path) -> None:
    if not directory.exists():
        raise CheckpointNotFoundError(f"{directory}: checkpoint directory does not exist")
    if not directory.is_dir():
        raise CheckpointFormatError(f"{directory}: expected a checkpoint directory (with {CONFIG_FILE} "
                                    f"and {PARAMS_SUBDIR}/), got a file")


def load_params(directory) -> tuple[Any, dict]:
    """Load ``(params, config)`` written by :func:`save_params`.

    ``params`` is a nested dict/list of ``numpy.ndarray`` with exactly the saved paths, shapes and
    dtypes (checked against ``manifest.json``); ``config`` is the dict from ``config.json``.
    Raises ``CheckpointNotFoundError``/``CheckpointFormatError`` naming the directory when something
    is missing or corrupt.
    """
    directory = pathlib.Path(directory).expanduser().absolute()
    _check_dir(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointFormatError(f"{directory}: not a complete checkpoint: {CONFIG_FILE} is missing")
    config = read_json(config_path, what="checkpoint config")
    manifest = read_json(directory / MANIFEST_FILE, what="checkpoint manifest") \
        if (directory / MANIFEST_FILE).is_file() else None
    if manifest is not None and (manifest.get("format") != _MANIFEST_FORMAT
                                 or not isinstance(manifest.get("leaves"), list)):
        raise CheckpointFormatError(f"{directory / MANIFEST_FILE}: unknown manifest format "
                                    f"{manifest.get('format')!r} (expected {_MANIFEST_FORMAT!r})")
    params_dir = directory / PARAMS_SUBDIR
    if not params_dir.is_dir():
        raise CheckpointFormatError(f"{directory}: not a complete checkpoint: the orbax folder "
                                    f"{PARAMS_SUBDIR}/ is missing")
    import orbax.checkpoint as ocp  # lazy

    ckptr = ocp.PyTreeCheckpointer()
    try:
        restored = ckptr.restore(params_dir)
    except Exception as e:  # orbax/tensorstore raise many types for corrupt data
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointFormatError(f"{directory}: the orbax checkpoint in {PARAMS_SUBDIR}/ could not "
                                    f"be read ({type(e).__name__}: {msg[:300]})") from e
    finally:
        close = getattr(ckptr, "close", None)
        if close is not None:
            close()
    params = _to_numpy_tree(restored)
    if manifest is not None:
        leaves = manifest["leaves"]
        for leaf in leaves:
            arr = _get_path(params, leaf.get("path", []))
            where = "/".join(str(p) for p in leaf.get("path", []))
            if not isinstance(arr, np.ndarray):
                raise CheckpointFormatError(f"{directory}: checkpoint is missing the array {where!r} "
                                            f"listed in {MANIFEST_FILE}")
            if list(arr.shape) != list(leaf["shape"]) or str(arr.dtype) != leaf["dtype"]:
                raise CheckpointFormatError(
                    f"{directory}: array {where!r} has shape {arr.shape} dtype {arr.dtype}, but "
                    f"{MANIFEST_FILE} says shape {tuple(leaf['shape'])} dtype {leaf['dtype']}")
        if _leaf_count(params) != len(leaves):
            raise CheckpointFormatError(f"{directory}: checkpoint holds {_leaf_count(params)} arrays but "
                                        f"{MANIFEST_FILE} lists {len(leaves)}")
    return params, config


def load_extra(directory) -> dict:
    """Return the ``extra`` metadata dict saved with :func:`save_params` (``{}`` if none was saved)."""
    directory = pathlib.Path(directory).expanduser().absolute()
    _check_dir(directory)
    path = directory / EXTRA_FILE
    if not path.exists():
        return {}
    return read_json(path, what="checkpoint extra metadata")
