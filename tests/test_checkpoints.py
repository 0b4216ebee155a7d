"""Tests of styleclip_jax.checkpoints (orbax param checkpoints + JSON config)."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from styleclip_jax import checkpoints
from styleclip_jax.checkpoints import CheckpointFormatError, CheckpointNotFoundError


def _tree():
    rng = np.random.default_rng(0)
    return {
        "mapping": {"fc0": {"weight": rng.standard_normal((5, 3)).astype(np.float32),
                            "bias": rng.standard_normal(5).astype(np.float32)},
                    "w_avg": jnp.arange(4, dtype=jnp.float32)},  # jax arrays are accepted too
        "synthesis": {"b4": {"noise_strength": np.array(0.25, np.float32)}},
        "layers": [np.arange(3, dtype=np.int32), np.array([True, False])],
        "scale": 1.5,  # python scalars become 0-d arrays
        "f64": np.linspace(0, 1, 7),
    }


CONFIG = {"z_dim": 3, "conv_clamp": None, "source": "nvlabs", "lr": np.float32(0.5), "res": np.int64(16),
          "shape": (1, 2)}


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _leaves(v, f"{prefix}/{i}")
    else:
        yield prefix, tree


def test_round_trip(tmp_path):
    tree = _tree()
    out = checkpoints.save_params(tmp_path / "ckpt", tree, CONFIG, extra={"step": 3, "prompt": "a smile"})
    assert out == (tmp_path / "ckpt").absolute()
    params, config = checkpoints.load_params(tmp_path / "ckpt")
    assert config == {"z_dim": 3, "conv_clamp": None, "source": "nvlabs", "lr": 0.5, "res": 16, "shape": [1, 2]}
    want, got = dict(_leaves(tree)), dict(_leaves(params))
    assert set(want) == set(got)
    for name, ref in want.items():
        ref = np.asarray(ref)
        assert isinstance(got[name], np.ndarray), name
        assert got[name].dtype == ref.dtype and got[name].shape == ref.shape, name
        np.testing.assert_array_equal(got[name], ref, err_msg=name)
    assert isinstance(params["layers"], list)
    assert checkpoints.load_extra(tmp_path / "ckpt") == {"step": 3, "prompt": "a smile"}
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temporary folders left behind
    # without extra
    checkpoints.save_params(tmp_path / "plain", {"a": np.ones(2)}, {})
    assert checkpoints.load_extra(tmp_path / "plain") == {}


def test_overwrite(tmp_path):
    d = tmp_path / "ckpt"
    checkpoints.save_params(d, {"a": np.zeros(3, np.float32)}, {"v": 1})
    with pytest.raises(FileExistsError, match="overwrite=True") as info:
        checkpoints.save_params(d, {"a": np.ones(3, np.float32)}, {"v": 2})
    assert str(d) in str(info.value)
    params, config = checkpoints.load_params(d)
    assert config == {"v": 1} and not params["a"].any()
    checkpoints.save_params(d, {"b": np.ones(2, np.float32)}, {"v": 2}, overwrite=True)
    params, config = checkpoints.load_params(d)
    assert config == {"v": 2} and list(params) == ["b"]
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        checkpoints.save_params(f, {"a": np.ones(2)}, {}, overwrite=True)


def test_failed_save_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="config.bad"):
        checkpoints.save_params(tmp_path / "c", {"a": np.ones(2)}, {"bad": object()})
    with pytest.raises(ValueError, match="contains '.'"):
        checkpoints.save_params(tmp_path / "c", {"a.b": np.ones(2)}, {})
    with pytest.raises(ValueError, match="zero size"):
        checkpoints.save_params(tmp_path / "c", {"a": np.ones((0, 2))}, {})
    with pytest.raises(ValueError, match="empty dict"):
        checkpoints.save_params(tmp_path / "c", {"a": {}}, {})
    assert os.listdir(tmp_path) == []


def test_corrupt_or_missing(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        checkpoints.load_params(tmp_path / "nothing")
    d = tmp_path / "ckpt"
    checkpoints.save_params(d, {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"k": 1})

    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointFormatError, match="not valid JSON") as info:
        checkpoints.load_params(d)
    assert str(d / "config.json") in str(info.value)
    (d / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointFormatError, match="JSON object"):
        checkpoints.load_params(d)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointFormatError, match="config.json is missing") as info:
        checkpoints.load_params(d)
    assert str(d) in str(info.value)
    (d / "config.json").write_text('{"k": 1}')

    manifest = json.loads((d / "manifest.json").read_text())
    manifest["leaves"][0]["shape"] = [3, 2]
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointFormatError, match="manifest.json says shape"):
        checkpoints.load_params(d)

    # destroy the orbax data files
    for root, _, files in os.walk(d / "params"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    with pytest.raises(CheckpointFormatError, match="could not be read") as info:
        checkpoints.load_params(d)
    assert str(d) in str(info.value)

    import shutil
    shutil.rmtree(d / "params")
    with pytest.raises(CheckpointFormatError, match="params/ is missing"):
        checkpoints.load_params(d)
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(CheckpointFormatError, match="got a file"):
        checkpoints.load_params(f)


def test_json_helpers(tmp_path):
    p = tmp_path / "c.json"
    checkpoints.write_json(p, {"a": np.float64(0.1), "b": [np.int32(2)], "c": None})
    assert checkpoints.read_json(p) == {"a": 0.1, "b": [2], "c": None}
    assert os.listdir(tmp_path) == ["c.json"]
    with pytest.raises(TypeError, match="non-finite"):
        checkpoints.write_json(p, {"a": float("nan")})
    assert checkpoints.read_json(p) == {"a": 0.1, "b": [2], "c": None}  # untouched by the failed write
    with pytest.raises(CheckpointNotFoundError, match="mapper config not found"):
        checkpoints.read_json(tmp_path / "missing.json", what="mapper config")
