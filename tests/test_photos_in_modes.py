"""Editing modes on image files (`--config.images`): fresh renders of the shapes world (not generator
samples) are inverted (mean W + refinement: no shapes encoder ships yet) and edited; the grid's first column
is the photo."""
import pathlib

import numpy as np
import PIL.Image
import pytest

from styleclip_jax.shapes import metrics, render

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    # non-purple renders with seeds far from anything the shapes world was trained on
    seeds = [s for s in range(900_000, 900_200) if render.render(s)[2]["colour"] != "purple"][:4]
    imgs, _, labels = render.render_batch(seeds)
    for s, im in zip(seeds, imgs):
        PIL.Image.fromarray(np.uint8(np.clip(np.rint((im + 1) * 127.5), 0, 255))).save(d / f"shape_{s}.png")
    return d, imgs


def _config(mode):
    mod = __import__(f"configs.{mode}", fromlist=["get_config"])
    return mod.get_config()


def test_global_direction_edits_photos_toward_purple(photos, tmp_path):
    from styleclip_jax.jobs import global_direction as job
    d, imgs = photos
    c = _config("global_direction")
    c.images, c.refine_steps = str(d / "*.png"), 100
    c.target, c.alphas = "a purple shape", "[0, 1, 2]"
    job.validate(c)
    job.run(c, str(tmp_path))
    z = np.load(tmp_path / "images.npz")
    assert z["photo"].shape == (4, 32, 32, 3)
    np.testing.assert_allclose(z["photo"], imgs, atol=1 / 127.5)  # the files as written, read back
    # the reconstruction resembles the photo more than the mean image does
    assert np.mean((z["source"] - z["photo"]) ** 2) < 0.5 * np.mean((z["photo"].mean(0) - z["photo"]) ** 2)
    before = metrics.colour_share(z["edited"][0, 0, 0], "purple")
    after = metrics.colour_share(z["edited"][0, 2, 0], "purple")
    assert after.mean() > before.mean(), (before, after)
    grid = np.asarray(PIL.Image.open(tmp_path / "grid_p00_b00.png"))
    assert 1.2 < grid.shape[1] / grid.shape[0] < 1.3  # 4 rows x (photo | reconstruction | 3 alphas)


def test_images_and_latents_are_exclusive(photos, tmp_path):
    from styleclip_jax.errors import ConfigError
    from styleclip_jax.jobs import latent_optimization as job
    d, _ = photos
    c = _config("latent_optimization")
    c.images, c.latents = str(d / "*.png"), str(tmp_path / "w.npy")
    with pytest.raises(ConfigError, match="--config.images and --config.latents"):
        job.validate(c)
    c.latents, c.images = None, str(tmp_path / "nothing*.png")
    with pytest.raises(Exception, match="nothing"):
        job.validate(c)
