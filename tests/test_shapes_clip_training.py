"""scripts/train_shapes_clip.py's --spread term (issue #15): it must measure how many dimensions a batch of
embeddings spans, as D / PR - 1 with PR the participation ratio of the batch covariance's eigenvalues."""
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
