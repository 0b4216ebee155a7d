"""Fast ops equal their slow, obvious references."""
import numpy as np
import jax.numpy as jnp
import pytest

from styleclip_jax.models import ops


def _bf16(a):
    return np.asarray(jnp.asarray(a, jnp.float32).astype(jnp.bfloat16).astype(jnp.float32))


@pytest.mark.parametrize("up,down,padding", [(1, 1, 0), (2, 1, (2, 1, 2, 1)), (1, 2, 1), (2, 2, (1, 2, 0, 3)),
                                             (1, 1, (-1, 2, 1, -2))])
def test_upfirdn2d_matches_reference(up, down, padding):
    x = np.random.RandomState(0).randn(2, 5, 6, 3).astype(np.float32)
    f = ops.setup_filter([1, 2, 5, 3])  # asymmetric 2-D kernel catches missing flips
    f = f * np.arange(1, 17).reshape(4, 4) / 8
    got = ops.upfirdn2d(jnp.asarray(x), f, up=up, down=down, padding=padding, gain=1.7)
    want = ops.upfirdn2d_ref(x, f, up=up, down=down, padding=padding, gain=1.7)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("up,down,padding", [(1, 1, 0), (2, 1, (2, 1, 2, 1)), (1, 2, 1), (2, 2, (1, 2, 0, 3)),
                                             (1, 1, (-1, 2, 1, -2))])
def test_upfirdn2d_separable_path_matches_reference(up, down, padding):
    """Rank-1 filters (all official ones) take the two-pass path; it equals the reference too."""
    x = np.random.RandomState(0).randn(2, 5, 6, 3).astype(np.float32)
    f = np.outer([1.0, 2.0, 5.0, 3.0], [2.0, 1.0, 4.0, 1.0]) / 30.0  # asymmetric both ways: catches flips
    assert ops.separable_taps(f[::-1, ::-1]) is not None
    got = ops.upfirdn2d(jnp.asarray(x), f, up=up, down=down, padding=padding, gain=1.7)
    want = ops.upfirdn2d_ref(x, f, up=up, down=down, padding=padding, gain=1.7)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_separable_taps_rejects_rank_two_filters():
    f = ops.setup_filter([1, 2, 5, 3]) * np.arange(1, 17).reshape(4, 4)
    assert ops.separable_taps(f) is None
    kv, kh = ops.separable_taps(ops.DEFAULT_FILTER)
    np.testing.assert_allclose(np.outer(kv, kh), ops.DEFAULT_FILTER, rtol=1e-12)


def test_upsample2d_doubles_and_preserves_constant():
    x = jnp.ones((1, 4, 4, 2))
    y = ops.upsample2d(x)
    assert y.shape == (1, 8, 8, 2)
    # gain 4 with zero insertion keeps a constant image constant away from the borders
    np.testing.assert_allclose(y[0, 2:-2, 2:-2], 1.0, atol=1e-6)


@pytest.mark.parametrize("act,clamp", [("linear", None), ("lrelu", None), ("lrelu", 0.5)])
def test_bias_act_matches_reference(act, clamp):
    rs = np.random.RandomState(1)
    x, b = rs.randn(2, 3, 3, 4).astype(np.float32), rs.randn(4).astype(np.float32)
    np.testing.assert_allclose(ops.bias_act(jnp.asarray(x), jnp.asarray(b), act=act, clamp=clamp),
                               ops.bias_act_ref(x, b, act=act, clamp=clamp), atol=1e-6)


def _conv_transpose_ref(x, w):
    """torch conv_transpose2d(x, w.transpose(0,1), stride=2) by scattering every input pixel."""
    n, h, wd, ci = x.shape
    co, _, kh, kw = w.shape
    out = np.zeros((n, 2 * (h - 1) + kh, 2 * (wd - 1) + kw, co))
    for i in range(h):
        for j in range(wd):
            out[:, 2 * i:2 * i + kh, 2 * j:2 * j + kw, :] += np.einsum("nc,ocab->nabo",
                                                                       x[:, i, j], w)
    return out


@pytest.mark.parametrize("fn", [ops.conv_transpose2d_stride2, ops.conv_transpose2d_stride2_phases])
@pytest.mark.parametrize("k", [(3, 3), (1, 1), (2, 3), (4, 1)])
def test_conv_transpose_matches_scatter_definition(fn, k):
    rs = np.random.RandomState(2)
    x, w = rs.randn(2, 3, 4, 5).astype(np.float32), rs.randn(6, 5, *k).astype(np.float32)
    got = fn(jnp.asarray(x), jnp.asarray(w))
    want = _conv_transpose_ref(x, w)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("fn", [ops.conv_transpose2d_stride2, ops.conv_transpose2d_stride2_phases])
def test_conv_transpose_bfloat16_inputs_give_float32_accumulated_result(fn):
    rs = np.random.RandomState(6)
    x, w = rs.randn(2, 3, 4, 64).astype(np.float32), rs.randn(6, 64, 3, 3).astype(np.float32)
    got = fn(jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, _conv_transpose_ref(_bf16(x), _bf16(w)), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("up,demod,k", [(1, True, 3), (2, True, 3), (1, False, 1)])
def test_modulated_conv_fast_equals_per_sample_reference(up, demod, k):
    rs = np.random.RandomState(3)
    x = jnp.asarray(rs.randn(3, 4, 4, 6).astype(np.float32))
    w = jnp.asarray(rs.randn(5, 6, k, k).astype(np.float32))
    s = jnp.asarray(1 + 0.3 * rs.randn(3, 6).astype(np.float32))
    noise = jnp.asarray(rs.randn(1, 4 * up, 4 * up, 1).astype(np.float32))
    pad = k // 2
    a = ops.modulated_conv2d(x, w, s, noise=noise, up=up, padding=pad, demodulate=demod)
    b = ops.modulated_conv2d_ref(x, w, s, noise=noise, up=up, padding=pad, demodulate=demod)
    assert a.shape == (3, 4 * up, 4 * up, 5)
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("up,demod,k", [(1, True, 3), (2, True, 3), (1, False, 1)])
def test_modulated_conv_bfloat16_rounds_conv_inputs_and_accumulates_in_float32(up, demod, k):
    """compute_dtype=bfloat16 equals the float32 reference conv of the bf16-rounded style-scaled activations
    and weight, with the float32 demodulation of the unrounded weight; and it is not the float32 result."""
    rs = np.random.RandomState(5)
    x = rs.randn(3, 4, 4, 64).astype(np.float32)
    w = rs.randn(8, 64, k, k).astype(np.float32)
    s = (1 + 0.3 * rs.randn(3, 64)).astype(np.float32)
    noise = rs.randn(1, 4 * up, 4 * up, 1).astype(np.float32)
    pad = k // 2
    got = ops.modulated_conv2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(s), noise=jnp.asarray(noise), up=up,
                               padding=pad, demodulate=demod, compute_dtype=jnp.bfloat16)
    assert got.dtype == jnp.float32
    want = np.asarray(ops.modulated_conv2d_ref(jnp.asarray(_bf16(x * s[:, None, None, :])), jnp.asarray(_bf16(w)),
                                               jnp.ones((3, 64)), up=up, padding=pad, demodulate=False))
    if demod:
        want = want * np.asarray(ops.demod_coefficients(jnp.asarray(w), jnp.asarray(s)))[:, None, None, :]
    want = want + noise
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    full = ops.modulated_conv2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(s), noise=jnp.asarray(noise), up=up,
                                padding=pad, demodulate=demod)
    assert np.max(np.abs(np.asarray(full) - np.asarray(got))) > 1e-3


def test_demodulation_normalises_output_weights():
    rs = np.random.RandomState(4)
    w = jnp.asarray(rs.randn(5, 6, 3, 3).astype(np.float32))
    s = jnp.asarray(rs.randn(2, 6).astype(np.float32))
    d = ops.demod_coefficients(w, s)
    wm = w[None] * s[:, None, :, None, None] * d[:, :, None, None, None]
    np.testing.assert_allclose(jnp.sum(wm ** 2, axis=(2, 3, 4)), 1.0, atol=1e-5)
