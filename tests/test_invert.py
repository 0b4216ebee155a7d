"""Inversion refinement (editing/invert.py): the loss falls, and a batch equals its images one at a time."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from styleclip_jax.editing import invert
from styleclip_jax.errors import ConfigError, InputError
from tiny_models import tiny_generator


@pytest.fixture(scope="module")
def problem():
    G = tiny_generator()
    z = jax.random.normal(jax.random.PRNGKey(3), (3, G.cfg.z_dim))
    w_true = G.mapping(z)
    # targets at twice the generator's resolution: refine resizes them
    targets = jax.image.resize(G.synthesis(w_true), (3, 32, 32, 3), "linear")
    return G, w_true, np.asarray(targets)


def test_refine_lowers_the_pixel_error_from_the_mean_w(problem):
    G, w_true, targets = problem
    w, m = invert.refine(G, None, targets, steps=40, lr=0.05)
    assert w.shape == w_true.shape
    assert np.all(m["mse_after"] < 0.5 * m["mse_before"]), (m["mse_before"], m["mse_after"])
    assert np.all(m["loss_last"] < m["loss_first"])
    # the reported error is the error of the returned latents
    rendered = G.synthesis(w)
    want = np.mean(np.square(np.asarray(rendered) - np.asarray(invert.resize_targets(targets, 16))), axis=(1, 2, 3))
    np.testing.assert_allclose(m["mse_after"], want, rtol=1e-4)


def test_batched_equals_one_at_a_time(problem):
    G, w_true, targets = problem
    w0 = w_true + 0.3 * jax.random.normal(jax.random.PRNGKey(9), w_true.shape)
    wb, mb = invert.refine(G, w0, targets, steps=15, lr=0.02, l2_lambda=0.01)
    for i in (0, 2):
        wi, mi = invert.refine(G, w0[i:i + 1], targets[i:i + 1], steps=15, lr=0.02, l2_lambda=0.01)
        np.testing.assert_allclose(np.asarray(wi)[0], np.asarray(wb)[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(mi["mse_after"][0], mb["mse_after"][i], rtol=1e-4)
        assert mi["mse_after"][0] < mi["mse_before"][0]


def test_chunked_loop_equals_one_scan_and_reports_progress(problem, capsys):
    """refine drives 2-step chunks from Python on CPU (a rolled scan is 2.6x slower per step there): 5 steps as
    chunks 2 + 2 + 1 equal one 5-step rolled scan (latents and loss history), with a progress line every
    ``report_every`` steps."""
    G, w_true, targets = problem
    w0 = w_true + 0.3 * jax.random.normal(jax.random.PRNGKey(4), w_true.shape)
    w, m = invert.refine(G, w0, targets, steps=5, lr=0.02, l2_lambda=0.01, report_every=2)
    lines = [l for l in capsys.readouterr().out.splitlines() if "refine step" in l]
    assert [l.split()[2] for l in lines] == ["1/5", "3/5", "5/5"], lines
    cfg = invert.RefineConfig(steps=5)
    hyper = {"lr": jnp.float32(0.02), "l2_lambda": jnp.float32(0.01), "id_lambda": jnp.float32(0.0)}
    t = invert.resize_targets(jnp.asarray(targets), G.resolution)
    import optax
    w_scan, _, hist = invert._refine_chunk(G, None, jnp.copy(w0), optax.adam(1.0).init(w0), w0, {}, t, hyper, cfg, 5, 1)
    np.testing.assert_allclose(np.asarray(w), np.asarray(w_scan), atol=1e-5)
    np.testing.assert_allclose(m["loss_first"], np.asarray(hist)[0], rtol=1e-5)
    np.testing.assert_allclose(m["loss_last"], np.asarray(hist)[-1], rtol=1e-5)


def test_s_space_l1_images_are_independent(problem):
    """StyleSpace + L1: image 0's result does not change when the other images of the batch do."""
    G, w_true, targets = problem
    w0 = w_true + 0.3 * jax.random.normal(jax.random.PRNGKey(9), w_true.shape)
    s1, m1 = invert.refine(G, w0, targets, steps=15, lr=0.02, pixel_loss="l1", space="s")
    others = np.concatenate([targets[:1], targets[:0:-1] * 0.5], axis=0)
    s2, m2 = invert.refine(G, w0[::-1].at[0].set(w0[0]), others, steps=15, lr=0.02, pixel_loss="l1", space="s")
    assert list(s1) == [l.name for l in G.layout]
    for name in s1:
        np.testing.assert_allclose(np.asarray(s2[name])[0], np.asarray(s1[name])[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(s2[G.layout[0].name])[1:], np.asarray(s1[G.layout[0].name])[1:])
    assert np.all(m1["l1_after"] < m1["l1_before"])


def test_l2_pull_keeps_latents_near_the_start(problem):
    G, w_true, targets = problem
    w0 = jnp.asarray(w_true) + 0.5
    free, _ = invert.refine(G, w0, targets, steps=40, lr=0.05)
    pulled, _ = invert.refine(G, w0, targets, steps=40, lr=0.05, l2_lambda=10.0)
    assert np.sum(np.square(pulled - w0)) < 0.5 * np.sum(np.square(free - w0))


def test_refine_checks_inputs(problem):
    G, w_true, targets = problem
    with pytest.raises(InputError, match="w_plus has shape"):
        invert.refine(G, w_true[:2], targets, steps=1)
    with pytest.raises(ConfigError, match="id_lambda > 0 needs ArcFace"):
        invert.refine(G, w_true, targets, steps=1, id_lambda=0.1)
    with pytest.raises(ConfigError, match="pixel_loss"):
        invert.refine(G, w_true, targets, steps=1, pixel_loss="lpips")


def test_identity_loss_is_wired_in(problem, monkeypatch):
    """With an identity network (a cheap stand-in for ArcFace: normalised linear features), the identity term
    raises the reported similarity to the targets; only id_lambda weights it."""
    from styleclip_jax.models import arcface
    G, w_true, targets = problem

    def features(params, images, num_layers=50):
        f = jnp.dot(images.reshape(images.shape[0], -1), params["proj"])
        return f / jnp.linalg.norm(f, axis=-1, keepdims=True)
    monkeypatch.setattr(arcface, "features_fn", features)
    arc = arcface.ArcFace({"proj": jax.random.normal(jax.random.PRNGKey(4), (16 * 16 * 3, 8))}, 50)
    w0 = jnp.broadcast_to(G.mean_w(), w_true.shape)
    _, m = invert.refine(G, w0, targets, steps=20, lr=0.05, id_lambda=10.0, arc=arc)
    assert np.all(m["id_similarity_after"] > m["id_similarity_before"])
