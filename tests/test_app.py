"""The editor's callbacks without a browser (shapes world): same images and files as the CLI, caching, uploads."""
import json
import pathlib

import jax
import numpy as np
import pytest

from configs.app import get_config
from styleclip_jax.app import editor as E
from styleclip_jax.app import uploads
from styleclip_jax.errors import ConfigError, InputError
from styleclip_jax.jobs import app as app_job
from styleclip_jax.jobs import outputs as io_utils

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ed():
    return E.Editor.from_config(get_config(), verbose=False)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`--mode=global_direction` for seed 3, alpha 2, beta 0.1 (in-process; the same job main.py runs)."""
    from configs.global_direction import get_config as gd_config
    from styleclip_jax.jobs import global_direction as job
    c = gd_config()
    c.seeds, c.alpha, c.beta, c.target = "3", 2.0, 0.1, "a red shape"
    out = tmp_path_factory.mktemp("cli")
    job.validate(c)
    job.run(c, str(out))
    return out


def test_edit_equals_cli_image(ed, cli_run):
    r = ed.edit(ed.source_from_seed(3), "a shape", "a red shape", alpha=2.0, beta=0.1)
    with np.load(cli_run / "images.npz") as z:
        cli_img, cli_src = z["edited"][0, 0, 0, 0], z["source"][0]
    np.testing.assert_allclose(ed.source_from_seed(3).reconstruction, cli_src, atol=1e-5)
    np.testing.assert_allclose(r.image, cli_img, atol=1e-5)
    assert np.abs(r.image - cli_src).max() > 0.1  # the edit does something
    m = json.loads((cli_run / "metrics.json").read_text())
    assert r.num_kept == m["cells"][0]["channels_kept"]


def test_study_export_equals_cli_files(ed, cli_run, tmp_path):
    summary = ed.export_study(ed.source_from_seed(3), "a shape", "a red shape", [2.0], 0.1, tmp_path)
    for f in ("index.html", "grid_p00_b00.png", "images.npz", "metrics.json"):
        assert (tmp_path / f).is_file(), f
    cli = json.loads((cli_run / "metrics.json").read_text())
    assert summary["images"] == cli["images"] == ["seed 3"]
    for a, b in zip(summary["cells"], cli["cells"]):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], (float, list)):
                np.testing.assert_allclose(a[k], b[k], atol=1e-5, err_msg=k)
            else:
                assert a[k] == b[k], k
    from PIL import Image
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "grid_p00_b00.png")),
                                  np.asarray(Image.open(cli_run / "grid_p00_b00.png")))


def test_alpha_moves_reuse_the_direction(ed, monkeypatch):
    from styleclip_jax.editing import global_direction as gd
    calls = {"text": 0, "direction": 0}
    real_t, real_d = gd.text_direction, gd.direction

    def count(name, f):
        def g(*a, **k):
            calls[name] += 1
            return f(*a, **k)
        return g
    monkeypatch.setattr(gd, "text_direction", count("text", real_t))
    monkeypatch.setattr(gd, "direction", count("direction", real_d))
    src = ed.source_from_seed(5)
    imgs = [ed.edit(src, "a shape", "a green shape", a, 0.12).image for a in (0.0, 1.0, 2.0, 3.0)]
    assert calls == {"text": 1, "direction": 1}
    assert all(np.abs(imgs[i + 1] - imgs[i]).max() > 1e-3 for i in range(3))
    np.testing.assert_allclose(imgs[0], src.reconstruction, atol=1e-5)  # alpha 0 is the source
    ed.edit(src, "a shape", "a green shape", 1.0, 0.2)  # a beta change recomputes only the direction
    assert calls == {"text": 1, "direction": 2}


def test_channel_list_matches_the_direction(ed):
    """Each listed (layer, channel, r): Δs[layer][channel] = r / max|r| * std; count = channels kept."""
    rows, n = ed.channels("a shape", "a red shape", 0.1, limit=1000)
    delta, kept = ed.direction("a shape", "a red shape", 0.1)
    assert n == kept == len(rows) > 0
    rmax = max(abs(r) for _, _, r in rows)
    assert abs(rows[0][2]) == rmax and all(abs(rows[i][2]) >= abs(rows[i + 1][2]) for i in range(n - 1))
    for layer, c, r in rows:
        assert not layer.startswith("toRGB")
        np.testing.assert_allclose(float(delta[layer][c]), r / rmax * float(ed.std[layer][c]), rtol=1e-4, atol=1e-7)
    nonzero = sum(int(np.count_nonzero(np.asarray(v))) for v in delta.values())
    assert nonzero == n
    assert len(ed.channels("a shape", "a red shape", 0.3, limit=5)[0]) <= 5
    assert ed.channels("a shape", "a red shape", 0.3)[1] < n


def test_layer_group_strengths(ed):
    src = ed.source_from_seed(1)
    assert ed.group_layers["fine"] == [] and ed.group_layers["coarse"] and ed.group_layers["medium"]
    off = ed.edit(src, "a shape", "a blue shape", 3.0, 0.1, {"coarse": 0.0, "medium": 0.0})
    np.testing.assert_allclose(off.image, src.reconstruction, atol=1e-5)
    double = ed.edit(src, "a shape", "a blue shape", 1.5, 0.1, {"coarse": 2.0, "medium": 2.0})
    np.testing.assert_allclose(double.image, ed.edit(src, "a shape", "a blue shape", 3.0, 0.1).image, atol=1e-5)
    coarse = ed.edit(src, "a shape", "a blue shape", 3.0, 0.1, {"medium": 0.0})
    delta, _ = ed.direction("a shape", "a blue shape", 0.1)
    s0 = {k: np.asarray(v) for k, v in src.s.items()}
    want = np.concatenate([s0[l.name] + (3.0 * np.asarray(delta[l.name]) if l.resolution <= 8 else 0.0)
                           for l in ed.layers], axis=-1)
    np.testing.assert_allclose(coarse.codes, want, atol=1e-5)
    with pytest.raises(InputError, match="layer group"):
        ed.edit(src, "a shape", "a blue shape", 1.0, 0.1, {"ultra": 1.0})


def test_save_edit_png_and_latents(ed, tmp_path):
    from PIL import Image
    r = ed.edit(ed.source_from_seed(2), "a shape", "a red shape", 2.0, 0.1)
    png, npy = ed.save_edit(r, tmp_path)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), io_utils.to_uint8(r.image))
    codes = np.load(npy)
    assert codes.shape == (1, sum(l.channels for l in ed.layers))
    s = {k: np.asarray(v) for k, v in ed.G.w_to_s(ed.source_from_seed(2).w).items()}
    split = np.split(codes, np.cumsum([l.channels for l in ed.layers])[:-1], axis=-1)
    img = ed.G.synthesis_from_s({l.name: x for l, x in zip(ed.layers, split)})
    np.testing.assert_allclose(np.asarray(img[0]), r.image, atol=1e-5)  # the .npy reproduces the PNG
    assert s.keys()


def test_mapper_mode(ed, tmp_path):
    from styleclip_jax.editing.mapper import Mapper
    from styleclip_jax.models.mapper import MapperConfig, init_mapper_params
    cfg = MapperConfig(latent_dim=ed.G.cfg.w_dim)
    Mapper(init_mapper_params(jax.random.PRNGKey(0), cfg), cfg, {"prompt": "x"}).save(tmp_path / "m")
    src = ed.source_from_seed(4)
    r = ed.mapper_edit(src, str(tmp_path / "m"), 2.0)
    m = ed.mapper(str(tmp_path / "m"))
    w_hat = np.asarray(m.apply(src.w, 2.0))
    np.testing.assert_allclose(r.codes, w_hat, atol=1e-6)
    np.testing.assert_allclose(r.image, np.asarray(ed.G.synthesis(w_hat)[0]), atol=1e-5)
    assert r.kind == "w+" and np.abs(r.image - src.reconstruction).max() > 1e-4
    with pytest.raises(InputError, match="does not exist"):
        ed.mapper_edit(src, str(tmp_path / "nope"), 1.0)


def test_sources_latents_and_seed_errors(ed, tmp_path):
    w = np.stack([ed.source_from_seed(s).w[0] for s in (6, 7)])
    np.save(tmp_path / "w.npy", w)
    src = ed.source_from_latents(tmp_path / "w.npy", 1)
    np.testing.assert_allclose(src.reconstruction, ed.source_from_seed(7).reconstruction, atol=1e-6)
    with pytest.raises(InputError, match="out of range"):
        ed.source_from_latents(tmp_path / "w.npy", 2)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="nothing from the file was unpickled"):
        ed.source_from_latents(tmp_path / "obj.npy")
    (tmp_path / "w.pt").write_bytes(b"x" * 10)
    with pytest.raises(InputError, match=".npy or .npz"):
        ed.source_from_latents(tmp_path / "w.pt")
    with pytest.raises(InputError, match="seed"):
        ed.source_from_seed("abc")
    with pytest.raises(InputError, match="prompt is empty"):
        ed.edit(src, "a shape", "  ", 1.0, 0.1)


def _render_png(path, seed=11):
    from PIL import Image
    from styleclip_jax.shapes.render import render
    img = render(seed)[0]
    Image.fromarray(io_utils.to_uint8(img)).save(path)
    return img


def test_uploads_decoded_with_pil_and_checked(tmp_path):
    img = _render_png(tmp_path / "shape.png")
    orig, x = uploads.read_image(tmp_path / "shape.png", 32)
    np.testing.assert_array_equal(orig, io_utils.to_uint8(img))
    assert x.shape == (32, 32, 3) and np.abs(x - img).max() <= 1.0 / 127.5 + 1e-6
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(InputError, match="not an image"):
        uploads.read_image(tmp_path / "notes.png", 32)
    with pytest.raises(InputError, match="larger than the limit"):
        uploads.read_image(tmp_path / "shape.png", 32, max_bytes=16)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        uploads.read_image(tmp_path / "empty.png", 32)
    from PIL import Image
    Image.new("L", (5000, 4000)).save(tmp_path / "big.png")  # 20 Mpx: refused from the header
    with pytest.raises(InputError, match="pixels"):
        uploads.read_image(tmp_path / "big.png", 32)


def test_upload_with_and_without_encoder(ed, tmp_path):
    _render_png(tmp_path / "shape.png")
    bare = E.Editor(ed.G, ed.clip, ed.mean, ed.std, ed.fs3, encoder_error="no encoder here: use a seed")
    with pytest.raises(InputError, match="no encoder here"):
        bare.source_from_upload(tmp_path / "shape.png")
    with pytest.raises(InputError, match="not an image"):  # a bad file is named as such even without encoder
        (tmp_path / "x.png").write_bytes(b"GIF89a garbage")
        bare.source_from_upload(tmp_path / "x.png")
    w_known = ed.source_from_seed(9).w
    seen = []

    def encode(images):  # a stub encoder: records its input, returns a known W+
        seen.append(np.asarray(images))
        return w_known
    stub = E.Editor(ed.G, ed.clip, ed.mean, ed.std, ed.fs3, encode=encode, encoder_size=32)
    src = stub.source_from_upload(tmp_path / "shape.png")
    assert seen[0].shape == (1, 32, 32, 3) and src.photo.shape == (32, 32, 3)
    np.testing.assert_allclose(src.reconstruction, ed.source_from_seed(9).reconstruction, atol=1e-6)
    msg = E._encoder_from(None)[2]
    assert "encoder" in msg


def test_validate_host_and_port():
    c = get_config()
    c.host = "0.0.0.0"
    with pytest.raises(ConfigError, match="allow_remote"):
        app_job.validate(c)
    c.allow_remote = True
    try:
        app_job.validate(c)
    except ConfigError as e:  # only without the [app] extra
        assert "needs gradio" in str(e)
    c = get_config()
    c.port = 70000
    with pytest.raises(ConfigError, match="port"):
        app_job.validate(c)
    assert app_job.is_loopback("127.0.0.2") and app_job.is_loopback("::1") and not app_job.is_loopback("10.0.0.1")


def test_warm_up_sets_ready(ed):
    ed.ready.clear()
    ed.refine_steps = 0  # the refinement compile (~10 s) is covered by the browser test's server
    secs = ed.warm_up("a shape", "a red shape", 1.0, 0.1)
    assert ed.ready.is_set() and ed.status.startswith("ready") and secs > 0
    d = E.to_display(np.zeros((32, 32, 3), np.float32))
    assert d.shape == (256, 256, 3) and d.dtype == np.uint8


def test_page_builds_and_errors_become_messages(ed, tmp_path):
    pytest.importorskip("gradio", reason="the [app] extra is not installed")
    from styleclip_jax.app import ui
    fresh = E.Editor(ed.G, ed.clip, ed.mean, ed.std, ed.fs3)  # not warmed up yet
    demo = ui.build(fresh, get_config(), tmp_path)
    assert demo.title == ui.TITLE == "StyleCLIP-JAX interactive editor"
    status = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "status"][0]
    assert "warming up" in status.value  # the page opens in the warming-up state

    @ui._guarded(3, 1)
    def boom(x):
        raise InputError(f"upload {x}: not an image")
    out = boom("a.txt")
    assert out[1] == "**error:** upload a.txt: not an image" and len(out) == 3
