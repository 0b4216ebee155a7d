"""Tests of the StyleGAN2 checkpoint readers (checkpoints/stylegan2.py dispatch, nvlabs.py, rosinality.py,
safe_pickle.py, torch_legacy.py): safe NVlabs pickle reading, rosinality mapping, converter script."""
import collections
import importlib.util
import io
import json
import os
import pathlib
import pickle
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from styleclip_jax import checkpoints
from styleclip_jax.checkpoints import nvlabs as nvlabs_reader, safe_pickle
from styleclip_jax.checkpoints import stylegan2 as torch_io
from styleclip_jax.checkpoints import CheckpointFormatError, CheckpointNotFoundError, UnsafeCheckpointError

REPO = pathlib.Path(__file__).resolve().parents[1]
SQRT2 = np.sqrt(2.0)


# ----------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def nvlabs(fixtures_dir):
    path = fixtures_dir / "stylegan2_ada" / "G.pkl"
    sd, kwargs = torch_io.read_nvlabs_pkl(path)
    return path, sd, kwargs


@pytest.fixture(scope="module")
def ada_ref(fixtures_dir):
    with np.load(fixtures_dir / "stylegan2_ada" / "state_dict.npz") as f:
        return collections.OrderedDict((k, f[k]) for k in f.files)


@pytest.fixture(scope="module")
def rosinality(fixtures_dir, tmp_path_factory):
    """The rosinality fixture generator rebuilt from its recipe and written as an official .pt."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(fixtures_dir))
    try:
        import build_from_recipe
    finally:
        sys.path.remove(str(fixtures_dir))
    with open(fixtures_dir / "rosinality" / "recipe.json") as f:
        recipe = json.load(f)
    arrays = build_from_recipe.build(recipe)
    latent_avg = build_from_recipe.extra_arrays(recipe)["latent_avg"]
    path = tmp_path_factory.mktemp("ros") / "stylegan2.pt"
    build_from_recipe.write_pt(recipe, arrays, path)
    return path, arrays, latent_avg


def _mapping_forward(params, config, z):
    """Independent float64 numpy mapping network (normalise z, FC layers with lr multiplier)."""
    lr = config["mapping_lr_multiplier"]
    x = z.astype(np.float64)
    x = x / np.sqrt(np.mean(x ** 2, axis=1, keepdims=True) + 1e-8)
    for i in range(config["mapping_layers"]):
        w = params["mapping"][f"fc{i}"]["weight"].astype(np.float64)
        b = params["mapping"][f"fc{i}"]["bias"].astype(np.float64)
        x = x @ (w * lr / np.sqrt(w.shape[1])).T + b * lr
        x = np.where(x >= 0, x, 0.2 * x) * SQRT2
    return x


def _affine(layer, w):
    a = layer["affine"]
    weight = a["weight"].astype(np.float64)
    return w.astype(np.float64) @ (weight / np.sqrt(weight.shape[1])).T + a["bias"].astype(np.float64)


def _unpickle(data: bytes):
    """Load bytes with the network-pickle allow-list, as read_nvlabs_pkl does."""
    return safe_pickle.load(io.BytesIO(data), "mem", nvlabs_reader.NETWORK_GLOBALS, "in memory", budget=10 * len(data) + 4096)


# Minimal pickle-opcode writer, used to craft hostile and edge-case files by hand.
class _Call:
    def __init__(self, module, name, *args):
        self.module, self.name, self.args = module, name, args


def _enc(obj) -> bytes:
    if isinstance(obj, _Call):
        return b"c" + f"{obj.module}\n{obj.name}\n".encode() + _enc(tuple(obj.args)) + b"R"
    if obj is None:
        return b"N"
    if obj is True or obj is False:
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return b"J" + struct.pack("<i", obj)
    if isinstance(obj, str):
        raw = obj.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw
    if isinstance(obj, bytes):
        return b"B" + struct.pack("<I", len(obj)) + obj
    if isinstance(obj, tuple):
        return b"(" + b"".join(_enc(v) for v in obj) + b"t"
    if isinstance(obj, dict):
        return b"}" + (b"(" + b"".join(_enc(k) + _enc(v) for k, v in obj.items()) + b"u" if obj else b"")
    raise TypeError(obj)


def _pickle(obj) -> bytes:
    return b"\x80\x02" + _enc(obj) + b"."


def _storage_blob(values: np.ndarray, *, storage_object: bytes | None = None, count=None) -> bytes:
    """A legacy torch.save blob of one FloatStorage, as torch.Storage.__reduce__ writes it."""
    values = np.asarray(values, dtype="<f4")
    n = values.size
    header = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
              + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
    if storage_object is None:
        storage_object = (b"\x80\x02(" + _enc("storage") + b"ctorch\nFloatStorage\n" + _enc("0") + _enc("cpu")
                          + _enc(n) + b"NtQ.")
    keys = pickle.dumps(["0"], protocol=2)
    return header + storage_object + keys + struct.pack("<q", n if count is None else count) + values.tobytes()


def _tensor(blob, offset, size, stride):
    storage = _Call("torch.storage", "_load_from_bytes", blob)
    return _Call("torch._utils", "_rebuild_tensor_v2", storage, offset, size, stride, False,
                 _Call("collections", "OrderedDict"))


def _network_pickle(params: dict, class_name="Generator") -> bytes:
    meta = {"type": "class", "version": 6, "module_src": "# none", "class_name": class_name,
            "state": {"_parameters": params, "_buffers": {}, "_modules": {},
                      "_init_args": (), "_init_kwargs": _Call("dnnlib.util", "EasyDict", {"z_dim": 4})}}
    return _pickle({"G_ema": _Call("torch_utils.persistence", "_reconstruct_persistent_obj", meta)})


# ----------------------------------------------------------------------------------------------
# NVlabs pickles


def test_g_ema_bit_identical_to_state_dict(nvlabs, ada_ref):
    _, sd, _ = nvlabs
    assert list(sd) == list(ada_ref)  # all 87 names, in state_dict() order
    assert len(sd) == 87
    for name, ref in ada_ref.items():
        assert sd[name].dtype == ref.dtype and sd[name].shape == ref.shape, name
        assert sd[name].tobytes() == ref.tobytes(), name


def test_init_kwargs(nvlabs, fixtures_dir):
    _, _, kwargs = nvlabs
    with open(fixtures_dir / "stylegan2_ada" / "config.json") as f:
        official = json.load(f)["generator_kwargs"]
    assert kwargs.pop("class_name") == "Generator"
    assert kwargs == official
    assert type(kwargs["synthesis_kwargs"]) is dict  # EasyDict stubs are turned into plain dicts


def test_reads_g_ema_not_g(nvlabs, ada_ref):
    path, _, _ = nvlabs
    sd_g, _ = torch_io.read_nvlabs_pkl(path, key="G")
    assert list(sd_g) == list(ada_ref)
    differing = [k for k in ada_ref if not np.array_equal(sd_g[k], ada_ref[k])]
    assert differing and all("resample_filter" not in k for k in differing)
    with pytest.raises(CheckpointFormatError, match="no 'G_foo' entry"):
        torch_io.read_nvlabs_pkl(path, key="G_foo")


def test_nvlabs_to_params_layout(nvlabs, ada_ref, fixtures_dir):
    _, sd, kwargs = nvlabs
    params, config = torch_io.nvlabs_to_params(sd, kwargs)
    assert config == {"z_dim": 64, "c_dim": 0, "w_dim": 64, "img_resolution": 32, "img_channels": 3,
                      "mapping_layers": 8, "mapping_lr_multiplier": 0.01, "channel_base": 2048,
                      "channel_max": 64, "conv_clamp": 256, "num_ws": 8, "source": "nvlabs"}
    json.dumps(config)  # plain JSON types only
    flat = torch_io.flatten_params(params)
    expected = {k: v for k, v in ada_ref.items() if not k.endswith("resample_filter")}
    assert len(expected) == 76 and set(flat) == set(expected)
    for name, ref in expected.items():
        assert flat[name].dtype == np.float32 and flat[name].shape == ref.shape, name
        np.testing.assert_array_equal(flat[name], ref, err_msg=name)
    assert params["synthesis"]["b4"]["conv1"]["noise_strength"].shape == ()
    assert "conv0" not in params["synthesis"]["b4"]
    assert params["synthesis"]["b32"]["torgb"]["weight"].shape == (3, 64, 1, 1)


def test_nvlabs_params_reproduce_official_mapping_and_styles(nvlabs, fixtures_dir):
    _, sd, kwargs = nvlabs
    params, config = torch_io.nvlabs_to_params(sd, kwargs)
    exp = np.load(fixtures_dir / "stylegan2_ada" / "expected.npz")
    w = _mapping_forward(params, config, exp["z"])
    np.testing.assert_allclose(np.repeat(w[:, None], 8, axis=1), exp["ws"], atol=1e-5)
    w_avg = params["mapping"]["w_avg"].astype(np.float64)
    np.testing.assert_allclose(w_avg + 0.7 * (exp["ws"] - w_avg), exp["ws_trunc"], atol=1e-5)
    syn = params["synthesis"]
    np.testing.assert_allclose(_affine(syn["b4"]["conv1"], exp["ws"][:, 0]), exp["s_conv1_resolution_4"], atol=1e-5)
    np.testing.assert_allclose(_affine(syn["b4"]["torgb"], exp["ws"][:, 1]), exp["s_toRGB_resolution_4"], atol=1e-5)
    np.testing.assert_allclose(_affine(syn["b32"]["conv0"], exp["ws_mix"][:, 5]), exp["smix_conv0_resolution_32"],
                               atol=1e-5)


def test_nvlabs_to_params_rejects_bad_weights(nvlabs):
    _, sd, kwargs = nvlabs
    bad = dict(sd)
    bad["synthesis.b8.conv0.resample_filter"] = sd["synthesis.b8.conv0.resample_filter"] * 1.5
    with pytest.raises(CheckpointFormatError, match="synthesis.b8.conv0.resample_filter.*standard"):
        torch_io.nvlabs_to_params(bad, kwargs)
    bad = {k: v for k, v in sd.items() if k != "synthesis.b16.conv1.affine.bias"}
    with pytest.raises(CheckpointFormatError, match="missing.*synthesis.b16.conv1.affine.bias"):
        torch_io.nvlabs_to_params(bad, kwargs)
    bad = dict(sd, **{"mapping.fc3.weight": np.zeros((64, 32), np.float32)})
    with pytest.raises(CheckpointFormatError, match="mapping.fc3.weight has shape"):
        torch_io.nvlabs_to_params(bad, kwargs)
    with pytest.raises(CheckpointFormatError, match="architecture 'resnet'"):
        torch_io.nvlabs_to_params(sd, dict(kwargs, synthesis_kwargs=dict(kwargs["synthesis_kwargs"],
                                                                         architecture="resnet")))
    with pytest.raises(CheckpointFormatError, match="does not match|missing"):
        torch_io.nvlabs_to_params(sd, dict(kwargs, img_resolution=64))


def test_storage_parser_matches_torch_for_dtypes_and_views():
    """Tensors pickled by torch itself (the way network pickles hold them) rebuild exactly, no torch needed."""
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {"f16": torch.randn(3, 2).half(), "f64": torch.randn(5).double(), "i64": torch.arange(7),
           "bool": torch.tensor([True, False]), "bf16": torch.randn(4).bfloat16(),
           "transposed": base.t(), "slice": base[1:3, 2:5], "scalar": torch.tensor(3.5), "base": base,
           "param": torch.nn.Parameter(torch.randn(2, 2)), "empty": torch.zeros(0, 3)}
    out = _unpickle(pickle.dumps(obj, protocol=4))
    for k, t in obj.items():
        ref = t.detach().float().numpy() if t.dtype == torch.bfloat16 else t.detach().numpy()
        got = out[k].array
        assert got.dtype == ref.dtype and got.shape == ref.shape, k
        np.testing.assert_array_equal(got, ref, err_msg=k)


def test_numpy_values_in_pickles_are_data_only():
    obj = {"s": np.float64(0.125), "i": np.int32(-3), "a": np.arange(6, dtype=">f4").reshape(2, 3),
           "f": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3))}
    for protocol in (2, 4):
        out = _unpickle(pickle.dumps(obj, protocol=protocol))
        assert out["s"] == 0.125 and out["s"].dtype == np.float64 and out["i"] == -3
        for k in ("a", "f"):
            np.testing.assert_array_equal(out[k].value, obj[k])
            assert out[k].value.dtype == obj[k].dtype
    # object arrays / object dtypes (whose state could smuggle pointers) are refused
    for hostile in (np.array([1, "x"], dtype=object), np.dtype("O")):
        with pytest.raises(CheckpointFormatError, match="not a plain numeric type"):
            _unpickle(pickle.dumps(hostile, protocol=4))


def test_hand_made_network_pickle_roundtrip(tmp_path):
    values = np.arange(12, dtype=np.float32)
    path = tmp_path / "net.pkl"
    path.write_bytes(_network_pickle({"w": _tensor(_storage_blob(values), 2, (3, 2), (1, 3))}))
    sd, kwargs = torch_io.read_nvlabs_pkl(path)
    expected = np.array([[2 + i + 3 * j for j in range(2)] for i in range(3)], np.float32)
    np.testing.assert_array_equal(sd["w"], expected)  # offset 2, stride (1, 3)
    assert kwargs == {"z_dim": 4, "class_name": "Generator"}


# ----------------------------------------------------------------------------------------------
# Hostile and broken files


def _assert_refused(path, sentinel, global_name):
    with pytest.raises(UnsafeCheckpointError) as info:
        torch_io.read_nvlabs_pkl(path)
    msg = str(info.value)
    assert str(path) in msg and global_name in msg
    assert not sentinel.exists()


class _Evil:
    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_refuses_os_system_pickle(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(sentinel)}, protocol=4))
    _assert_refused(path, sentinel, f"{os.system.__module__}.system")


def test_refuses_builtins_eval(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    code = f"open({str(sentinel)!r}, 'w').close()"
    path.write_bytes(_pickle({"G_ema": _Call("builtins", "eval", code)}))
    _assert_refused(path, sentinel, "builtins.eval")


def test_refuses_payload_inside_persistent_record_and_storage_bytes(tmp_path):
    sentinel = tmp_path / "pwned"
    # 1) a hostile global among the module state of an otherwise normal persistent record
    path = tmp_path / "evil_state.pkl"
    path.write_bytes(_network_pickle({"w": _Call("posix", "system", f"touch {sentinel}")}))
    _assert_refused(path, sentinel, "posix.system")
    # 2) the storage bytes (which torch would torch.load) carry a pickle that calls os.system
    evil_object = pickle.dumps(_Evil(sentinel), protocol=2)
    blob = _storage_blob(np.zeros(4), storage_object=evil_object)
    path = tmp_path / "evil_storage.pkl"
    path.write_bytes(_network_pickle({"w": _tensor(blob, 0, (4,), (1,))}))
    with pytest.raises(UnsafeCheckpointError, match=r"system.*embedded tensor storage") as info:
        torch_io.read_nvlabs_pkl(path)
    assert str(path) in str(info.value) and not sentinel.exists()
    # 3) a torch class that is not a storage type inside the storage bytes
    blob = _storage_blob(np.zeros(4), storage_object=b"\x80\x02(" + _enc("storage") + b"ctorch\nload\n"
                         + _enc("0") + _enc("cpu") + _enc(4) + b"NtQ.")
    path.write_bytes(_network_pickle({"w": _tensor(blob, 0, (4,), (1,))}))
    with pytest.raises(UnsafeCheckpointError, match="torch.load"):
        torch_io.read_nvlabs_pkl(path)


def test_rejects_out_of_bounds_tensor_and_bad_counts(tmp_path):
    path = tmp_path / "oob.pkl"
    path.write_bytes(_network_pickle({"w": _tensor(_storage_blob(np.zeros(4)), 0, (1000,), (1,))}))
    with pytest.raises(CheckpointFormatError, match="declares 1000 elements but its storage holds 4") as info:
        torch_io.read_nvlabs_pkl(path)
    assert str(path) in str(info.value)
    path.write_bytes(_network_pickle({"w": _tensor(_storage_blob(np.zeros(4)), 0, (3,), (2,))}))
    with pytest.raises(CheckpointFormatError, match="past the end of its storage") as info:
        torch_io.read_nvlabs_pkl(path)
    assert str(path) in str(info.value)
    path.write_bytes(_network_pickle({"w": _tensor(_storage_blob(np.zeros(4), count=9), 0, (4,), (1,))}))
    with pytest.raises(CheckpointFormatError, match="9 elements"):
        torch_io.read_nvlabs_pkl(path)


def test_truncated_missing_and_wrong_format_files(tmp_path, fixtures_dir):
    data = (fixtures_dir / "stylegan2_ada" / "G.pkl").read_bytes()
    path = tmp_path / "half.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match="corrupt or truncated") as info:
        torch_io.read_nvlabs_pkl(path)
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        torch_io.read_nvlabs_pkl(tmp_path / "nope.pkl")
    text = tmp_path / "notes.pkl"
    text.write_text("hello")
    with pytest.raises(CheckpointFormatError, match="not a pickle") as info:
        torch_io.read_nvlabs_pkl(text)
    assert str(text) in str(info.value)
    plain = tmp_path / "list.pkl"
    plain.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointFormatError, match="expected a dict of networks"):
        torch_io.read_nvlabs_pkl(plain)
    with pytest.raises(CheckpointFormatError, match="not a pickle"):
        torch_io.load_generator_arrays(text)  # the extension routes it to the pickle reader
    odd = tmp_path / "weights.bin"
    odd.write_text("hello")
    with pytest.raises(CheckpointFormatError, match="unknown checkpoint format"):
        torch_io.load_generator_arrays(odd)


# ----------------------------------------------------------------------------------------------
# rosinality checkpoints


def _expected_rosinality_map(n_mlp=8, n_up=2):
    """{our name: (rosinality key, reshape)} written out independently of the implementation."""
    m = {}
    for i in range(n_mlp):
        m[f"mapping.fc{i}.weight"] = f"style.{i + 1}.weight"
        m[f"mapping.fc{i}.bias"] = f"style.{i + 1}.bias"
    m["synthesis.b4.const"] = "input.input"
    layers = [("synthesis.b4.conv1", "conv1", 0)]
    rgbs = [("synthesis.b4.torgb", "to_rgb1")]
    for k in range(n_up):
        r = 8 * 2 ** k
        layers += [(f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1),
                   (f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)]
        rgbs.append((f"synthesis.b{r}.torgb", f"to_rgbs.{k}"))
    for ours, theirs, noise in layers:
        m[f"{ours}.weight"] = f"{theirs}.conv.weight"
        m[f"{ours}.bias"] = f"{theirs}.activate.bias"
        m[f"{ours}.noise_strength"] = f"{theirs}.noise.weight"
        m[f"{ours}.noise_const"] = f"noises.noise_{noise}"
        m[f"{ours}.affine.weight"] = f"{theirs}.conv.modulation.weight"
        m[f"{ours}.affine.bias"] = f"{theirs}.conv.modulation.bias"
    for ours, theirs in rgbs:
        m[f"{ours}.weight"] = f"{theirs}.conv.weight"
        m[f"{ours}.bias"] = f"{theirs}.bias"
        m[f"{ours}.affine.weight"] = f"{theirs}.conv.modulation.weight"
        m[f"{ours}.affine.bias"] = f"{theirs}.conv.modulation.bias"
    return m


def test_rosinality_mapping(rosinality):
    path, arrays, latent_avg = rosinality
    sd, avg = torch_io.read_rosinality_pt(path)
    assert list(sd) == list(arrays)
    np.testing.assert_array_equal(avg, latent_avg)
    params, config = torch_io.rosinality_to_params(sd, avg)
    assert config == {"z_dim": 64, "c_dim": 0, "w_dim": 64, "img_resolution": 16, "img_channels": 3,
                      "mapping_layers": 8, "mapping_lr_multiplier": 0.01, "channel_base": 32768,
                      "channel_max": 512, "conv_clamp": None, "num_ws": 6, "source": "rosinality"}
    flat = torch_io.flatten_params(params)
    table = _expected_rosinality_map()
    assert set(flat) == set(table) | {"mapping.w_avg"} and len(flat) == 60
    for ours, theirs in table.items():
        ref = arrays[theirs]
        got = flat[ours]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.ravel(), ref.ravel(), err_msg=ours)
    np.testing.assert_array_equal(flat["mapping.w_avg"], latent_avg)
    # shapes of the NVlabs layout
    syn = params["synthesis"]
    assert syn["b4"]["const"].shape == (512, 4, 4)
    assert syn["b8"]["conv0"]["weight"].shape == (512, 512, 3, 3)
    assert syn["b16"]["conv1"]["noise_const"].shape == (16, 16)
    assert syn["b8"]["conv0"]["noise_strength"].shape == ()
    assert syn["b16"]["torgb"]["weight"].shape == (3, 512, 1, 1) and syn["b16"]["torgb"]["bias"].shape == (3,)
    np.testing.assert_array_equal(syn["b16"]["conv0"]["noise_const"], arrays["noises.noise_3"][0, 0])


def test_rosinality_params_reproduce_official_mapping_and_styles(rosinality, fixtures_dir):
    path, arrays, latent_avg = rosinality
    params, config = torch_io.rosinality_to_params(arrays, latent_avg)
    exp = np.load(fixtures_dir / "rosinality" / "expected.npz")
    np.testing.assert_allclose(_mapping_forward(params, config, exp["z"]), exp["w"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(params["mapping"]["w_avg"], exp["mean_latent"][0])
    syn = params["synthesis"]
    w = exp["wplus_in"]
    layers = [(syn["b4"]["conv1"], 0), (syn["b4"]["torgb"], 1), (syn["b8"]["conv0"], 1), (syn["b8"]["conv1"], 2),
              (syn["b8"]["torgb"], 3), (syn["b16"]["conv0"], 3), (syn["b16"]["conv1"], 4), (syn["b16"]["torgb"], 5)]
    for i, (layer, row) in enumerate(layers):
        np.testing.assert_allclose(_affine(layer, w[:, row]), exp[f"s_{i:02d}"][:, 0, :, 0, 0], rtol=1e-4,
                                   atol=1e-4, err_msg=f"s_{i:02d}")


def test_rosinality_errors(rosinality):
    _, arrays, latent_avg = rosinality
    with pytest.raises(CheckpointFormatError, match="no latent_avg"):
        torch_io.rosinality_to_params(arrays, None)
    params, _ = torch_io.rosinality_to_params(arrays, np.tile(latent_avg, (6, 1)))  # (n_latent, D) rows equal
    np.testing.assert_array_equal(params["mapping"]["w_avg"], latent_avg)
    with pytest.raises(CheckpointFormatError, match="latent_avg"):
        torch_io.rosinality_to_params(arrays, latent_avg[:10])
    bad = dict(arrays, **{"convs.2.conv.blur.kernel": arrays["convs.2.conv.blur.kernel"] * 2})
    with pytest.raises(CheckpointFormatError, match="convs.2.conv.blur.kernel"):
        torch_io.rosinality_to_params(bad, latent_avg)
    bad = {k: v for k, v in arrays.items() if k != "noises.noise_2"}
    with pytest.raises(CheckpointFormatError, match="noises.noise_2"):
        torch_io.rosinality_to_params(bad, latent_avg)
    bad = dict(arrays, **{"something.else": np.zeros(3, np.float32)})
    with pytest.raises(CheckpointFormatError, match="unexpected keys.*something.else"):
        torch_io.rosinality_to_params(bad, latent_avg)


def test_infer_channel_base():
    cm2 = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    cm1 = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}
    assert torch_io.infer_channel_base(cm2) == (32768, 512)
    assert torch_io.infer_channel_base(cm1) == (16384, 512)
    assert torch_io.infer_channel_base({4: 512, 8: 512, 16: 512}) == (32768, 512)
    with pytest.raises(CheckpointFormatError, match="cannot be written"):
        torch_io.infer_channel_base({4: 512, 8: 300, 16: 512})


def test_rosinality_hostile_and_broken_pt(tmp_path):
    pytest.importorskip("torch")
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"g_ema": _Evil(sentinel)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="system") as info:
        torch_io.read_rosinality_pt(evil)
    assert str(evil) in str(info.value) and not sentinel.exists()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00\x01not a checkpoint" * 10)
    with pytest.raises(CheckpointFormatError) as info:
        torch_io.read_rosinality_pt(junk)
    assert str(junk) in str(info.value)
    with pytest.raises(CheckpointNotFoundError):
        torch_io.read_rosinality_pt(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------------------------
# Converter script and dispatch


def _load_script():
    spec = importlib.util.spec_from_file_location("convert_stylegan2",
                                                  REPO / "checkpoints_convert" / "convert_stylegan2.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_convert_script_on_nvlabs_pkl(tmp_path, fixtures_dir, ada_ref, capsys):
    """Runs the script as __main__ in a fresh interpreter; a .pkl conversion must not import torch."""
    dst = tmp_path / "ada_jax"
    script = REPO / "checkpoints_convert" / "convert_stylegan2.py"
    argv = [str(script), f"--src={fixtures_dir / 'stylegan2_ada' / 'G.pkl'}", f"--dst={dst}"]
    code = ("import runpy, sys\n"
            f"sys.argv = {argv!r}\n"
            "try:\n"
            f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert not e.code, 'exit code %r' % e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print('torch not imported')\n")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "76 arrays" in res.stdout and "resolution 32" in res.stdout
    assert "torch not imported" in res.stdout
    params, config = checkpoints.load_params(dst)
    assert config["kind"] == "stylegan2_generator" and config["conv_clamp"] == 256
    flat = torch_io.flatten_params(params)
    expected = {k: v for k, v in ada_ref.items() if not k.endswith("resample_filter")}
    assert set(flat) == set(expected)
    for k, ref in expected.items():
        assert flat[k].dtype == np.float32 and flat[k].tobytes() == ref.tobytes(), k
    # dispatch: directory and .pkl give the same arrays; 'kind' is stripped
    p_dir, c_dir = torch_io.load_generator_arrays(dst)
    p_pkl, c_pkl = torch_io.load_generator_arrays(fixtures_dir / "stylegan2_ada" / "G.pkl")
    assert c_dir == c_pkl and "kind" not in c_dir
    f_pkl = torch_io.flatten_params(p_pkl)
    assert all(np.array_equal(f_pkl[k], v) for k, v in torch_io.flatten_params(p_dir).items())
    # a second run refuses to overwrite, and leaves the checkpoint intact
    assert _load_script().main(argv[1:]) == 1
    assert "already exists" in capsys.readouterr().err
    assert checkpoints.load_params(dst)[1] == config


def test_convert_script_on_rosinality_pt(rosinality, tmp_path, capsys):
    path, arrays, latent_avg = rosinality
    script = _load_script()
    dst = tmp_path / "ros_jax"
    assert script.main([f"--src={path}", f"--dst={dst}"]) == 0
    assert "source: rosinality" in capsys.readouterr().out
    params, config = torch_io.load_generator_arrays(dst)
    assert config["source"] == "rosinality" and config["num_ws"] == 6
    flat = torch_io.flatten_params(params)
    for ours, theirs in _expected_rosinality_map().items():
        np.testing.assert_array_equal(flat[ours].ravel(), arrays[theirs].ravel(), err_msg=ours)
    np.testing.assert_array_equal(flat["mapping.w_avg"], latent_avg)
    assert checkpoints.load_extra(dst)["source_format"] == "rosinality_pt"
    # a converted mapper-like directory of another kind is refused by the generator loader
    other = tmp_path / "other"
    checkpoints.save_params(other, {"a": np.ones(2)}, {"kind": "levels_mapper"})
    with pytest.raises(CheckpointFormatError, match="levels_mapper"):
        torch_io.load_generator_arrays(other)
    shutil.rmtree(other)
