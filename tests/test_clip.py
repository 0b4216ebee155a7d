"""styleclip_jax.clip: official CLIP-loss resampling, StyleCLIP loss, text directions and loading.

A tiny random-weight FlaxCLIPModel plus a word-level BPE vocabulary is written to a temp folder and
loaded back through ``load_clip`` (native backend, the default); results are compared against transformers'
own ``get_image_features``/``get_text_features`` and tokenizer (the same folder loaded with
``backend="transformers"``), numpy references and the official fixtures. tests/test_clip_native.py
compares the two backends in more depth.
"""
import json
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from styleclip_jax.models import clip as C

# --------------------------------------------------------------------------------------------------
# Independent numpy reference of nn.Upsample(scale_factor=7) + nn.AvgPool2d(k) along one axis.


def _np_up7_pool_axis(x, axis, k):
    up = np.repeat(x, 7, axis=axis)  # nearest x7
    n_out = up.shape[axis] // k
    up = np.take(up, np.arange(n_out * k), axis=axis)  # AvgPool2d floors
    shape = up.shape[:axis] + (n_out, k) + up.shape[axis + 1:]
    return up.reshape(shape).mean(axis=axis + 1)


def _np_official(x_nhwc, out_size=224):
    k = 7 * x_nhwc.shape[1] // out_size
    x = _np_up7_pool_axis(x_nhwc.astype(np.float64), 1, k)
    return _np_up7_pool_axis(x, 2, k)


# --------------------------------------------------------------------------------------------------
# Pre-processing


def test_official_matches_fixture(fixtures_dir):
    d = np.load(fixtures_dir / "training" / "expected.npz")
    assert int(d["clip_in_stylegan_size"]) == 64
    x = jnp.transpose(jnp.asarray(d["clip_in_image"]), (0, 2, 3, 1))
    out = jax.jit(lambda x: C.preprocess_images(x, 224, "official"))(x)
    assert out.shape == (2, 224, 224, 3)
    np.testing.assert_allclose(np.transpose(np.asarray(out), (0, 3, 1, 2)), d["clip_preprocessed"], atol=1e-6, rtol=0)


def test_official_1024_matches_naive_numpy():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(1, 1024, 1024, 3)).astype(np.float32)
    out = np.asarray(C.official_resample(jnp.asarray(x), 224))
    assert out.shape == (1, 224, 224, 3)
    # separable reference over the whole image
    np.testing.assert_allclose(out, _np_official(x), atol=1e-6, rtol=0)
    # fully 2-D naive reference on a slab: upsample 40 input rows x 1024 columns to 280 x 7168, pool by 32
    slab = x[0, :40, :, 0].astype(np.float64)
    up = np.repeat(np.repeat(slab, 7, axis=0), 7, axis=1)  # (280, 7168)
    pooled = up[: 8 * 32].reshape(8, 32, 224, 32).mean(axis=(1, 3))  # first 8 output rows
    np.testing.assert_allclose(out[0, :8, :, 0], pooled, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [32, 256, 512])
def test_official_shapes_and_rows_sum_to_one(size):
    a = C.official_resample_matrix(size, 224)
    assert a.shape == (224, size)
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-12)
    x = jnp.ones((2, size, size, 3)) * jnp.asarray([0.5, -0.25, 1.0])
    out = C.preprocess_images(x, 224, "official")
    assert out.shape == (2, 224, 224, 3)
    np.testing.assert_allclose(np.asarray(out[0, 100, 7]), [0.5, -0.25, 1.0], atol=1e-6)


def test_official_other_model_size_and_nonsquare():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(C.official_resample(jnp.asarray(x), 32)), _np_official(x, 32), atol=1e-6)
    # 128 -> 224: kernel 4, blocks of 7x4 (not a power-of-two block)
    x = rng.normal(size=(1, 128, 128, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(C.official_resample(jnp.asarray(x))), _np_official(x), atol=1e-6)
    # H != W: each axis has its own kernel
    x = rng.normal(size=(1, 64, 128, 3)).astype(np.float32)
    ref = _np_up7_pool_axis(_np_up7_pool_axis(x.astype(np.float64), 1, 2), 2, 4)
    np.testing.assert_allclose(np.asarray(C.official_resample(jnp.asarray(x))), ref, atol=1e-6)


def test_normalized_and_resize_modes():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.uniform(-1, 1, size=(1, 64, 64, 3)).astype(np.float32))
    off = C.preprocess_images(x, 224, "official")
    nrm = C.preprocess_images(x, 224, "normalized")
    mean, std = np.asarray(C.CLIP_MEAN), np.asarray(C.CLIP_STD)
    np.testing.assert_allclose(np.asarray(nrm), ((np.asarray(off) + 1) / 2 - mean) / std, atol=1e-5)
    # resize: a constant image stays constant (then normalised); any size works, incl. non-square
    const = jnp.full((1, 48, 80, 3), 0.2)
    r = C.preprocess_images(const, 224, "resize")
    assert r.shape == (1, 224, 224, 3)
    np.testing.assert_allclose(np.asarray(r[0, 50, 60]), ((0.2 + 1) / 2 - mean) / std, atol=1e-5)


def test_preprocess_errors():
    with pytest.raises(ValueError, match="resize"):
        C.preprocess_images(jnp.zeros((1, 48, 48, 3)), 224, "official")
    with pytest.raises(ValueError, match="NHWC"):
        C.preprocess_images(jnp.zeros((1, 3, 64, 64)), 224, "official")
    with pytest.raises(ValueError, match="preprocess must be one of"):
        C.preprocess_images(jnp.zeros((1, 64, 64, 3)), 224, "bilinear")


# --------------------------------------------------------------------------------------------------
# Global-direction text maths against the official fixtures


def test_templates_are_the_official_79(fixtures_dir):
    expected = json.loads((fixtures_dir / "global_direction" / "imagenet_templates.json").read_text())
    assert C.imagenet_templates() == expected and len(expected) == 79


def test_template_average_and_dt_match_fixture(fixtures_dir):
    d = np.load(fixtures_dir / "global_direction" / "expected.npz")
    tf = jnp.stack([C.template_average(d["text_emb_target"]), C.template_average(d["text_emb_neutral"])])
    np.testing.assert_allclose(np.asarray(tf), d["text_features"], atol=1e-6, rtol=0)
    dt = jax.jit(C.text_direction_from_embeddings)(d["text_emb_target"], d["text_emb_neutral"])
    np.testing.assert_allclose(np.asarray(dt), d["dt"], atol=1e-6, rtol=0)
    # already averaged (D,) inputs give the same direction
    np.testing.assert_allclose(np.asarray(C.text_direction_from_embeddings(tf[0], tf[1])), d["dt"], atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Tiny CLIP written to disk and loaded through load_clip

_PAT = r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+"  # CLIP's split, restricted to ASCII
_PROMPTS = ["a red shape", "a blue circle"]


def _write_tiny_clip(folder):
    from transformers import CLIPConfig, CLIPTokenizer, FlaxCLIPModel

    texts = [t.format(p) for t in C.imagenet_templates() for p in _PROMPTS]
    words = sorted({w for t in texts for w in re.findall(_PAT, t)})
    vocab, merges = {}, []

    def add(tok):
        vocab.setdefault(tok, len(vocab))

    for w in words:  # left-to-right merge chain per word: every merge result is in the vocabulary
        syms = list(w[:-1]) + [w[-1] + "</w>"]
        for s in syms:
            add(s)
        cur = syms[0]
        for s in syms[1:]:
            if f"{cur} {s}" not in merges:
                merges.append(f"{cur} {s}")
            cur += s
            add(cur)
    add("<|startoftext|>")
    add("<|endoftext|>")  # highest id: FlaxCLIP pools the text at the eos token
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    eos, bos = vocab["<|endoftext|>"], vocab["<|startoftext|>"]
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=24, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=16,
    )
    model = FlaxCLIPModel(cfg, _do_init=False)  # Flax init would compile for seconds: fill shapes with numpy
    model.save_pretrained(folder, params=_random_params(model.params_shape_tree))
    return folder


def _random_params(shapes, seed=0):
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "logit_scale" in name:
            return np.full(leaf.shape, 2.6592, np.float32)  # HF's init value: exp = 14.28, not 100
        base = 1.0 if name.endswith("['scale']") else 0.0
        std = 0.02 if name.endswith(("['kernel']", "['embedding']", "class_embedding']")) else 0.1
        return (base + std * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = _write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))
    return folder, C.load_clip(folder)


@pytest.fixture(scope="module")
def ref(tiny):
    """The same folder through FlaxCLIPModel and transformers' tokenizer (the reference)."""
    ref = C.load_clip(tiny[0], backend="transformers")
    assert ref.backend == "transformers" and tiny[1].backend == "native"
    return ref


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(np.random.default_rng(3).uniform(-1, 1, size=(3, 64, 64, 3)).astype(np.float32))


def _reference_features(model, params, tokenizer, images_np, texts):
    """Direct transformers computation with numpy pre-processing (64 px -> 32 px: kernel 14)."""
    pix = _np_official(images_np, 32).astype(np.float32).transpose(0, 3, 1, 2)
    fi = np.asarray(jax.jit(model.get_image_features)(pix, params=params))
    return fi, _reference_text(model, params, tokenizer, texts)


def _reference_text(model, params, tokenizer, texts):
    enc = tokenizer(texts, padding="max_length", max_length=24, return_tensors="np")
    f = jax.jit(model.get_text_features)
    return np.asarray(f(enc["input_ids"], attention_mask=enc["attention_mask"], params=params))


def test_load_properties(tiny):
    _, clip = tiny
    assert (clip.image_size, clip.embed_dim, clip.max_length, clip.preprocess) == (32, 16, 24, "official")
    np.testing.assert_allclose(float(clip.logit_scale), np.exp(2.6592), rtol=1e-5)  # HF init value


def test_loss_equals_transformers(tiny, ref, images):
    _, clip = tiny
    fi, ft = _reference_features(ref.module, ref.params, ref.tokenizer, np.asarray(images), _PROMPTS)
    fi = fi / np.linalg.norm(fi, axis=1, keepdims=True)
    ft = ft / np.linalg.norm(ft, axis=1, keepdims=True)
    scale = np.exp(np.asarray(clip.params["logit_scale"]))
    expected = 1 - scale * (fi @ ft.T) / 100  # StyleCLIP divides by 100 whatever the scale
    loss = clip.loss(images, _PROMPTS)
    assert loss.shape == (3, 2)
    np.testing.assert_allclose(np.asarray(loss), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(clip.encode_images(images)), fi, atol=1e-5)
    np.testing.assert_allclose(np.asarray(clip.encode_texts(_PROMPTS)), ft, atol=1e-5)
    single = clip.loss(images, _PROMPTS[1])
    assert single.shape == (3,)
    np.testing.assert_allclose(np.asarray(single), expected[:, 1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(clip.loss(images, ft)), expected, atol=1e-5)


def test_grad_jit_vmap(tiny, images):
    _, clip = tiny
    t = clip.encode_texts(_PROMPTS[:1])

    @jax.jit
    def total(c, x):  # the CLIP object itself is a jit argument (pytree with params as leaves)
        return c.loss(x, t).sum()

    g = jax.grad(total, argnums=1)(clip, images)
    assert g.shape == images.shape
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
    # pure function with params as an argument
    g2 = jax.jit(jax.grad(lambda p, x: C.clip_loss(p, x, t, module=clip.module).sum(), argnums=1))(clip.params, images)
    np.testing.assert_allclose(np.asarray(g2), np.asarray(g), atol=1e-6)
    emb = jax.jit(jax.vmap(clip.image_embed_fn, in_axes=(None, 0)))(clip.params, images.reshape(3, 1, 64, 64, 3))
    np.testing.assert_allclose(np.asarray(emb[:, 0]), np.asarray(clip.encode_images(images)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(emb), axis=-1), 1.0, atol=1e-5)


def test_templated_text_direction(tiny, ref):
    _, clip = tiny
    templates = C.imagenet_templates()
    raw = [_reference_text(ref.module, ref.params, ref.tokenizer, [t.format(p) for t in templates]) for p in _PROMPTS]
    ref = []
    for r in raw:  # numpy version of zeroshot_classifier
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
        m = r.mean(0)
        ref.append(m / np.linalg.norm(m))
    got = clip.encode_texts_templated(_PROMPTS)
    np.testing.assert_allclose(np.asarray(got), np.stack(ref), atol=1e-5)
    dt_ref = ref[0] - ref[1]
    np.testing.assert_allclose(np.asarray(clip.text_direction(*_PROMPTS)), dt_ref / np.linalg.norm(dt_ref), atol=1e-5)


def test_other_preprocess_modes_run(tiny, images):
    _, clip = tiny
    e = clip.with_preprocess("resize").encode_images(images[:, :48, :40])  # a size "official" cannot take
    assert e.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(e), axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="resize"):
        clip.encode_images(images[:, :48, :48])


def test_unknown_word_is_an_error(tiny):
    _, clip = tiny
    with pytest.raises(C.CLIPTokenError, match="zebra"):
        clip.encode_texts(["a red zebra"])


# --------------------------------------------------------------------------------------------------
# Loading errors (must be quick: no network attempts)


def _assert_clean(err):
    e = err.value  # no chained hub/transformers traceback
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)


def test_missing_local_folder(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(C.CLIPLoadError, match="config.json") as err:
        C.load_clip(tmp_path / "no_such_model")
    _assert_clean(err)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(C.CLIPLoadError, match="flax_model.msgpack") as err:
        C.load_clip(tmp_path / "half")
    assert "vocab.json" in str(err.value)
    assert time.perf_counter() - t0 < 5


def test_missing_hub_model_offline(monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(C.CLIPLoadError, match="not-a-user/not-a-clip-model") as err:
        C.load_clip("not-a-user/not-a-clip-model")
    _assert_clean(err)
    assert "flax_model.msgpack" in str(err.value)
    with pytest.raises(C.CLIPLoadError):
        C.load_clip("not-a-user/not-a-clip-model", local_files_only=True)
    with pytest.raises(C.CLIPLoadError, match="not-a-user/not-a-clip-model") as err:
        C.load_clip("not-a-user/not-a-clip-model", backend="transformers")
    _assert_clean(err)
    assert time.perf_counter() - t0 < 20


def test_missing_shapes_model(monkeypatch, tmp_path):
    monkeypatch.setattr(C, "SHAPES_CLIP_DIR", tmp_path / "shapes_clip")
    with pytest.raises(C.CLIPLoadError, match="shapes_clip"):
        C.load_clip("shapes")


def test_bad_preprocess_argument(tiny):
    folder, _ = tiny
    with pytest.raises(ValueError, match="preprocess"):
        C.load_clip(folder, preprocess="crop")


def test_fingerprint_follows_the_weights(tiny, tmp_path):
    """Same weights (reloaded from disk, other preprocess) -> same fingerprint; one changed number ->
    another. The global-direction cache is keyed by it, so a retrained CLIP never reuses a stale fs3."""
    folder, clip = tiny
    fp = clip.fingerprint()
    assert len(fp) == 16 and fp == C.load_clip(folder).fingerprint() == clip.with_preprocess("resize").fingerprint()
    params = jax.tree_util.tree_map(np.array, clip.params)
    params["text_projection"]["kernel"][0, 0] += 1e-3
    assert C.CLIP(clip.module, clip.tokenizer, params, clip.preprocess, clip.name).fingerprint() != fp
