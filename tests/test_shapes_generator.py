"""The shipped shapes-world generator (``load_generator("shapes")``) and its z -> attributes rule.

No training here: the checks load the committed checkpoint and compare its samples with the renders
of their latents' attributes (see scripts/train_shapes_generator.py and
styleclip_jax/assets/shapes_generator/TRAINING.md for how it was trained and the measured figures).
"""
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from styleclip_jax.models import ops
from styleclip_jax.models.generator import Generator, seeds_to_z
from styleclip_jax.shapes import generator_data as D
from styleclip_jax.shapes import render as R

REPO = pathlib.Path(__file__).resolve().parents[1]
ASSET = REPO / "styleclip_jax" / "assets" / "shapes_generator"

# Thresholds on the generator's own samples (seeds 0..255, z ~ N(0, I), truncation 1), below the shipped
# checkpoint's measured values (TRAINING.md: pixel colour = rule colour 95.3 %, mask shape = rule shape 96.5 %,
# MAE 0.031). Issue #15 asks for the mask metric to recognise the shape of >= 90 % of samples.
MIN_SHAPE_ACC = 0.90
MIN_COLOUR_ACC = 0.93
MAX_MAE = 0.05


# ---------------------------------------------------------------------------------------------
# z -> attributes rule
# ---------------------------------------------------------------------------------------------
def _z(n, dim=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim))


def test_rule_is_deterministic_and_reads_the_documented_dims():
    z = _z(500)
    a, b = D.z_to_attributes(z), D.z_to_attributes(z.copy())
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a["shape"], np.argmax(z[:, 2:6], axis=1))
    # hue is the angle of (z0, z1), warped: the palette hue at multiples of 60 degrees
    angle = np.degrees(np.arctan2(z[:, 1], z[:, 0])) % 360
    np.testing.assert_allclose(a["hue"], R.hue_from_uniform(angle), atol=1e-9)
    # Depends on z only through z / rms(z) (what the mapping network sees) ...
    c = D.z_to_attributes(z * 3.7)
    for k in a:
        np.testing.assert_allclose(c[k], a[k], rtol=1e-6, atol=1e-6)
    # ... and not at all on the unused dims, beyond that normalisation.
    z2 = z.copy()
    z2[:, D.MIN_Z_DIM:] = z2[:, D.MIN_Z_DIM:][:, ::-1]  # permute unused dims: same rms
    d = D.z_to_attributes(z2)
    for k in a:
        np.testing.assert_allclose(d[k], a[k], rtol=1e-6, atol=1e-6)
    # each continuous dim moves its attribute monotonically
    for dim, key in zip(range(6, 13), ("saturation", "brightness", "size", "cx", "cy", "rotation", "bg_level")):
        z3 = z.copy()
        z3[:, dim] += 0.5
        moved = D.z_to_attributes(z3)[key] - a[key]
        assert np.all(moved >= -1e-9) and np.mean(moved > 0) > 0.9, key
    # rotating (z0, z1) rotates the hue continuously: small steps, small hue changes
    t = np.deg2rad(np.arange(0, 360, 2.0))
    zr = np.zeros((len(t), 16)) + 0.3
    zr[:, 0], zr[:, 1] = 2 * np.cos(t), 2 * np.sin(t)
    h = D.z_to_attributes(zr)["hue"]
    step = np.abs(np.diff(np.append(h, h[0])))
    assert np.minimum(step, 360 - step).max() < 2.0 * 1.7 + 0.1  # steepest warp segment: 101 deg of hue per 60


def test_rule_ranges_and_coverage():
    z = _z(5000, seed=1)
    a = D.z_to_attributes(z)
    assert set(np.unique(a["colour"])) == set(range(len(R.COLOURS)))
    assert np.bincount(a["colour"]).min() > 0.12 * len(z)  # each colour word about equally often
    assert set(np.unique(a["shape"])) == set(range(len(R.SHAPES)))
    assert set(np.unique(a["background"])) == set(range(len(R.BACKGROUNDS)))
    for key, (lo, hi) in (("size", R.SIZE_RANGE), ("rotation", R.ROTATION_RANGE),
                          ("saturation", R.SATURATION_RANGE), ("brightness", R.BRIGHTNESS_RANGE),
                          ("bg_level", R.BG_LEVEL_RANGE)):
        assert np.all((a[key] >= lo) & (a[key] <= hi)), key
        assert a[key].std() > 0.2 * (hi - lo), key  # spread over the range, not collapsed
    reach = R.CIRCUMRADIUS[a["shape"]] * a["size"]  # the shape stays inside the canvas
    eps = 1e-9
    for c in (a["cx"], a["cy"]):
        assert np.all(c - reach >= R.MARGIN - eps) and np.all(c + reach <= R.IMAGE_SIZE - R.MARGIN + eps)
        assert c.std() > 1.0
    # Zero in the continuous dims gives a mid-sized, centred, upright shape on mid-grey.
    zm = np.ones(16)
    zm[6:13] = 0.0
    m = D.z_to_attributes(zm)
    assert m["size"] == pytest.approx(np.mean(R.SIZE_RANGE), abs=0.05)
    assert m["cx"] == pytest.approx(R.IMAGE_SIZE / 2, abs=0.01) and m["rotation"] == pytest.approx(0.0, abs=0.01)
    # One latent gives 0-d arrays; renders have the renderer's format.
    one = D.z_to_attributes(z[0])
    assert np.ndim(one["colour"]) == 0 and np.ndim(one["size"]) == 0
    img = D.render_z(z[:3])
    assert img.shape == (3, 32, 32, 3) and img.dtype == np.float32
    with pytest.raises(ValueError):
        D.z_to_attributes(np.zeros((2, 10)))


def test_evaluate_on_renders():
    z = _z(300, seed=2)
    imgs = D.render_z(z)
    ev = D.evaluate(imgs, z)
    assert ev["mae"] == 0.0 and ev["colour_acc"] >= 0.99 and ev["shape_acc"] >= 0.98 and ev["iou"] == 1.0
    # A plain image fails every check.
    bad = D.evaluate(np.zeros_like(imgs), z)
    assert bad["colour_acc"] == 0.0 and bad["shape_acc"] == 0.0 and bad["mae"] > 0.2


# ---------------------------------------------------------------------------------------------
# The training script's fast modulated conv equals ops.modulated_conv2d
# ---------------------------------------------------------------------------------------------
def training_script():
    """scripts/train_shapes_generator.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("train_shapes_generator", REPO / "scripts" / "train_shapes_generator.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_config(mod, w_dim=16):
    return mod.make_config(mod.parse_args(["--channel-base", "64", "--channel-max", "8", "--w-dim", str(w_dim),
                                           "--mapping-layers", "2"]))


def test_training_fast_modconv_matches_ops():
    mod = training_script()
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.normal(k[0], (2, 8, 8, 5))
    s = jax.random.normal(k[2], (2, 5))
    for up in (1, 2):
        w = jax.random.normal(k[1], (7, 5, 3, 3))
        ref = ops.modulated_conv2d(x, w, s, up=up, padding=1)
        got = mod.fast_modconv(x, w, s, up=up, padding=1)
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-4, atol=1e-4)
    w1 = jax.random.normal(k[3], (3, 5, 1, 1))
    np.testing.assert_allclose(np.asarray(mod.fast_modconv(x, w1, s, demodulate=False)),
                               np.asarray(ops.modulated_conv2d(x, w1, s, demodulate=False)), rtol=1e-4, atol=1e-4)


def test_fine_tune_terms_reach_the_generator_and_the_discriminator_learns():
    """The script's fine-tune terms (TRAINING.md "Tried since"): the shape-classifier and adversarial losses
    change the generator's update, and repeated steps on one batch lower the discriminator's loss."""
    mod = training_script()
    cfg = tiny_config(mod)
    params = mod.G.init_params(jax.random.PRNGKey(0), cfg)
    scales = mod.update_scales(params, 100.0)
    z = np.random.default_rng(0).standard_normal((4, cfg.z_dim)).astype(np.float32)
    attrs = D.z_to_attributes(z)
    target = np.concatenate([R.render_attributes(attrs), D.shape_decisive_pixels(attrs)[..., None]], -1)
    target = jnp.asarray(target, jnp.float32)
    cls_params = mod._cls_init(jax.random.PRNGKey(1))
    dparams = mod.disc_init(jax.random.PRNGKey(2))
    disc = {"params": dparams, "opt": mod.DISC_TX.init(dparams)}
    tx, step = mod.make_step(cfg, scales, mod.fast_modconv, cls_params=cls_params)
    opt = tx.init(params)
    base, _, _, _ = step(params, opt, z, target, 1e-3, 1.0, 1.0, 0.0, 0.0, disc, 0.0)
    for kw in ({"cls_weight": 1.0}, {"adv_weight": 1.0}):
        args = dict({"cls_weight": 0.0, "adv_weight": 0.0}, **kw)
        new, _, m, _ = step(params, opt, z, target, 1e-3, 1.0, 1.0, 0.0, args["cls_weight"], disc, args["adv_weight"])
        diff = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree_util.tree_leaves(new),
                                                               jax.tree_util.tree_leaves(base)))
        assert diff > 1e-7, kw
        assert np.isfinite(float(m["cls"])) and np.isfinite(float(m["adv"]))
    losses = []
    for _ in range(6):
        _, _, m, disc = step(params, opt, z, target, 0.0, 1.0, 1.0, 0.0, 0.0, disc, 0.0)
        losses.append(float(m["dloss"]))
    assert losses[-1] < losses[0], losses


def test_oracle_code_feeds_the_synthesis_and_the_pretrained_mapping_reads_shape():
    """The script's two-stage schedule (TRAINING.md): fitting the mapping network alone to the attribute code
    makes the one-hot shape readable from w (far above chance); with the oracle at 1 the synthesis is fed the
    code, so the pixel losses give the mapping network no gradient (only the code term moves it)."""
    mod = training_script()
    cfg = tiny_config(mod)
    params = mod.G.init_params(jax.random.PRNGKey(0), cfg)
    scales = mod.update_scales(params, 100.0)
    _, _, acc0 = mod.pretrain_mapping(params, cfg, scales, 1)
    fitted, loss, acc = mod.pretrain_mapping(params, cfg, scales, 1500)
    assert acc > 0.5 and acc > acc0 + 0.2, (acc0, acc, loss)  # chance 0.25; measured 0.27 -> 0.59
    z = np.random.default_rng(0).standard_normal((4, cfg.z_dim)).astype(np.float32)
    attrs = D.z_to_attributes(z)
    target = jnp.asarray(np.concatenate([R.render_attributes(attrs), D.shape_decisive_pixels(attrs)[..., None]],
                                        -1), jnp.float32)
    tx, step = mod.make_step(cfg, scales, mod.fast_modconv)
    opt = tx.init(params)

    def mapping_moved(oracle, code_weight):
        new, _, _ = step(params, opt, z, target, 1e-3, 1.0, 1.0, code_weight, oracle=oracle)
        return max(float(jnp.abs(a - b).max()) for a, b in zip(
            jax.tree_util.tree_leaves({k: v for k, v in new["mapping"].items() if k != "w_avg"}),
            jax.tree_util.tree_leaves({k: v for k, v in params["mapping"].items() if k != "w_avg"})))

    assert mapping_moved(1.0, 0.0) == 0.0
    assert mapping_moved(1.0, 1.0) > 0.0 and mapping_moved(0.5, 0.0) > 0.0
    a = mod.parse_args(["--oracle-until", "0.8", "--oracle-fade", "0.2"])
    assert [mod.oracle_at(a, f) for f in (0.0, 0.6, 0.7, 0.8, 0.9)] == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])


def test_mixed_samples_give_in_between_codes_a_meaning():
    """``mixed_samples``: without mixing, the rule's renders and codes exactly; a mixed sample's hue code is a
    chord between two unit hue directions (so no longer than 1), its shape code a convex mix of two one-hots, and
    its target differs from the rule's render; at oracle 0 mixed samples carry no pixel loss."""
    mod = training_script()
    z = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)
    attrs = D.z_to_attributes(z)
    target, code, mixed = mod.mixed_samples(z, np.random.default_rng(1), 0.0)
    assert not mixed.any()
    np.testing.assert_array_equal(target[..., :3], R.render_attributes(attrs))
    np.testing.assert_allclose(code @ mod.code_projection(64).T, np.asarray(mod.attribute_code_of(jnp.asarray(z), 64)),
                               atol=1e-5)
    target, code, mixed = mod.mixed_samples(z, np.random.default_rng(1), 1.0)
    assert mixed.all()
    r = np.linalg.norm(code[:, :2], axis=1)
    assert np.all(r <= 1.0 + 1e-6) and r.min() < 0.9
    np.testing.assert_allclose(code[:, 2:6].sum(1), 1.0, atol=1e-6)
    assert np.all(code[:, 2:6] >= 0) and np.all((code[:, 2:6] > 0).sum(1) == 2)
    # a mixed target is the same picture only where both shapes agree: hue or coverage differ elsewhere
    assert np.abs(target[..., :3] - R.render_attributes(attrs)).max(axis=(1, 2, 3)).min() > 0.05
    cfg = tiny_config(mod, w_dim=64)
    params = mod.G.init_params(jax.random.PRNGKey(0), cfg)
    tx, step = mod.make_step(cfg, mod.update_scales(params, 100.0), mod.fast_modconv)
    out = step(params, tx.init(params), z[:4], jnp.asarray(target[:4]), 1e-3, 1.0, 1.0, 0.0, oracle=0.0,
               code=jnp.asarray(code[:4]), mixed=jnp.ones(4))
    assert float(out[2]["mse"]) == 0.0 and float(out[2]["l1"]) == 0.0
    out = step(params, tx.init(params), z[:4], jnp.asarray(target[:4]), 1e-3, 1.0, 1.0, 0.0, oracle=1.0,
               code=jnp.asarray(code[:4]), mixed=jnp.ones(4))
    assert float(out[2]["mse"]) > 0.0


def test_palette_hue_code_identity_projection_and_affine_penalty():
    """The script's --hue-code palette: a z at palette colour k's angle is drawn as colour k by the rule, and the
    code's largest hue coordinate is k's (numpy and jnp codes agree); --code-projection identity puts the code in
    w's first coordinates; --affine-l1 makes one step shrink the style affine weights more than without it."""
    mod = training_script()
    mod.HUE_CODE = "palette"
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 16)).astype(np.float32)
    z[:, :2] = 3.0 * np.stack([np.cos(mod._PALETTE_ANGLES), np.sin(mod._PALETTE_ANGLES)], 1)
    code = mod.code_coordinates(z)
    assert code.shape == (6, mod.code_dims()) == (6, 17)
    np.testing.assert_array_equal(D.z_to_attributes(z)["colour"], np.arange(6))
    np.testing.assert_array_equal(np.argmax(code[:, :6], 1), np.arange(6))
    np.testing.assert_allclose(code[:, :6].max(1), 1.0, atol=1e-5)
    assert np.all(np.sort(code[:, :6], 1)[:, -2] < 0.3)  # the neighbours' axes stay low
    mod.PALETTE_KAPPA = 6.0  # --palette-kappa 6: a neighbour 60 degrees away gets exp(-3)
    np.testing.assert_allclose(np.sort(mod.code_coordinates(z)[:, :6], 1)[:, -2], np.exp(-3.0), rtol=1e-4)
    mod.PALETTE_KAPPA = 3.0
    mod.CODE_PROJECTION = "identity"
    w = np.asarray(mod.attribute_code_of(jnp.asarray(z), 64))
    np.testing.assert_allclose(w[:, :17], 2.0 * code, atol=1e-5)
    assert not w[:, 17:].any()

    cfg = tiny_config(mod, w_dim=64)
    params = mod.G.init_params(jax.random.PRNGKey(0), cfg)
    scales = mod.update_scales(params, 100.0)
    target = jnp.asarray(np.concatenate([D.render_z(z[:4]), np.zeros((4, 32, 32, 1), np.float32)], -1))

    def mean_abs_affine(penalty):
        tx, step = mod.make_step(cfg, scales, mod.fast_modconv, affine_l1=penalty)
        new = step(params, tx.init(params), z[:4], target, 1e-2, 1.0, 1.0)[0]
        return np.mean([float(jnp.abs(a).mean()) for a in mod.affine_weights(new)])

    assert mean_abs_affine(100.0) < mean_abs_affine(0.0) - 1e-3



def test_palette_edit_samples_draw_every_coordinate_toward_its_colour():
    """--edit-prob: ``palette_hue_of`` returns the rendered hue on the palette code's own curve (so edited and
    unedited samples follow one rule), raising any one palette coordinate moves the hue monotonically to that
    colour without greying, and ``palette_edit_samples`` recolours only the edited samples' shape pixels; an
    edited sample is drawn from its code at full weight even at oracle 0; --edit-negative lowers coordinates
    further; --edit-far dark keeps a far colour's hue and darkens it until it passes the largest (neighbours as
    before); --free-noise jitters only the w coordinates outside the code, per W+ row, in the synthesis input."""
    mod = training_script()
    mod.HUE_CODE, mod.PALETTE_KAPPA, mod.CODE_PROJECTION = "palette", 6.0, "identity"
    z = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
    hue, rule = mod.palette_hue_of(mod.code_coordinates(z)[:, :6]), D.z_to_attributes(z)["hue"]
    assert np.abs(np.mod(hue - rule + 180.0, 360.0) - 180.0).max() < 0.01
    for k in range(6):
        for j in range(6):
            if j == k:
                continue
            hues = mod.palette_hue_of(np.eye(6)[j] + np.array([[t] for t in (0.0, 0.2, 0.5, 1.0, 2.0, 8.0)]) * np.eye(6)[k])
            dist = np.abs(np.mod(hues - R.COLOUR_HUES[k] + 180.0, 360.0) - 180.0)
            assert dist[0] > 20.0 and np.all(np.diff(dist) < 0) and R.nearest_palette(hues[-1:])[0] == k, (j, k, hues)
    ts = np.array([[t] for t in (0.0, 0.5, 0.99, 1.01, 2.0)])
    arc_near = mod.palette_hue_of(np.eye(6)[0] + ts * np.eye(6)[5])  # red raised on orange: neighbours
    mod.EDIT_FAR = "dark"  # --edit-far dark: a far colour darkens the shape instead of passing the hues between
    far = np.eye(6)[1] + ts * np.eye(6)[0]  # red raised on green
    np.testing.assert_array_equal(R.nearest_palette(mod.palette_hue_of(far)), [1, 1, 1, 0, 0])
    np.testing.assert_allclose(mod.palette_value_of(far), [1.0, 0.65, 1 - 0.7 * 0.99, 1 - 0.7 / 1.01, 0.65])
    np.testing.assert_array_equal(mod.palette_hue_of(np.eye(6)[0] + ts * np.eye(6)[5]), arc_near)
    np.testing.assert_array_equal(mod.palette_value_of(np.eye(6)[0] + ts * np.eye(6)[5]), np.ones(5))
    target_dark, _, _ = mod.palette_edit_samples(z[:64], np.random.default_rng(1), 0.5)
    mod.EDIT_FAR = "arc"
    target, code, edited = mod.palette_edit_samples(z[:64], np.random.default_rng(1), 0.5)
    assert target_dark.sum() < target.sum() and not np.abs(target_dark - target)[edited == 0].any()
    assert 0.2 < edited.mean() < 0.8
    plain = R.render_attributes(D.z_to_attributes(z[:64]))
    changed = np.abs(target[..., :3] - plain).max(axis=(1, 2, 3))
    assert not changed[edited == 0].any() and (changed[edited == 1] > 0.02).mean() > 0.8
    np.testing.assert_array_equal(code[edited == 0], mod.code_coordinates(z[:64])[edited == 0])
    cfg = tiny_config(mod, w_dim=64)
    params = mod.G.init_params(jax.random.PRNGKey(0), cfg)
    tx, step = mod.make_step(cfg, mod.update_scales(params, 100.0), mod.fast_modconv, edits_keep_oracle=True)
    i = np.where(edited == 1)[0][:4]
    mse = [float(step(params, tx.init(params), z[i], jnp.asarray(target[i]), 1e-3, 1.0, 1.0, 0.0, oracle=0.0,
                      code=jnp.asarray(c), mixed=jnp.ones(4))[2]["mse"]) for c in (code[i], code[i] + 1.0)]
    assert mse[0] > 0.0 and mse[0] != mse[1]  # the edited code, not mapping(z), is drawn
    mod.EDIT_S_MAX, mod.EDIT_NOISE = 2.0, 0.3  # --edit-negative 2 0.3: lowered coordinates reach -1
    _, code2, edited2 = mod.palette_edit_samples(z[:256], np.random.default_rng(1), 1.0)
    assert code2[:, :6].min() < -0.6 < code[:, :6].min()

    # --free-noise: per-row noise on the coordinates outside the code only, and it reaches the synthesis input
    e = mod.free_noise(np.random.default_rng(2), 64, cfg, 0.3)
    assert e.shape == (64, cfg.num_ws, 64) and not e[..., :17].any()
    assert abs(e[..., 17:].std() - 0.3) < 0.01 and np.abs(e[:, 0] - e[:, 1]).max() > 0
    loss = [float(step(params, tx.init(params), z[i], jnp.asarray(target[i]), 1e-3, 1.0, 1.0, 0.0, oracle=0.0,
                       code=jnp.asarray(code[i]), mixed=jnp.ones(4), wnoise=w)[2]["mse"]) for w in (None, e[:4])]
    assert loss[0] != loss[1]


def test_code_channels_fix_which_w_coordinate_each_style_channel_reads():
    """--code-channels: style channel j < code_dims() reads w coordinate j alone and the other channels read no
    code coordinate, at start and after a train step (an unmasked step fills the masked entries)."""
    mod = training_script()
    mod.HUE_CODE, mod.CODE_PROJECTION = "palette", "identity"
    k = mod.code_dims()
    m = mod.code_channel_mask((24, 64), k)
    np.testing.assert_array_equal(m[:k], np.eye(k, 64))
    assert not m[k:, :k].any() and m[k:, k:].all()

    cfg = tiny_config(mod, w_dim=64)
    params = mod.G.init_params(jax.random.PRNGKey(0), cfg)
    masks = mod.affine_masks_for(params)
    params = mod.apply_affine_masks(params, masks)
    scales = mod.update_scales(params, 100.0)
    z = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    target = jnp.asarray(np.concatenate([D.render_z(z), np.zeros((4, 32, 32, 1), np.float32)], -1))

    def masked_entries_after_step(step_masks):
        tx, step = mod.make_step(cfg, scales, mod.fast_modconv, masks=step_masks)
        new = step(params, tx.init(params), z, target, 1e-2, 1.0, 1.0)[0]
        out = []
        for w in mod.affine_weights(new):
            keep = mod.code_channel_mask(w.shape, k)
            assert np.abs(np.asarray(w)[keep == 1]).max() > 0
            out.append(float(np.abs(np.asarray(w)[keep == 0]).max(initial=0.0)))
        return max(out)

    assert masked_entries_after_step(masks) == 0.0
    assert masked_entries_after_step(None) > 0.0


def test_hue_layer_leaves_the_hue_coordinates_to_one_layer():
    """--hue-layer: only the named layer's hue channels read the hue coordinates (each its own); every other
    layer's hue channels read nothing, and their shape/continuous channels still read their coordinate."""
    mod = training_script()
    mod.HUE_CODE, mod.CODE_PROJECTION = "palette", "identity"
    k, h = mod.code_dims(), mod.hue_code_dims()
    cfg = tiny_config(mod, w_dim=64)
    params = mod.G.init_params(jax.random.PRNGKey(0), cfg)
    masks = mod.affine_masks_for(params, "b16/conv1")
    assert len(masks) == len(mod.affine_layers(params))
    for (b, l), m in masks.items():
        m, eye = np.asarray(m), np.eye(k, 64)[:len(m)]  # the tiny layers have 8 channels: fewer than k
        if (b, l) == ("b16", "conv1"):
            np.testing.assert_array_equal(m[:k], eye)
        else:
            assert not m[:h].any()
            np.testing.assert_array_equal(m[h:k], eye[h:])
        assert not m[k:, :k].any() and m[k:, k:].all()
    with pytest.raises(SystemExit, match="--hue-layer"):
        mod.affine_masks_for(params, "b16/conv9")

# ---------------------------------------------------------------------------------------------
# The shipped generator
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    from styleclip_jax.loaders import load_generator

    G = load_generator("shapes")
    z = seeds_to_z(range(256), G.cfg.z_dim)
    imgs = np.asarray(G(jnp.asarray(z)))
    return G, z, imgs


def test_checkpoint_is_small_and_standard():
    assert ASSET.is_dir(), "the shapes generator checkpoint is missing"
    size = sum(p.stat().st_size for p in ASSET.rglob("*") if p.is_file())
    assert size <= 5 * 2**20, f"checkpoint is {size / 2**20:.2f} MiB"
    from styleclip_jax.checkpoints import read_json

    cfg = read_json(ASSET / "config.json")
    assert cfg["kind"] == "stylegan2_generator"
    assert cfg["img_resolution"] == 32 and cfg["conv_clamp"] is None and cfg["c_dim"] == 0
    assert cfg["z_dim"] >= D.MIN_Z_DIM
    assert (ASSET / "TRAINING.md").is_file()


def test_shipped_generator_samples(shipped):
    G, z, imgs = shipped
    assert isinstance(G, Generator)
    assert imgs.shape == (256, 32, 32, 3) and imgs.dtype == np.float32
    assert np.all(np.isfinite(imgs))
    # same numbers through the explicit mapping/synthesis path, and deterministic
    again = np.asarray(G.synthesis(G.mapping(jnp.asarray(z[:4]))))
    np.testing.assert_allclose(again, imgs[:4], atol=1e-5)


def test_samples_match_renders_of_their_attributes(shipped):
    """The samples are the renders of their z attributes: pixel colour, mask shape and hue follow the rule."""
    _, z, imgs = shipped
    ev = D.evaluate(imgs, z)
    assert ev["mae"] < MAX_MAE, ev
    assert ev["colour_acc"] >= MIN_COLOUR_ACC, ev
    assert ev["shape_acc"] >= MIN_SHAPE_ACC, ev
    # closer to the own render than to the same render with another shape
    a = D.z_to_attributes(z[:64])
    g64 = imgs[:64].astype(np.float64)
    own = np.mean(np.abs(g64 - R.render_attributes(a)))
    other = R.render_attributes(dict(a, shape=(a["shape"] + 1) % len(R.SHAPES)))
    assert own < np.mean(np.abs(g64 - other))


@pytest.fixture(scope="module")
def judged(shipped):
    """(pixel colour, mask shape, CLIP colour, CLIP shape) indices for the 256 shipped samples."""
    from styleclip_jax.models.clip import load_clip
    from styleclip_jax.shapes import metrics as M
    _, _, imgs = shipped
    clip = load_clip("shapes")
    return (M.dominant_colour_index(imgs), M.shape_of(imgs), M.zero_shot_predict(clip, imgs, "colour"),
            M.zero_shot_predict(clip, imgs, "shape"))


def test_every_colour_and_every_shape_appear(judged):
    pix, mask, _, _ = judged
    assert set(pix.tolist()) >= set(range(len(R.COLOURS)))
    assert set(mask.tolist()) >= set(range(len(R.SHAPES)))


def test_clip_reads_colour_and_shape_of_generator_samples(judged):
    """Issue #15: zero-shot colour >= 95 % and shape >= 85 % on generator samples against the pixel and mask
    metrics (measured 97.3 % and 90.2 %; the misses are hues near a boundary between two palette colours)."""
    pix, mask, colour, shape = judged
    assert np.mean(colour == pix) >= 0.95, f"CLIP and pixel colour agree on {np.mean(colour == pix):.1%}"
    assert np.mean(shape == mask) >= 0.85, f"CLIP and mask shape agree on {np.mean(shape == mask):.1%}"


def test_truncation_gives_centred_mid_sized_shapes(shipped):
    G, z, _ = shipped
    imgs = np.asarray(G(jnp.asarray(z[:16]), truncation_psi=0.0))
    # psi = 0: every latent maps to w_avg, so all images are the same picture
    assert np.max(np.abs(imgs - imgs[:1])) < 1e-4
    assert np.all(np.isfinite(imgs)) and np.abs(imgs).max() < 2.0
