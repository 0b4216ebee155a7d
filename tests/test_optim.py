"""optim.py vs the official get_lr values and the official 12-step Ranger trace."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from styleclip_jax.editing import optim


@pytest.fixture(scope="module")
def training(fixtures_dir):
    return dict(np.load(fixtures_dir / "training" / "expected.npz"))


def test_lr_schedule_float64_numpy(training):
    steps = int(training["lr_schedule_steps"])
    lr0 = float(training["lr_schedule_initial_lr"])
    got = optim.get_lr(np.arange(steps, dtype=np.float64) / steps, lr0)
    np.testing.assert_allclose(got, training["lr_schedule"], rtol=0, atol=1e-9)


def test_lr_schedule_optax_jnp(training):
    sched = optim.styleclip_lr_schedule(initial_lr=0.1, steps=300)
    got = np.asarray(jax.jit(jax.vmap(sched))(jnp.arange(300)))
    np.testing.assert_allclose(got, training["lr_schedule"], rtol=0, atol=1e-7)
    assert float(sched(0)) == 0.0
    # flat part, and strictly inside the ramps
    assert float(sched(100)) == pytest.approx(0.1, abs=1e-7)
    assert 0 < float(sched(7)) < 0.1 and 0 < float(sched(290)) < 0.1


def test_n_sma(training):
    n = optim.radam_n_sma(np.arange(1, 13, dtype=np.float64), 0.999)
    np.testing.assert_allclose(n, training["ranger_N_sma"], rtol=0, atol=1e-9)
    assert list(n > 5) == [False] * 5 + [True] * 7


def _run(opt, w0, b0, gw, gb):
    lp = optim.init_params({"W": jnp.asarray(w0), "b": jnp.asarray(b0)})
    state = opt.init(lp)
    step = jax.jit(lambda g, s, p: optim.ranger_step(opt, g, s, p))
    ws, bs = [], []
    for k in range(gw.shape[0]):
        lp, state = step({"W": jnp.asarray(gw[k]), "b": jnp.asarray(gb[k])}, state, lp)
        fast = optim.fast_params(lp)
        ws.append(np.asarray(fast["W"]))
        bs.append(np.asarray(fast["b"]))
    return np.stack(ws), np.stack(bs), lp


def test_ranger_matches_official_trace(training):
    t = training
    opt = optim.ranger(learning_rate=float(t["ranger_lr"]))
    ws, bs, lp = _run(opt, t["ranger_W0"], t["ranger_b0"], t["ranger_grad_W"], t["ranger_grad_b"])
    np.testing.assert_allclose(ws, t["ranger_W"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(bs, t["ranger_b"], rtol=0, atol=1e-6)
    # after 12 steps (a sync step) slow and fast weights coincide
    np.testing.assert_allclose(np.asarray(optim.slow_params(lp)["W"]), ws[-1], atol=1e-6)


def test_ranger_gc_axes_flax_layout(training):
    """The same maths on transposed (Flax-layout) weights with gc_axes='flax'."""
    t = training
    opt = optim.ranger(learning_rate=0.5, gc_axes="flax")
    ws, _, _ = _run(opt, t["ranger_W0"].T, t["ranger_b0"], t["ranger_grad_W"].transpose(0, 2, 1),
                    t["ranger_grad_b"])
    np.testing.assert_allclose(ws.transpose(0, 2, 1), t["ranger_W"], rtol=0, atol=1e-6)


def test_ranger_variants_are_distinguished(training):
    """Without GC, or with optax.radam's eps placement, the trace does not match."""
    t = training
    ws, _, _ = _run(optim.ranger(0.5, use_gc=False), t["ranger_W0"], t["ranger_b0"],
                    t["ranger_grad_W"], t["ranger_grad_b"])
    assert np.abs(ws - t["ranger_W"]).max() > 1e-2
    import optax

    alt = optax.lookahead(optax.chain(optim.centralize_gradients(), optax.scale_by_radam(0.95, 0.999, 1e-5),
                                      optax.scale_by_learning_rate(0.5)), 6, 0.5)
    ws, _, _ = _run(alt, t["ranger_W0"], t["ranger_b0"], t["ranger_grad_W"], t["ranger_grad_b"])
    np.testing.assert_allclose(ws[:5], t["ranger_W"][:5], atol=1e-6)  # un-rectified steps agree
    assert np.abs(ws[5:] - t["ranger_W"][5:]).max() > 1e-5
