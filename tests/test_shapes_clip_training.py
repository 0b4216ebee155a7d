"""scripts/train_shapes_clip.py's trial terms (issue #15): --spread must measure how many dimensions a batch of
embeddings spans, as D / PR - 1 with PR the participation ratio of the batch covariance's eigenvalues;
--soft-colour's targets must fall with the distance round the palette circle."""
import importlib.util
import pathlib

import jax.numpy as jnp
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def clip_training_script():
    spec = importlib.util.spec_from_file_location("train_shapes_clip", REPO / "scripts" / "train_shapes_clip.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_spread_penalty_is_dimension_over_participation_ratio_minus_one():
    mod = clip_training_script()
    rng = np.random.default_rng(0)
    d = 16
    e = rng.standard_normal((512, d)) * np.geomspace(1.0, 0.01, d)  # anisotropic batch
    c = e - e.mean(0)
    lam = np.linalg.eigvalsh(c.T @ c / len(e))
    pr = lam.sum() ** 2 / np.sum(lam ** 2)
    np.testing.assert_allclose(float(mod.spread_penalty(jnp.asarray(e, jnp.float32))), d / pr - 1.0, rtol=1e-4)
    line = np.outer(rng.standard_normal(64), rng.standard_normal(d))  # a batch on one line: PR = 1
    np.testing.assert_allclose(float(mod.spread_penalty(jnp.asarray(line, jnp.float32))), d - 1.0, rtol=1e-4)
    iso = rng.standard_normal((20000, d))  # isotropic: PR -> D
    assert float(mod.spread_penalty(jnp.asarray(iso, jnp.float32))) < 0.01


def test_soft_colour_targets_fall_with_distance_round_the_palette_circle():
    """--soft-colour: at a palette hue the target peaks on its colour, the two neighbours round the circle get
    equal weight, and the weight falls with every further step (so the opposite colour gets the least); a hue
    half-way between neighbours splits evenly between them; rows sum to 1; a tail keeps the fall with a narrow
    peak."""
    from styleclip_jax.shapes import render as R

    mod = clip_training_script()
    t = mod.soft_colour_targets(R.COLOUR_HUES, 60.0)
    np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
    order = list(np.argsort(R.COLOUR_HUES))  # round the circle
    for k in range(len(R.COLOURS)):
        pos = order.index(k)
        by_step = [t[k, order[(pos + s) % 6]] for s in range(4)]  # own, next, 2 on, opposite
        assert by_step[0] > by_step[1] > by_step[2] > by_step[3], (R.COLOURS[k], by_step)
        np.testing.assert_allclose(t[k, order[(pos + 1) % 6]], t[k, order[(pos - 1) % 6]], rtol=1e-5)
        np.testing.assert_allclose(t[k, order[(pos + 2) % 6]], t[k, order[(pos - 2) % 6]], rtol=1e-5)
    red, orange = R.COLOURS.index("red"), R.COLOURS.index("orange")
    mid = R.hue_from_uniform(np.array([30.0]))  # half-way from red (angle 0) to orange (angle 60)
    m = mod.soft_colour_targets(mid, 60.0)[0]
    np.testing.assert_allclose(m[red], m[orange], rtol=1e-5)
    assert set(np.argsort(-m)[:2]) == {red, orange}
    # a narrow peak plus a tail (the shipped --soft-colour 20 0.2 50): a 5x wider gap to the neighbours than sigma 60
    # gives, still a fall with every further step, and far from the colour a steeper fall (a slope for latent
    # optimisation to climb) than the 90-degree default tail gives
    t2 = mod.soft_colour_targets(R.COLOUR_HUES, 20.0, 0.2, 50.0)
    t3 = mod.soft_colour_targets(R.COLOUR_HUES, 20.0, 0.1)
    for k in range(len(R.COLOURS)):
        pos = order.index(k)
        by_step = [t2[k, order[(pos + s) % 6]] for s in range(4)]
        assert by_step[0] > by_step[1] > by_step[2] > by_step[3], (R.COLOURS[k], by_step)
        assert by_step[0] / by_step[1] > 5 * t[k, k] / t[k, order[(pos + 1) % 6]]
        assert by_step[2] / by_step[3] > 5 * t3[k, order[(pos + 2) % 6]] / t3[k, order[(pos + 3) % 6]]
