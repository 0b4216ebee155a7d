"""Random-weight models of real sizes for the benchmarks (nothing is downloaded), and their analytic FLOPs."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import styleclip_jax as sc

GENERATORS = {
    "256": sc.GeneratorConfig(z_dim=512, w_dim=512, img_resolution=256, channel_base=16384, channel_max=512),
    "1024": sc.GeneratorConfig(z_dim=512, w_dim=512, img_resolution=1024, channel_base=32768, channel_max=512),
}
CLIP_VIT_B32_GFLOP = 4.4  # one 224-px image through the ViT-B/32 image tower (2 x multiply-adds)


def random_generator(name: str) -> sc.Generator:
    cfg = GENERATORS[name]
    return sc.Generator(sc.init_params(jax.random.PRNGKey(0), cfg), cfg)


def layer_macs(l) -> float:
    """Multiply-adds of one S layer's convolution for one image: 3x3 at its resolution, 1x1 for toRGB, and
    for an up-sampling conv (`SLayer.up`) the stride-2 transposed 3x3 conv, whose 9 taps
    touch each INPUT pixel once: a quarter of a same-size conv at the output resolution."""
    if l.is_torgb:
        return l.resolution ** 2 * l.in_channels * l.out_channels
    r_in = l.resolution // 2 if l.up else l.resolution
    return r_in ** 2 * l.in_channels * l.out_channels * 9


def synthesis_gflop(G, start: int = 0) -> float:
    """2 x multiply-adds of the convolutions from S layer `start` on, one image (see `layer_macs`).

    A lower bound on the work (FIR filters, noise and activations are left out); used where XLA's cost
    analysis does not see inside library calls (cuDNN convolutions on GPUs count as ~0)."""
    return 2 * sum(layer_macs(l) for l in G.layout[start:]) / 1e9


def vit_b32_clip(preprocess: str = "official", seed: int = 0) -> sc.CLIP:
    """A ViT-B/32-shaped native CLIP (``models/clip_net``, transformers' ``CLIPConfig()`` defaults) with random
    weights (normal, std 0.02; LayerNorm scales 1; zero biases; logit scale 100), filled on the host by
    ``clip_net.init_params`` (no compile, no transformers: the GPU image ships transformers 5, which has no
    FlaxCLIPModel)."""
    from styleclip_jax.models import clip_net
    cfg = clip_net.Config()
    params = jax.tree_util.tree_map(jnp.asarray, clip_net.init_params(seed, cfg))
    params = dict(params, logit_scale=jnp.asarray(np.log(100.0), jnp.float32))
    return sc.CLIP(clip_net.CLIPNet(cfg), None, params, preprocess=preprocess, name="random ViT-B/32")
