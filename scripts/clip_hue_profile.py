"""A shapes-world CLIP's cosine with a colour prompt round the hue circle: where latent optimisation gets a slope.

For each uniform hue angle u (the renderer's: red 0, orange 60, yellow 120, green 180, blue 240, purple 300),
the same 64 random renders are recoloured to that hue and the mean cosine (x 100) of their image embeddings
with the prompt is printed. A flat stretch means that a latent optimisation toward the prompt has no gradient
from samples of those hues (measured for the shapes CLIP: `styleclip_jax/assets/shapes_clip/TRAINING.md`).

    python scripts/clip_hue_profile.py shapes [OTHER_CLIP_DIR ...] [--prompt "a blue shape"] [--step 10]

About 30 s per CLIP on a 2-core CPU.
"""
import argparse

import jax.numpy as jnp
import numpy as np

import styleclip_jax as sc
from styleclip_jax.shapes import render as R


def hue_profile(clip, prompt: str, us, n: int = 64, seed: int = 0) -> np.ndarray:
    """(len(us),) mean 100 x cosine between ``prompt`` and ``n`` fixed random renders drawn at each hue angle u."""
    rng = np.random.default_rng(seed)
    base, shapes = rng.random((n, 8)), rng.integers(0, len(R.SHAPES), n)
    t = np.asarray(clip.encode_texts([prompt]))[0]
    out = []
    for u in us:
        b = base.copy()
        b[:, 0] = u / 360.0
        e = np.array(clip.encode_images(jnp.asarray(R.render_attributes(R.attributes_from_uniforms(b, shapes)))))
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        out.append(100.0 * float((e @ t).mean()))
    return np.asarray(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+", help='"shapes" (the shipped CLIP) or a CLIP checkpoint folder')
    ap.add_argument("--prompt", default="a blue shape")
    ap.add_argument("--step", type=float, default=10.0, help="hue step in degrees of u")
    args = ap.parse_args()
    us = np.arange(0.0, 360.0, args.step)
    print(f'100 x cos(image, "{args.prompt}") by hue angle u:', " ".join(f"{u:g}" for u in us))
    for path in args.clips:
        prof = hue_profile(sc.load_clip(path), args.prompt, us)
        print(path, " ".join(f"{c:.1f}" for c in prof), flush=True)


if __name__ == "__main__":
    main()
