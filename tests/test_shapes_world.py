"""Shapes world: renderer, tokenizer, tiny CLIP zero-shot accuracy, pixel colour metric."""
import json
import os

import numpy as np
import pytest

from styleclip_jax.shapes import metrics as M
from styleclip_jax.shapes import render as R
from styleclip_jax.shapes import tokenizer as T

ASSET = M.ASSET_DIR
EVAL_SEEDS = range(5_000_000, 5_000_400)  # disjoint from training seeds [0, 40000) and the trainer's eval seeds


@pytest.fixture(scope="module")
def fresh():
    return R.render_batch(EVAL_SEEDS)


# ------------------------------------------------------------------------------------------ renderer
def test_render_is_deterministic_and_batch_matches():
    a, cap_a, lab_a = R.render(123)
    b, cap_b, lab_b = R.render(123)
    assert a.shape == (32, 32, 3) and a.dtype == np.float32
    assert np.array_equal(a, b) and cap_a == cap_b and lab_a == lab_b
    assert -1.0 <= a.min() and a.max() <= 1.0
    imgs, caps, labs = R.render_batch([123, 7, 99])
    assert imgs.shape == (3, 32, 32, 3)
    assert np.array_equal(imgs[0], a) and caps[0] == cap_a and labs[0] == lab_a
    assert not np.array_equal(imgs[0], imgs[1])
    c, _, _ = R.render(124)
    assert not np.array_equal(a, c)


def test_captions_match_labels_and_pixels(fresh):
    imgs, caps, labs = fresh
    for img, cap, lab in zip(imgs[:100], caps, labs):
        assert cap == f"a {lab['colour']} {lab['shape']} on a {lab['background']} background"
        assert R.COLOURS[lab["colour_idx"]] == lab["colour"] and R.SHAPES[lab["shape_idx"]] == lab["shape"]
        # shape centre pixel has the shape colour; the corner pixel has the background colour
        x, y = int(lab["cx"]), int(lab["cy"])
        fg = np.array(R.COLOUR_RGB[lab["colour"]]) * lab["brightness"] * 2 - 1
        bg = np.array(R.BACKGROUND_RGB[lab["background"]]) + lab["bg_brightness"]
        assert np.abs(img[y, x] - fg).max() < 0.02
        assert np.abs(img[0, 0] - (np.clip(bg, 0, 1) * 2 - 1)).max() < 0.02
    # every attribute value occurs
    for key, names in (("colour", R.COLOURS), ("shape", R.SHAPES), ("background", R.BACKGROUNDS)):
        assert {lab[key] for lab in labs} == set(names)
    # backgrounds are neutral, shape colours saturated: never equal
    for b in R.BACKGROUNDS:
        assert M.rgb_to_hsv(np.array(R.BACKGROUND_RGB[b]))[1] < 0.05
    for c in R.COLOURS:
        assert M.rgb_to_hsv(np.array(R.COLOUR_RGB[c]))[1] > 0.8


def test_render_attributes_geometry_and_antialiasing():
    attrs = {"colour": ["red", "red", "red"], "shape": ["circle", "square", "triangle"], "background": "white",
             "size": 8.0, "cx": 16.3, "cy": 16.4}
    imgs = R.render_attributes(attrs)
    cov = (0.95 * 2 - 1 - imgs[..., 1]) / ((0.95 - 0.10) * 2)  # green channel: 0 on background, 1 on shape
    areas = cov.sum(axis=(1, 2))
    np.testing.assert_allclose(areas, np.pi * 64, rtol=0.03)  # equal-area shapes
    circle, square, tri = cov
    assert square[22, 22] > 0.9 and circle[22, 22] < 0.1  # square corner
    assert tri[5, 16] > 0.9 and circle[5, 16] < 0.1 and square[5, 16] < 0.1  # triangle apex
    edge = ((cov > 0.05) & (cov < 0.95)).sum(axis=(1, 2))
    assert (edge > 0).all()  # anti-aliased edges
    # fixing attributes in sample_attributes; names or indices
    a = R.sample_attributes(np.random.default_rng(0), 50, colour="blue", shape=2)
    assert (a["colour"] == R.COLOURS.index("blue")).all() and (a["shape"] == 2).all()
    imgs = R.render_attributes(a)
    assert imgs.shape == (50, 32, 32, 3)
    assert all(d == "blue" for d in M.dominant_colour(imgs))
    single = R.render_attributes(R.sample_attributes(3))
    assert single.shape == (32, 32, 3)


# ----------------------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def tokenizers():
    from transformers import CLIPTokenizer, CLIPTokenizerFast
    return (CLIPTokenizer.from_pretrained(ASSET, local_files_only=True),
            CLIPTokenizerFast.from_pretrained(ASSET, local_files_only=True))


def test_tokenizer_one_token_per_word_and_eos_highest(tokenizers):
    vocab = json.load(open(os.path.join(ASSET, "vocab.json")))
    assert vocab == T.vocab_dict()
    eos = vocab[T.EOS]
    assert eos == max(vocab.values()) and len(set(vocab.values())) == len(vocab)
    words = T.vocabulary_words()
    assert len(vocab) == len(words) + 3
    for tok in tokenizers:
        assert tok.eos_token_id == eos and tok.unk_token_id not in (eos, None) and tok.pad_token_id == eos
        for w in words:
            assert tok(w)["input_ids"] == [tok.bos_token_id, vocab[w + T.EOW], eos], (type(tok).__name__, w)


def test_tokenizer_templates_in_vocab_and_oov_is_unk(tokenizers, fixtures_dir):
    templates = json.load(open(fixtures_dir / "global_direction" / "imagenet_templates.json"))
    slow, fast = tokenizers
    for tpl in templates:
        for x in ("shape", "red shape", "blue square", "circle"):
            ids = slow(tpl.format(x))["input_ids"]
            assert slow.unk_token_id not in ids, tpl
            assert fast(tpl.format(x))["input_ids"] == ids
    ids = slow("a close-up photo of a red shape.")["input_ids"]
    assert slow.convert_ids_to_tokens(ids)[1:-1] == [w + T.EOW for w in
                                                     ["a", "close", "-", "up", "photo", "of", "a", "red", "shape", "."]]
    for tok in tokenizers:
        for oov in ("zebra", "redd", "ab", "circl"):
            ids = tok(f"a {oov} shape", add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id in ids, (type(tok).__name__, oov, ids)
        assert tok("a red shape, on a white background", add_special_tokens=False)["input_ids"].count(tok.unk_token_id) == 0


# ---------------------------------------------------------------------------------------- tiny CLIP
@pytest.fixture(scope="module")
def clip_model(tokenizers):
    from transformers import FlaxCLIPModel
    return FlaxCLIPModel.from_pretrained(ASSET, local_files_only=True), tokenizers[0]


def test_clip_checkpoint_small_and_consistent(clip_model):
    size = sum(os.path.getsize(os.path.join(ASSET, f)) for f in os.listdir(ASSET))
    assert size <= 4 * 2**20, size
    assert os.path.isfile(os.path.join(ASSET, "flax_model.msgpack"))
    model, tok = clip_model
    cfg = model.config
    assert cfg.vision_config.image_size == R.IMAGE_SIZE
    assert cfg.text_config.vocab_size >= len(tok) and cfg.text_config.eos_token_id == tok.eos_token_id


def test_clip_zero_shot_colour_accuracy(clip_model, fresh):
    imgs, _, labs = fresh
    acc_c = M.zero_shot_accuracy(clip_model, imgs, labs, "colour")
    acc_b = M.zero_shot_accuracy(clip_model, imgs, labs, "background")
    print(f"zero-shot on {len(imgs)} fresh renders: colour {acc_c:.3f} background {acc_b:.3f}")
    assert acc_c >= 0.95
    assert acc_b >= 0.95


def test_clip_zero_shot_shape_accuracy(clip_model, fresh):
    imgs, _, labs = fresh
    acc_s = M.zero_shot_accuracy(clip_model, imgs, labs, "shape")
    print(f"zero-shot shape on {len(imgs)} fresh renders: {acc_s:.3f}")
    assert acc_s >= 0.90  # issue #4: >= 70 %, aiming for 90 % (measured 99.5 %, TRAINING.md)


def test_zero_shot_accuracy_can_fail(clip_model, fresh):
    imgs, _, labs = fresh
    wrong = [R.COLOURS[(R.COLOURS.index(l["colour"]) + 1) % 6] for l in labs]
    assert M.zero_shot_accuracy(clip_model, imgs, wrong, "colour") < 0.2


def test_clip_module_loads_shapes(fresh, clip_model):
    from styleclip_jax.models import clip
    model = clip.load_clip("shapes")
    imgs, _, labs = fresh
    # official preprocessing is the identity at the render size: same predictions as the raw model
    pred_mod = M.zero_shot_predict(model, imgs[:100], "colour")
    pred_raw = M.zero_shot_predict(clip_model, imgs[:100], "colour")
    assert np.array_equal(pred_mod, pred_raw)
    assert M.zero_shot_accuracy(model, imgs, labs, "colour") >= 0.95


# ------------------------------------------------------------------------------------- pixel metric
def test_pixel_metric_identifies_colour(fresh):
    imgs, _, labs = fresh
    truth = [l["colour"] for l in labs]
    assert np.mean([d == t for d, t in zip(M.dominant_colour(imgs), truth)]) >= 0.95
    shares = M.colour_shares(imgs)
    own = shares[np.arange(len(labs)), [R.COLOURS.index(t) for t in truth]]
    assert np.median(own) > 0.9
    red = M.colour_share(imgs, "red")
    is_red = np.array([t == "red" for t in truth])
    assert red[is_red].min() > 0.5 and red[~is_red].max() < 0.1
    bg = M.background_colour(imgs)
    for b, lab in zip(bg, labs):
        assert np.abs(b - np.array(R.BACKGROUND_RGB[lab["background"]])).max() < 0.05
    assert M.dominant_colour(np.zeros((1, 32, 32, 3), np.float32)) == [None]


class _FakeG:
    """Generator API stand-in: z -> attributes -> render; colour chosen from the sign of z[0]."""
    z_dim = 8

    def mapping(self, z, truncation_psi=1.0):
        return np.asarray(z) * truncation_psi

    def synthesis(self, ws, noise_mode="const"):
        assert noise_mode == "const"
        ws = np.asarray(ws)
        colour = np.where(ws[:, 0] > 0, R.COLOURS.index("green"), R.COLOURS.index("purple"))
        attrs = R.sample_attributes(np.random.default_rng(0), len(ws), colour=colour)
        return R.render_attributes(attrs).transpose(0, 3, 1, 2)  # NCHW like StyleGAN


def test_sample_colour_shares_with_generator_api():
    G = _FakeG()
    green = M.sample_colour_shares(G, 40, "green", seed=3, batch_size=16)
    purple = M.sample_colour_shares(G, 40, "purple", seed=3, batch_size=16)
    assert green.shape == (40,)
    z0 = np.random.default_rng(3).standard_normal((40, 8))[:, 0]
    assert (green[z0 > 0] > 0.8).all() and (green[z0 <= 0] < 0.05).all()
    assert np.array_equal(green > 0.5, purple < 0.5)
