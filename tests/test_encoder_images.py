"""sc.load_images: e4e's input transforms (RGB, Resize((S, S)) on PIL = bilinear, ToTensor, Normalize 0.5)."""
import numpy as np
import PIL.Image
import pytest

import styleclip_jax as sc
from styleclip_jax.errors import InputError


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    PIL.Image.fromarray(rgb).save(tmp_path / "b_rgb.png")
    PIL.Image.fromarray(rgb[:, :, 0]).save(tmp_path / "a_grey.png")                      # mode L
    rgba = np.concatenate([rgb, np.full((30, 40, 1), 255, np.uint8)], axis=2)
    PIL.Image.fromarray(rgba).save(tmp_path / "c_rgba.png")                               # mode RGBA
    PIL.Image.fromarray(np.full((16, 16, 3), (255, 0, 128), np.uint8)).save(tmp_path / "d_exact.jpg", quality=100)
    return tmp_path, rgb


def test_load_images_glob_modes_and_values(folder):
    d, rgb = folder
    x, names = sc.load_images(str(d / "*.png"), 16)
    assert names == ["a_grey.png", "b_rgb.png", "c_rgba.png"]
    assert x.shape == (3, 16, 16, 3) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    want = np.asarray(PIL.Image.fromarray(rgb).resize((16, 16), PIL.Image.BILINEAR), np.float32) / 127.5 - 1
    np.testing.assert_allclose(x[1], want, atol=1e-6)
    np.testing.assert_array_equal(x[2], x[1])                           # alpha dropped, colours kept
    np.testing.assert_array_equal(x[0][..., 0], x[0][..., 1])           # grey -> three equal channels
    # bilinear shrink averages: the mean grey level is kept to within a level
    assert abs(x[1].mean() - (rgb.mean() / 127.5 - 1)) < 2 / 127.5


def test_load_images_folder_list_and_exact_size(folder):
    d, _ = folder
    x, names = sc.load_images(d, 16)
    assert names == ["a_grey.png", "b_rgb.png", "c_rgba.png", "d_exact.jpg"]
    x2, names2 = sc.load_images([d / "d_exact.jpg", str(d / "b_rgb.png")], 16)
    assert names2 == ["d_exact.jpg", "b_rgb.png"]
    np.testing.assert_array_equal(x2[0], x[3])
    np.testing.assert_allclose(x[3][..., 0], 1.0, atol=2 / 255)        # no resize at the exact size


def test_load_images_errors_name_the_file(folder):
    d, _ = folder
    (d / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="broken.png: not a readable image"):
        sc.load_images(d / "broken.png", 16)
    with pytest.raises(InputError, match=r"nothing\*.png: the pattern matches no files"):
        sc.load_images(str(d / "nothing*.png"), 16)
    with pytest.raises(InputError, match="missing.png: image file does not exist"):
        sc.load_images(str(d / "missing.png"), 16)
