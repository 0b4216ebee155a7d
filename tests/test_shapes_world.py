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
        # the colour word names the nearest palette hue, the background word the nearest tone
        d = np.abs(lab["hue"] - R.COLOUR_HUES)
        assert R.COLOURS[int(np.argmin(np.minimum(d, 360 - d)))] == lab["colour"]
        assert R.BACKGROUNDS[int(np.argmin(np.abs(lab["bg_level"] - R.BG_LEVELS)))] == lab["background"]
        # shape centre pixel has the shape colour (except the ring's hole); the corner pixel the background
        x, y = int(lab["cx"]), int(lab["cy"])
        fg = R.hsv_to_rgb(lab["hue"], lab["saturation"], lab["brightness"]) * 2 - 1
        if lab["shape"] != "ring":
            assert np.abs(img[y, x] - fg).max() < 0.02
        assert np.abs(img[0, 0] - (lab["bg_level"] * 2 - 1)).max() < 0.02
    # every attribute value occurs, colours about equally often (the hue warp)
    for key, names in (("colour", R.COLOURS), ("shape", R.SHAPES), ("background", R.BACKGROUNDS)):
        assert {lab[key] for lab in labs} == set(names)
    counts = np.bincount([lab["colour_idx"] for lab in labs], minlength=len(R.COLOURS))
    assert counts.min() > 0.6 * len(labs) / len(R.COLOURS)
    # hue is continuous: many distinct hues, also far from every palette hue
    hues = np.array([lab["hue"] for lab in labs])
    d = np.abs(hues[:, None] - R.COLOUR_HUES[None])
    assert np.mean(np.minimum(d, 360 - d).min(1) > 10) > 0.3
    # backgrounds are neutral, shape colours saturated
    assert all(M.rgb_to_hsv(np.array(R.BACKGROUND_RGB[b]))[1] < 0.05 for b in R.BACKGROUNDS)
    assert min(lab["saturation"] for lab in labs) >= 0.75


def test_hsv_to_rgb_inverts_rgb_to_hsv():
    rng = np.random.default_rng(0)
    h, s, v = rng.uniform(0, 360, 200), rng.uniform(0.1, 1, 200), rng.uniform(0.1, 1, 200)
    h2, s2, v2 = M.rgb_to_hsv(R.hsv_to_rgb(h, s, v))
    dh = np.abs(h2 - h)
    assert np.minimum(dh, 360 - dh).max() < 1e-6 and np.abs(s2 - s).max() < 1e-9 and np.abs(v2 - v).max() < 1e-9
    # the warp hits the palette hues at multiples of 60 degrees and is monotone round the circle
    anchors = R.hue_from_uniform(np.arange(6) * 60.0)
    assert sorted(np.round(anchors, 6)) == sorted(np.round(R.COLOUR_HUES, 6))
    u = np.linspace(0, 359.9, 1000)
    assert np.all(np.diff(np.unwrap(np.deg2rad(R.hue_from_uniform(u)))) > 0)


def test_render_attributes_geometry_and_antialiasing():
    attrs = {"colour": "red", "shape": ["circle", "square", "triangle", "ring"], "background": "white",
             "size": 8.0, "cx": 16.3, "cy": 16.4, "saturation": 1.0, "brightness": 1.0}
    imgs = R.render_attributes(attrs)
    cov = (0.95 * 2 - 1 - imgs[..., 1]) / (0.95 * 2)  # green channel: 0 on background, 1 on shape
    areas = cov.sum(axis=(1, 2))
    np.testing.assert_allclose(areas, np.pi * 64, rtol=0.03)  # equal-area shapes
    circle, square, tri, ring = cov
    assert square[22, 22] > 0.9 and circle[22, 22] < 0.1  # square corner
    assert tri[5, 16] > 0.9 and circle[5, 16] < 0.1 and square[5, 16] < 0.1  # triangle apex
    assert ring[16, 16] < 0.05 and circle[16, 16] > 0.95 and ring[16, 16 + 8] > 0.9  # hole and band
    edge = ((cov > 0.05) & (cov < 0.95)).sum(axis=(1, 2))
    assert (edge > 0).all()  # anti-aliased edges
    # rotation by 45 degrees turns the square's corner onto the axis
    rot = R.render_attributes(dict(attrs, shape="square", rotation=[0.0, 45.0]))
    cr = (0.95 * 2 - 1 - rot[..., 1]) / (0.95 * 2)
    assert cr[0, 16, 16 + 9] < 0.3 and cr[1, 16, 16 + 9] > 0.7
    np.testing.assert_allclose(cr.sum(axis=(1, 2)), np.pi * 64, rtol=0.03)
    # fixing attributes in sample_attributes; names or indices
    a = R.sample_attributes(np.random.default_rng(0), 50, colour="blue", shape=2)
    assert (a["colour"] == R.COLOURS.index("blue")).all() and (a["shape"] == 2).all()
    imgs = R.render_attributes(a)
    assert imgs.shape == (50, 32, 32, 3)
    assert all(d == "blue" for d in M.dominant_colour(imgs))
    single = R.render_attributes(R.sample_attributes(3))
    assert single.shape == (32, 32, 3)


def test_mask_shape_metric_on_renders(fresh):
    imgs, _, labs = fresh
    truth = np.array([lab["shape_idx"] for lab in labs])
    pred = M.shape_of(imgs)
    for k in range(len(R.SHAPES)):  # every shape recognised from its mask, at every size/rotation/position
        assert np.mean(pred[truth == k] == k) >= 0.98, R.SHAPES[k]
    # the metric reads the mask, not the colour: recolouring keeps the prediction, a blurred blob is a circle
    recoloured = R.render_attributes(dict(R.attributes_for_seeds(EVAL_SEEDS[:40]), hue=200.0))
    assert np.array_equal(M.shape_of(recoloured), pred[:40])
    assert M.shape_of(np.zeros((1, 32, 32, 3), np.float32))[0] == -1
    # IoU, hue and saturation of the shape pixels
    assert np.allclose(M.mask_iou(imgs[:10], imgs[:10]), 1.0)
    assert M.mask_iou(imgs[:1], imgs[1:2])[0] < 0.9
    hue = M.mean_hue(imgs[:50])
    d = np.abs(hue - np.array([lab["hue"] for lab in labs[:50]]))
    assert np.minimum(d, 360 - d).max() < 3.0
    sat = M.mean_saturation(imgs[:50])
    err = sat - np.array([lab["saturation"] for lab in labs[:50]])  # edge pixels mix with the grey background
    assert err.max() < 0.01 and err.min() > -0.2 and np.mean(err) > -0.08


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
    assert np.mean([d == t for d, t in zip(M.dominant_colour(imgs), truth)]) >= 0.98
    shares = M.colour_shares(imgs)
    own = shares[np.arange(len(labs)), [R.COLOURS.index(t) for t in truth]]
    assert np.median(own) > 0.9
    red = M.colour_share(imgs, "red")
    is_red = np.array([t == "red" for t in truth])
    assert np.median(red[is_red]) > 0.9 and np.median(red[~is_red]) < 0.05
    bg = M.background_colour(imgs)
    for b, lab in zip(bg, labs):
        assert np.abs(b - lab["bg_level"]).max() < 0.05
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


def test_shipped_clip_gives_blue_a_slope_from_red_and_yellow():
    """scripts/clip_hue_profile.py: the shipped CLIP's cosine with "a blue shape" must rise from red toward purple
    and from yellow toward green (the ways round the hue circle to blue), or latent optimisation toward blue has
    no gradient from red, orange and yellow samples. Measured (x 100, u 0 -> 330 and 120 -> 150): the CLIP shipped
    before (--soft-colour 20 0.1), flat there and at 66 % in latent optimisation: +0.3 and +0.4; the shipped one
    (--soft-colour 20 0.2 50): +1.0 and +1.0."""
    import importlib.util
    import pathlib

    import styleclip_jax as sc

    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "clip_hue_profile.py"
    spec = importlib.util.spec_from_file_location("clip_hue_profile", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    red, purple_side, yellow, green_side = mod.hue_profile(sc.load_clip("shapes"), "a blue shape", [0, 330, 120, 150])
    assert purple_side - red > 0.6 and green_side - yellow > 0.6, (red, purple_side, yellow, green_side)
