"""Edits mean what their text says in the shipped shapes world (issue #15's targets), measured with the
pixel and mask metrics by scripts/measure_shapes_edits.py on seeds the training never saw:
the Quickstart command, every palette colour and every shape as a global-direction target, latent
optimisation toward "a blue shape" and the "a green shape" mapper, all with the shapes-world defaults."""
import importlib.util
import pathlib

import numpy as np
import pytest

import styleclip_jax as sc
from styleclip_jax.editing import global_direction as gd

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def measure():
    spec = importlib.util.spec_from_file_location("measure_shapes_edits", REPO / "scripts" / "measure_shapes_edits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quickstart_turns_the_samples_red_keeping_shape_and_saturation(measure):
    """The README's first command: >= 7/8 of its non-red samples become red-dominant, mask IoU with the source
    >= 0.7 and saturation >= 80 % of the source's; alpha < 0 lowers the red share."""
    r = measure.quickstart()
    assert r["turned_red"] >= 7 / 8 * r["non_red"], r
    assert r["red_share_minus"] < r["red_share_source"] < r["red_share_plus"], r


def test_every_palette_colour_is_reachable(measure):
    """For each colour as the target, >= 75 % of the samples of other colours become target-dominant with the
    shape and saturation kept, at some alpha of the study range (0.5-6). Measured (48 held-out seeds): red,
    green, blue, yellow and purple 100 %, orange 76 %."""
    r = measure.colours()
    for colour, v in r.items():
        assert v["fraction"] >= 0.75, (colour, r)


def test_shape_directions_change_the_shape_and_keep_the_colour(measure):
    """'a shape' -> 'a {shape}': the mask metric's shape becomes the target on >= 50 % of the samples of other
    shapes, hue kept within 30 degrees. Measured: circle 100 %, square 66 %, triangle 98 %, ring 100 %."""
    r = measure.shapes()
    for shape, v in r.items():
        assert v["fraction"] >= 0.5, (shape, r)


def test_latent_optimisation_turns_shapes_blue(measure):
    """--mode=latent_optimization defaults toward 'a blue shape': the issue asks >= 80 % of the non-blue samples
    of seeds 0-59 to become blue-dominant with the shape kept (mask IoU >= 0.7). Measured 82 % (41 of 50; 7 of
    the 8 orange sources, blue's opposite hue, among them; seeds 200-259: 44 of 49)."""
    r = measure.latent_optimization()
    assert r["fraction"] >= 0.8, r


def test_green_mapper_turns_held_out_samples_green(measure):
    """--mode=mapper_train defaults ('a green shape'): green-dominant with shape kept on >= 80 % of 32 held-out
    latents (the issue's target). Measured 97 % (31 of 32) with the shapes preset (Adam lr 0.2, l2 0.3)."""
    r = measure.mapper()
    assert r["fraction"] >= 0.8, r


def test_shipped_fs3_matches_a_fresh_sweep_block():
    """The shipped fs3 is what channel_relevance computes (first block of the first layer)."""
    from configs.global_direction import get_config
    from styleclip_jax.jobs import global_direction as job
    from styleclip_jax.shipped import SHAPES_GLOBAL_DIRECTION
    G, clip = sc.load_generator("shapes"), sc.load_clip("shapes")
    c = get_config()
    mean, std, fs3, paths = job.precompute(c, G, clip, verbose=False)
    assert str(SHAPES_GLOBAL_DIRECTION) in paths["fs3"], "the shapes-world fs3 must ship with the package"
    ws = gd.sample_ws(G, c.sweep.images, c.stats.truncation_psi, c.stats.truncation_cutoff, c.stats.seed)
    layer = G.layout[0]
    part = gd.channel_relevance_naive(G, clip, mean, std, ws[: c.sweep.images], [layer.name] * 2, [0, 1])
    np.testing.assert_allclose(fs3[:2], part, atol=2e-3)
