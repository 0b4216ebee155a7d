"""Low-level StyleGAN2 ops in JAX: FIR resampling, bias + activation, modulated convolution.

Every op comes as a fast version (used by the generator) and a slow, obvious reference
(`*_ref`) written directly from the definition; `tests/test_ops.py` checks that they agree.

Conventions: activations are NHWC float32; conv weights are in the official PyTorch layout
(out_channels, in_channels, kh, kw) so that converted checkpoints need no transposes at rest.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def l2_normalize(x, axis: int = -1):
    """``x / ||x||_2`` along ``axis``, with no epsilon, as the official CLIP, StyleCLIP and ArcFace code."""
    return x / jnp.linalg.norm(x, axis=axis, keepdims=True)

SQRT2 = math.sqrt(2.0)


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> np.ndarray:
    """Separable FIR filter as a normalised 2-D kernel (sum 1): outer(t, t) / sum(t)^2."""
    t = np.asarray(taps, dtype=np.float64)
    f = np.outer(t, t)
    return (f / f.sum()).astype(np.float32)


DEFAULT_FILTER = setup_filter()


# --------------------------------------------------------------------------------------------
# upfirdn2d: upsample (zero insertion), pad, FIR filter (true convolution), downsample.
# --------------------------------------------------------------------------------------------
def _parse_padding(padding):
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    return tuple(padding)  # (x0, x1, y0, y1), NVlabs order


def upfirdn2d(x: jnp.ndarray, f: np.ndarray, up: int = 1, down: int = 1, padding=0,
              gain: float = 1.0) -> jnp.ndarray:
    """Upsample by zero insertion, pad, convolve with the 2-D FIR `f`, then keep every `down`-th pixel.

    Args:
      x: (N, H, W, C).
      f: (fh, fw) filter; it is convolved (flipped), as in the official `flip_filter=False`.
      padding: int, (px, py) or (x0, x1, y0, y1); negative values crop.
      gain: overall gain; the filter is scaled by `gain` (2-D case of the official gain**(ndim/2)).
    Returns:
      (N, H', W', C) with H' = (H*up + y0 + y1 - fh) // down + 1.
    """
    x0, x1, y0, y1 = _parse_padding(padding)
    n, h, w, c = x.shape
    if up > 1:  # zero insertion: put each pixel at the top-left of an up x up cell
        x = x.reshape(n, h, 1, w, 1, c)
        x = jnp.pad(x, ((0, 0), (0, 0), (0, up - 1), (0, 0), (0, up - 1), (0, 0)))
        x = x.reshape(n, h * up, w * up, c)
    x = jnp.pad(x, ((0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0)), (0, 0)))
    x = x[:, max(-y0, 0): x.shape[1] - max(-y1, 0), max(-x0, 0): x.shape[2] - max(-x1, 0), :]
    k = np.asarray(f, np.float64)[::-1, ::-1] * gain
    fh, fw = k.shape
    sep = separable_taps(k)
    if sep is not None:
        # rank-1 filter (every official one): two 1-D passes of shifted multiply-adds, which XLA fuses
        # into elementwise loops; a depthwise conv spent 55 % of the 256-px synthesis time on CPU here
        kv, kh = sep
        ho, wo = x.shape[1] - fh + 1, x.shape[2] - fw + 1
        y = sum(float(kv[i]) * x[:, i:i + ho] for i in range(fh) if kv[i] != 0)
        y = sum(float(kh[j]) * y[:, :, j:j + wo] for j in range(fw) if kh[j] != 0)
        return y[:, ::down, ::down] if down > 1 else y
    kernel = jnp.broadcast_to(jnp.asarray(k, x.dtype)[:, :, None, None], (fh, fw, 1, c))
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=(down, down), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)
    return y


def separable_taps(k: np.ndarray):
    """(kv, kh) with outer(kv, kh) == k exactly (to 1e-12 relative) for a rank-1 2-D filter, else None."""
    k = np.asarray(k, np.float64)
    if k.ndim != 2 or not np.any(k):
        return None
    i0, j0 = np.unravel_index(np.argmax(np.abs(k)), k.shape)
    kv, kh = k[:, j0], k[i0, :] / k[i0, j0]
    if not np.allclose(np.outer(kv, kh), k, rtol=1e-12, atol=1e-12 * np.abs(k).max()):
        return None
    return kv, kh


def upfirdn2d_ref(x, f, up=1, down=1, padding=0, gain=1.0) -> np.ndarray:
    """Slow numpy reference of `upfirdn2d`, straight from the definition (float64 loops)."""
    x0, x1, y0, y1 = _parse_padding(padding)
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    z = np.zeros((n, h * up, w * up, c))
    z[:, ::up, ::up, :] = x
    big = np.zeros((n, h * up + max(y0, 0) + max(y1, 0), w * up + max(x0, 0) + max(x1, 0), c))
    big[:, max(y0, 0): max(y0, 0) + h * up, max(x0, 0): max(x0, 0) + w * up] = z
    big = big[:, max(-y0, 0): big.shape[1] - max(-y1, 0), max(-x0, 0): big.shape[2] - max(-x1, 0)]
    f = np.asarray(f, np.float64) * gain
    fh, fw = f.shape
    oh, ow = big.shape[1] - fh + 1, big.shape[2] - fw + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            acc = 0.0
            for a in range(fh):
                for b in range(fw):  # true convolution: filter index runs backwards
                    acc = acc + big[:, i + a, j + b, :] * f[fh - 1 - a, fw - 1 - b]
            out[:, i, j, :] = acc
    return out[:, ::down, ::down, :]


def upsample2d(x, f=DEFAULT_FILTER, up=2):
    """Official `upfirdn2d.upsample2d`: (N, H, W, C) -> (N, 2H, 2W, C) with gain up**2."""
    fh = f.shape[0]
    p0 = (fh + up - 1) // 2
    p1 = (fh - up) // 2
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


# --------------------------------------------------------------------------------------------
# bias_act
# --------------------------------------------------------------------------------------------
def bias_act(x, b=None, act: str = "linear", alpha: float = 0.2, gain: Optional[float] = None,
             clamp: Optional[float] = None):
    """x + b (over the last axis), activation, times gain, then clamp to [-clamp, clamp].

    act: "linear" (default gain 1) or "lrelu" (slope `alpha`, default gain sqrt(2)).
    """
    if b is not None:
        x = x + b.astype(x.dtype)
    if act == "lrelu":
        x = jnp.where(x >= 0, x, x * alpha)
        default_gain = SQRT2
    elif act == "linear":
        default_gain = 1.0
    else:
        raise ValueError(f"bias_act: unsupported activation {act!r}; expected 'linear' or 'lrelu'")
    g = default_gain if gain is None else gain
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = jnp.clip(x, -clamp, clamp)
    return x


def bias_act_ref(x, b=None, act="linear", alpha=0.2, gain=None, clamp=None):
    """numpy reference of `bias_act`."""
    x = np.asarray(x, np.float64)
    if b is not None:
        x = x + np.asarray(b, np.float64)
    if act == "lrelu":
        x = np.maximum(x, 0) + alpha * np.minimum(x, 0)
        g = SQRT2 if gain is None else gain
    else:
        g = 1.0 if gain is None else gain
    x = x * g
    if clamp is not None and clamp >= 0:
        x = np.clip(x, -clamp, clamp)
    return x


# --------------------------------------------------------------------------------------------
# Modulated convolution
# --------------------------------------------------------------------------------------------
def _hwio(weight):
    return jnp.transpose(weight, (2, 3, 1, 0))


def _out_type(x):
    """Convolutions of bfloat16 inputs return float32 (float32 accumulation); others keep the input dtype."""
    return jnp.float32 if x.dtype == jnp.bfloat16 else None


def conv2d(x, weight, padding: int = 0):
    """PyTorch `F.conv2d` (cross-correlation) on NHWC with an (O, I, kh, kw) weight, computed in x's dtype
    (bfloat16 inputs give a float32 result)."""
    return jax.lax.conv_general_dilated(
        x, _hwio(weight).astype(x.dtype), (1, 1), [(padding, padding)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=_out_type(x))


def conv_transpose2d_stride2(x, weight):
    """PyTorch `F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=0)` on NHWC.

    `weight` is (O, I, kh, kw) (the layer's own layout); the official up-sampling conv swaps
    in/out and does not flip, which as a dilated correlation means flipping the taps here.
    (N, H, W, I) -> (N, 2H + kh - 2, 2W + kw - 2, O).
    """
    kh, kw = weight.shape[2:]
    k = _hwio(weight[:, :, ::-1, ::-1]).astype(x.dtype)
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), [(kh - 1, kh - 1), (kw - 1, kw - 1)], lhs_dilation=(2, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=_out_type(x))


def _phase_taps(k: int, a: int):
    """For output parity `a` of the dilated correlation in `conv_transpose2d_stride2`: (first tap, input
    offset). Output 2p + a sums taps t = t0, t0 + 2, ... against inputs p + c, p + c + 1, ..."""
    pad = k - 1
    t0 = (pad - a) % 2
    return t0, (a + t0 - pad) // 2


def conv_transpose2d_stride2_phases(x, weight):
    """`conv_transpose2d_stride2` computed as four small convolutions on the undilated input, one per output
    parity (sub-pixel form), interleaved: no multiply-adds with inserted zeros (a quarter of the
    dilated form's work). Same shapes and result up to float rounding. (N, H, W, I) -> (N, 2H+kh-2, 2W+kw-2, O).
    """
    n, h, w, _ = x.shape
    kh, kw = weight.shape[2:]
    k = _hwio(weight[:, :, ::-1, ::-1]).astype(x.dtype)  # the taps of the dilated correlation
    oh, ow = 2 * h + kh - 2, 2 * w + kw - 2
    out_dtype = _out_type(x) or x.dtype
    rows = []
    for a in (0, 1):
        t0h, ch = _phase_taps(kh, a)
        nh = (oh - a + 1) // 2
        cols = []
        for b in (0, 1):
            t0w, cw = _phase_taps(kw, b)
            nw = (ow - b + 1) // 2
            sub = k[t0h::2, t0w::2]
            th, tw = sub.shape[:2]
            # correlation output p reads x[p + c ... p + c + taps - 1]: pad so that p runs over 0..n-1
            ph = (-ch, nh + ch + th - 1 - h)
            pw = (-cw, nw + cw + tw - 1 - w)
            if th == 0 or tw == 0:  # 1-tap axis: this parity only ever meets inserted zeros
                y = jnp.zeros((n, nh, nw, k.shape[3]), out_dtype)
            else:
                y = jax.lax.conv_general_dilated(x, sub, (1, 1), [ph, pw],
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                 preferred_element_type=_out_type(x))
            cols.append(jnp.pad(y, ((0, 0), (0, 0), (0, (ow + 1) // 2 - nw), (0, 0))))
        y = jnp.stack(cols, axis=3).reshape(n, nh, 2 * ((ow + 1) // 2), -1)[:, :, :ow]
        rows.append(jnp.pad(y, ((0, 0), (0, (oh + 1) // 2 - nh), (0, 0), (0, 0))))
    y = jnp.stack(rows, axis=2).reshape(n, 2 * ((oh + 1) // 2), ow, -1)
    return y[:, :oh]


def _conv_resample(x, weight, up: int, padding: int, f=DEFAULT_FILTER):
    """The official conv2d_resample for up in {1, 2} with a 3x3 or 1x1 kernel (no down)."""
    if up == 1:
        return conv2d(x, weight, padding=padding)
    if up != 2:
        raise ValueError(f"up={up} is not supported (expected 1 or 2)")
    x = transposed_conv_for_backend()(x, weight)
    return upfirdn2d(x, f, padding=up_fir_padding(weight.shape[2], f.shape[0], padding, up), gain=up * up)


def up_fir_padding(kh: int, fh: int, padding: int, up: int = 2):
    """(x0, x1, y0, y1) padding of the FIR after the unpadded transposed conv of conv2d_resample (up=2,
    down=1): the FIR takes the padding the conv did not."""
    p0 = padding + (fh + up - 1) // 2 - (kh - 1)
    p1 = padding + (fh - up) // 2 - (kh - up)
    return (p0, p1, p0, p1)


def transposed_conv_for_backend():
    """The stride-2 transposed conv form to use: the sub-pixel form on CPU (whole 256-px synthesis at
    batch 4: 5.02 -> 6.26 images/s on the 2-core CPU, README "Benchmarks"), the dilated form elsewhere (GPUs run it as one cuDNN data-gradient conv;
    the sub-pixel form is not yet timed there: benchmarks/ops.py times both)."""
    return conv_transpose2d_stride2_phases if jax.default_backend() == "cpu" else conv_transpose2d_stride2


def demod_coefficients(weight, styles, eps: float = 1e-8):
    """rsqrt(sum_{i,kh,kw} (weight[o,i] * styles[n,i])^2 + eps): (N, O) from (O,I,kh,kw), (N,I)."""
    wsq = jnp.sum(jnp.square(weight), axis=(2, 3))  # (O, I)
    return jax.lax.rsqrt(jnp.square(styles) @ wsq.T + eps)


def modulated_conv2d(x, weight, styles, noise=None, up: int = 1, padding: int = 0,
                     demodulate: bool = True, compute_dtype=None):
    """Modulated (and demodulated) convolution, fast form: scale activations, not weights.

    Args:
      x: (N, H, W, I) activations.
      weight: (O, I, kh, kw) raw conv weight (no weight gain; demodulation cancels it).
      styles: (N, I) per-sample input-channel scales (the StyleSpace vector of this layer).
      noise: None or an array broadcastable to the output (N, H', W', O), added after
        demodulation.
      up: 1 or 2 (transposed conv + [1,3,3,1] FIR, the official up-sampling conv).
      compute_dtype: None (the input dtype) or jnp.bfloat16: the convolution takes the style-scaled
        activations and the weight rounded to bfloat16 and accumulates in float32 (float32 result; the
        FIR, demodulation and noise stay float32). What `modconv_for("bfloat16")` selects.
    Returns:
      (N, H*up, W*up, O).
    Mathematically equal to `modulated_conv2d_ref`; the difference is float rounding only.
    """
    dtype = x.dtype
    x = x * styles[:, None, None, :].astype(x.dtype)
    w = weight
    if compute_dtype is not None:
        x, w = x.astype(compute_dtype), weight.astype(compute_dtype)
    x = _conv_resample(x, w, up=up, padding=padding).astype(dtype)
    if demodulate:
        x = x * demod_coefficients(weight, styles)[:, None, None, :].astype(x.dtype)
    if noise is not None:
        x = x + noise.astype(x.dtype)
    return x


PRECISIONS = ("float32", "bfloat16")


def modconv_for(precision: str = "float32"):
    """The modulated conv for a compute precision: "float32" (`modulated_conv2d`), or "bfloat16" (conv inputs
    rounded to bfloat16, float32 accumulation and result; everything around the conv stays float32). Pass it
    as `modconv=` to the synthesis functions."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {PRECISIONS}")
    if precision == "bfloat16":
        return functools.partial(modulated_conv2d, compute_dtype=jnp.bfloat16)
    return modulated_conv2d


def modulated_conv2d_ref(x, weight, styles, noise=None, up: int = 1, padding: int = 0,
                         demodulate: bool = True):
    """Reference modulated conv: build each sample's modulated weight and convolve per sample.

    This is the official "fused" formulation (one weight per sample) written as a loop.
    """
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n][None, :, None, None]
        if demodulate:
            w = w * jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3), keepdims=True) + 1e-8)
        outs.append(_conv_resample(x[n:n + 1], w, up=up, padding=padding))
    y = jnp.concatenate(outs, axis=0)
    if noise is not None:
        y = y + noise
    return y
