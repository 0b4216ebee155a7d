"""The native CLIP backend (models/clip_net.py, checkpoints/hf_clip.py) against transformers' FlaxCLIPModel.

Parity: the same random parameter tree through both modules (small configs with QuickGELU / GELU and the
legacy argmax pooling, and a ViT-B/32-shaped config): embeddings and the StyleCLIP loss to 1e-5, image
gradients to 1e-5 relative. Loading: one random model written by transformers as flax_model.msgpack, as
PyTorch model.safetensors / pytorch_model.bin (torch CLIPModel converted from the Flax one) and as Flax
model.safetensors must read back to the identical tree and fingerprint. The shipped shapes CLIP gives the
same zero-shot predictions and the same fs3 cache key in both backends, and the Quickstart job runs in a
process where ``import transformers`` fails.
"""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from styleclip_jax.checkpoints import hf_clip
from styleclip_jax.models import clip as C
from styleclip_jax.models import clip_net as N

REPO = pathlib.Path(__file__).resolve().parents[1]

SMALL = dict(
    text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
                     max_position_embeddings=16, eos_token_id=2, bos_token_id=1, pad_token_id=63, hidden_act="gelu"),
    vision_config=dict(image_size=32, patch_size=8, hidden_size=48, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=3),
    projection_dim=24,
)


def _params(cfg, seed=0, std=0.2):
    """Random tree with non-trivial LayerNorms; a shared random pool keeps ViT-B/32 cheap to fill."""
    pool = np.random.default_rng(seed).standard_normal(1 << 20, dtype=np.float32)
    rng = np.random.default_rng(seed + 1)

    def fill(path, shape):
        name, n = path[-1].key, int(np.prod(shape))
        x = np.roll(pool, int(rng.integers(pool.size)))[: n] if n <= pool.size else np.resize(np.roll(pool, 7), n)
        x = x.reshape(shape)
        if name == "logit_scale":
            return np.full(shape, np.log(100.0), np.float32)
        if name == "scale":
            return 1.0 + 0.1 * x
        return (0.1 if name == "bias" else std) * x

    return jax.tree_util.tree_map_with_path(fill, N.param_shapes(cfg), is_leaf=lambda s: isinstance(s, tuple))


def _pair(cfg_dict, std=0.2):
    transformers = pytest.importorskip("transformers")
    cfg = N.Config.from_dict(cfg_dict)
    params = jax.tree_util.tree_map(jnp.asarray, _params(cfg, std=std))
    hf = transformers.FlaxCLIPModel(transformers.CLIPConfig(**cfg_dict), _do_init=False)
    assert jax.tree_util.tree_structure(hf.params_shape_tree) == jax.tree_util.tree_structure(params)
    return C.CLIP(N.CLIPNet(cfg), None, params), C.CLIP(hf, None, params)


def _ids(cfg, n, seed=0):
    t = cfg.text_config
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, min(t.vocab_size, t.eos_token_id) - 1, size=(n, t.max_position_embeddings))
    ids[:, 0] = t.bos_token_id if t.eos_token_id != 2 else 1
    ends = rng.integers(2, t.max_position_embeddings, size=n)
    mask = (np.arange(ids.shape[1]) <= ends[:, None]).astype(np.int32)
    eos = t.eos_token_id if t.eos_token_id != 2 else t.vocab_size - 1  # legacy: eos is the largest id
    ids[np.arange(n), ends] = eos
    ids[mask == 0] = eos
    return ids.astype(np.int32), mask


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_parity_small():
    """Vision tower QuickGELU (gradients checked through it), text tower exact GELU and the legacy
    ``eos_token_id == 2`` config that pools at argmax(input_ids); ViT-B/32 below covers the other cases."""
    native, ref = _pair(SMALL)
    cfg = native.module.config
    images = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, size=(3, 32, 32, 3)).astype(np.float32))
    ids, mask = _ids(cfg, 5)
    tn, tr = (C._jitted("text", c.module, "")(c.params, ids, mask) for c in (native, ref))
    np.testing.assert_allclose(_unit(tn), _unit(tr), atol=1e-5)
    np.testing.assert_allclose(np.asarray(tn), np.asarray(tr), atol=1e-5 * float(jnp.abs(tr).max()))
    text = C.l2_normalize(tr)

    @jax.jit
    def loss_and_grad(c, x):  # the StyleCLIP loss (N, T) and d sum(loss) / d images
        return c.loss(x, text), jax.grad(lambda x: c.loss(x, text).sum())(x)

    la, ga = map(np.asarray, loss_and_grad(native, images))
    lb, gb = map(np.asarray, loss_and_grad(ref, images))
    np.testing.assert_allclose(la, lb, atol=1e-5)
    assert np.abs(gb).max() > 0
    assert np.abs(ga - gb).max() <= 1e-5 * np.abs(gb).max(), (np.abs(ga - gb).max(), np.abs(gb).max())
    a, b = native.with_preprocess("normalized"), ref.with_preprocess("normalized")
    np.testing.assert_allclose(np.asarray(a.encode_images(images)), np.asarray(b.encode_images(images)), atol=1e-5)


def test_parity_vit_b32_shaped():
    cfg_dict = N.Config().to_dict()  # transformers' CLIPConfig() defaults: ViT-B/32, 77 tokens, 49408 words
    native, ref = _pair(cfg_dict, std=0.02)
    images = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, size=(2, 64, 64, 3)).astype(np.float32))
    ids, mask = _ids(native.module.config, 2)
    tn, tr = (C.l2_normalize(C._jitted("text", c.module, "")(c.params, ids, mask)) for c in (native, ref))
    np.testing.assert_allclose(np.asarray(tn), np.asarray(tr), atol=1e-5)
    ia, ib = native.encode_images(images), ref.encode_images(images)
    np.testing.assert_allclose(np.asarray(ia), np.asarray(ib), atol=1e-5)
    np.testing.assert_allclose(np.asarray(C.clip_loss_from_features(ia, tr, native.params["logit_scale"])),
                               np.asarray(C.clip_loss_from_features(ib, tr, ref.params["logit_scale"])), atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Weight files


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    """One random tiny CLIP in four folders: msgpack, PyTorch safetensors, PyTorch .bin, Flax safetensors."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    from test_clip import _write_tiny_clip

    from transformers.modeling_flax_pytorch_utils import load_flax_checkpoint_in_pytorch_model

    root = tmp_path_factory.mktemp("formats")
    src = _write_tiny_clip(root / "msgpack")
    pt = transformers.CLIPModel(transformers.CLIPConfig.from_pretrained(src))  # transformers' own Flax -> torch
    pt = load_flax_checkpoint_in_pytorch_model(pt, str(src / "flax_model.msgpack"))
    folders = {"msgpack": src}
    for name, kw in (("safetensors", dict(safe_serialization=True)), ("bin", dict(safe_serialization=False))):
        pt.save_pretrained(root / name, **kw)
        folders[name] = root / name
    flax_model = transformers.FlaxCLIPModel.from_pretrained(src, _do_init=False)
    flax_model[0].save_pretrained(root / "flax_safetensors", params=flax_model[1], safe_serialization=True)
    folders["flax_safetensors"] = root / "flax_safetensors"
    for folder in list(folders.values())[1:]:
        for f in src.iterdir():
            if f.suffix in (".json", ".txt") and f.name != "config.json":
                shutil.copy(f, folder / f.name)
    weights = {"msgpack": "flax_model.msgpack", "safetensors": "model.safetensors", "bin": "pytorch_model.bin",
               "flax_safetensors": "model.safetensors"}
    for name, folder in folders.items():  # exactly one weight file each
        assert [f.name for f in folder.iterdir() if f.name in hf_clip.WEIGHT_FILES] == [weights[name]], name
    return folders


def test_every_format_loads_the_same_tree(formats):
    ref = C.load_clip(formats["msgpack"])
    assert ref.backend == "native" and isinstance(ref.tokenizer, C.BPETokenizer)
    for name, folder in formats.items():
        clip = C.load_clip(folder)
        same = jax.tree_util.tree_map(lambda a, b: a.dtype == b.dtype and np.array_equal(a, b), clip.params, ref.params)
        assert all(jax.tree_util.tree_leaves(same)), name
        assert clip.fingerprint() == ref.fingerprint(), name
    other = C.load_clip(formats["msgpack"], backend="transformers")
    assert other.backend == "transformers" and other.fingerprint() == ref.fingerprint()


def test_bin_without_torch_is_one_clear_error(formats, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(C.CLIPLoadError, match="needs torch") as err:
        C.load_clip(formats["bin"])
    assert "pytorch_model.bin" in str(err.value)


def test_wrong_shapes_and_bad_files(formats, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(formats["safetensors"], bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["projection_dim"] = 8
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(C.CLIPLoadError, match=r"visual_projection.kernel has shape \(32, 16\), config.json implies \(32, 8\)"):
        C.load_clip(bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(C.CLIPLoadError, match="model.safetensors: not a readable safetensors file"):
        C.load_clip(bad)
    with pytest.raises(ValueError, match="backend"):
        C.load_clip(bad, backend="torch")


def test_hub_name_from_local_cache(formats, tmp_path, monkeypatch):
    """A hub name resolves to the cached snapshot (refs/main), read directly; uncached -> one clear error."""
    repo = tmp_path / "hub" / "models--someone--tiny-clip"
    shutil.copytree(formats["safetensors"], repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(hf_clip, "hub_cache_dir", lambda: tmp_path / "hub")
    clip = C.load_clip("someone/tiny-clip", local_files_only=True)
    assert clip.fingerprint() == C.load_clip(formats["msgpack"]).fingerprint()
    with pytest.raises(C.CLIPLoadError, match="huggingface-cli download someone/other-clip") as err:
        C.load_clip("someone/other-clip", local_files_only=True)
    assert err.value.__cause__ is None and "model.safetensors" in str(err.value)
    # not cached, hub reachable: config, tokenizer files and the first weight file the repo has are fetched
    hub = pytest.importorskip("huggingface_hub")
    fetched = []

    def fake_download(repo_id, filename):
        src = formats["bin"] / filename
        if not src.is_file():
            raise FileNotFoundError(filename)
        fetched.append(filename)
        (tmp_path / "dl").mkdir(exist_ok=True)
        return str(shutil.copy(src, tmp_path / "dl" / filename))

    monkeypatch.setattr(hf_clip, "hub_reachable", lambda: True)
    monkeypatch.setattr(hub, "hf_hub_download", fake_download)
    assert C.load_clip("someone/other-clip").fingerprint() == clip.fingerprint()
    assert fetched[0] == "config.json" and fetched[-1] == "pytorch_model.bin" and "vocab.json" in fetched


# --------------------------------------------------------------------------------------------------
# The shipped shapes CLIP


def test_shapes_clip_same_predictions_and_fs3_key():
    pytest.importorskip("transformers")
    from styleclip_jax.shapes import metrics as M
    from styleclip_jax.shapes import render as R
    from styleclip_jax.shipped import SHAPES_GLOBAL_DIRECTION

    native, ref = C.load_clip("shapes"), C.load_clip("shapes", backend="transformers")
    assert (native.backend, ref.backend) == ("native", "transformers")
    assert native.fingerprint() == ref.fingerprint()
    tag = hashlib.sha256(f"{native.fingerprint()}|official".encode()).hexdigest()[:8]
    assert any(p.name.endswith(f"_clip{tag}") for p in SHAPES_GLOBAL_DIRECTION.iterdir()), tag  # shipped fs3 still valid
    images, _, _ = R.render_batch(range(5000, 5128))
    for attribute in ("colour", "shape", "background"):
        np.testing.assert_array_equal(M.zero_shot_predict(native, images, attribute),
                                      M.zero_shot_predict(ref, images, attribute))
    np.testing.assert_allclose(np.asarray(native.encode_images(images[:64])), np.asarray(ref.encode_images(images[:64])),
                               atol=1e-5)
    dt = native.text_direction("a red shape", "a shape")
    np.testing.assert_allclose(np.asarray(dt), np.asarray(ref.text_direction("a red shape", "a shape")), atol=1e-5)


def test_quickstart_without_transformers(tmp_path):
    """`python main.py --mode=global_direction` in a process where transformers (and tokenizers,
    huggingface_hub, torch) cannot be imported: native CLIP, shipped fs3 cache found by its key."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('transformers', 'tokenizers', 'huggingface_hub', 'torch'):\n"
        "            raise ImportError(name + ' is blocked in this test')\n"
        "sys.meta_path.insert(0, _Block())\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]), JAX_PLATFORMS="cpu")
    probe = subprocess.run([sys.executable, "-c", "import transformers"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    out = tmp_path / "gd"
    r = subprocess.run([sys.executable, "main.py", "--mode=global_direction", f"--workdir={out}", "--config.seeds=0-1"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "clip0b5a6dd6" in r.stdout + r.stderr  # the shipped fs3, keyed by the CLIP fingerprint
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics and (out / "index.html").is_file()
