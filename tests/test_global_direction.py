"""Global directions: statistics vs the fixture, the vectorised/prefix-reusing sweep vs a naive
full recomputation, kill-and-resume, 4 forced CPU devices vs 1, official fs3 files, and edits."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from styleclip_jax.models.clip import text_direction_from_embeddings

import styleclip_jax as sc
from styleclip_jax.editing import global_direction as gd
from tiny_models import linear_embedder, tiny_generator

# 8 px, 8 channels: 3 edited layers, 24 channels; keeps the per-layer compiles cheap
GD_G = sc.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=2)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup():
    G = tiny_generator(cfg=GD_G)
    clip = linear_embedder(GD_G.img_resolution)
    mean, std = gd.style_stats(G, num_samples=300, seed=5, batch_size=128)
    return G, clip, mean, std


def test_style_stats_match_official(fixtures_dir):
    G = sc.load_generator(fixtures_dir / "stylegan2_ada" / "G.pkl")
    e = np.load(fixtures_dir / "stylegan2_ada" / "expected.npz")
    mean, std = gd.style_stats(G, num_samples=1000, truncation_psi=0.7, truncation_cutoff=8, seed=5, batch_size=300)
    assert list(mean) == [l.name for l in G.layout]
    for k in mean:
        np.testing.assert_allclose(mean[k], e["s_mean_" + k], atol=1e-5, err_msg=k)
        np.testing.assert_allclose(std[k], e["s_std_" + k], atol=1e-5, err_msg=k)


def test_sweep_equals_naive_recomputation(setup):
    G, clip, mean, std = setup
    ws = gd.sample_ws(G, 3, seed=1)
    fs3 = gd.channel_relevance(G, clip, mean, std, ws=ws, block_size=4, image_batch=2, progress=False)
    assert fs3.shape == (gd.num_relevance_channels(G), clip.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(fs3, axis=1), 1.0, atol=1e-5)
    # naive: full synthesis for a few channels in several layers, official GetFs normalisation
    layers = [l for l in G.layout if not l.is_torgb]
    offs = np.cumsum([0] + [l.channels for l in layers])
    picks = [(layers[0], 0), (layers[1], 5), (layers[2], 6), (layers[-1], 3)]
    ref = gd.channel_relevance_naive(G, clip, mean, std, ws, [l.name for l, _ in picks], [c for _, c in picks])
    got = np.stack([fs3[offs[layers.index(l)] + c] for l, c in picks])
    np.testing.assert_allclose(got, ref, atol=1e-5)
    wrong = np.stack([fs3[offs[layers.index(l)] + c + 1] for l, c in picks])
    assert np.abs(wrong - ref).max() > 1e-2


def test_a_channel_that_changes_no_image_has_no_direction(setup):
    """A style channel with std 0 (a constant channel) moves no image: official GetFs would divide 0 by 0;
    here its fs3 row is 0, in the math, the sweep and the naive reference alike, and style_stats reports std 0
    for a constant channel (not the ~1e-7 float64 cancellation leaves, which the sweep would blow up to unit
    vectors). Real rows keep the official formula (a fixture-free check against it)."""
    from styleclip_jax.editing import global_direction_math as gm
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 5, 2, 4)).astype(np.float32)
    f[1, :, 1] = f[1, :, 0]  # channel 1: identical images at -5 and +5 std
    fs3 = np.asarray(gm.relevance_from_features(f))
    assert not fs3[1].any()
    u = f[0] / np.linalg.norm(f[0], axis=-1, keepdims=True)
    d = u[:, 1] - u[:, 0]
    d = (d / np.linalg.norm(d, axis=-1, keepdims=True)).mean(0)
    np.testing.assert_allclose(fs3[0], d / np.linalg.norm(d), atol=1e-6)

    G, clip, mean, std = setup
    name = next(l.name for l in G.layout if not l.is_torgb)
    import jax
    params = jax.tree_util.tree_map(lambda x: x, G.params)
    affine = params["synthesis"]["b4"]["conv1"]["affine"]
    affine["weight"] = affine["weight"].at[2].set(0.0)  # style channel 2 of the first conv reads no w
    _, std0 = gd.style_stats(sc.Generator(params=params, cfg=G.cfg), num_samples=300, seed=5, batch_size=128)
    assert std0[name][2] == 0.0 and np.all(np.asarray(std0[name])[3:] > 0)
    dead = {k: np.asarray(v).copy() for k, v in std.items()}
    dead[name][2] = 0.0  # channel 2 of the first layer moves nothing
    ws = gd.sample_ws(G, 3, seed=1)
    fs3 = gd.channel_relevance(G, clip, mean, dead, ws=ws, block_size=4, image_batch=2, progress=False)
    assert not fs3[2].any() and np.all(np.linalg.norm(np.delete(fs3, 2, 0), axis=1) > 0.99)
    ref = gd.channel_relevance_naive(G, clip, mean, dead, ws, [name, name], [2, 3])
    np.testing.assert_allclose(fs3[2:4], ref, atol=1e-5)


def test_auto_image_batch_bounds_a_call():
    """Without image_batch a sweep call stays within the render budget that fit an H100 at 1024 px
    (64 renders), and small generators keep one call per block (the shipped shapes fs3's settings)."""
    for res, block in [(1024, 16), (1024, 64), (512, 16), (256, 16), (256, 3)]:
        ib = gd.auto_image_batch(res, block, 100)
        assert 1 <= ib <= 100
        assert ib == 1 or 2 * block * ib * res ** 2 <= gd.RENDER_PIXELS_PER_CALL
        assert ib == 100 or 2 * block * (ib + 1) * res ** 2 > gd.RENDER_PIXELS_PER_CALL  # the largest that fits
    assert gd.auto_image_batch(1024, 16, 100) == 2
    assert gd.auto_image_batch(32, 16, 100) == 100


def test_max_resolution_restricts_layers(setup):
    G, clip, mean, std = setup
    ws = gd.sample_ws(G, 2, seed=1)
    fs3 = gd.channel_relevance(G, clip, mean, std, ws=ws, max_resolution=8, block_size=16, progress=False)
    assert fs3.shape[0] == sum(l.channels for l in G.layout if not l.is_torgb and l.resolution <= 8)


def test_resume_is_bit_identical(setup, tmp_path):
    G, clip, mean, std = setup
    ws = gd.sample_ws(G, 2, seed=2)
    kw = dict(ws=ws, block_size=8, progress=False)
    full = gd.channel_relevance(G, clip, mean, std, out_dir=tmp_path / "a", **kw)
    assert gd.channel_relevance(G, clip, mean, std, out_dir=tmp_path / "b", stop_after_blocks=3, **kw) is None
    assert len(list((tmp_path / "b" / "blocks").glob("*.npy"))) == 3
    resumed = gd.channel_relevance(G, clip, mean, std, out_dir=tmp_path / "b", **kw)
    np.testing.assert_array_equal(resumed, full)
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "fs3.npy"), full)
    with pytest.raises(ValueError, match="other settings"):
        gd.channel_relevance(G, clip, mean, std, out_dir=tmp_path / "b", ws=ws, block_size=4, progress=False)


_CHILD = textwrap.dedent("""
    import os, sys, numpy as np
    sys.path.insert(0, {tests!r})
    import jax
    jax.config.update("jax_default_matmul_precision", "highest")
    from styleclip_jax.editing import global_direction as gd
    import styleclip_jax as sc
    from tiny_models import linear_embedder, tiny_generator
    cfg = sc.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=2)
    G, clip = tiny_generator(cfg=cfg), linear_embedder(8)
    mean, std = gd.style_stats(G, num_samples=300, seed=5, batch_size=128)
    ws = gd.sample_ws(G, 2, seed=3)
    out = sys.argv[1]
    if sys.argv[2] == "kill":
        import signal
        orig = gd.files.write_npy
        count = [0]
        def write_then_die(path, arr):
            orig(path, arr)
            if "blocks" in str(path):
                count[0] += 1
                if count[0] == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
        gd.files.write_npy = write_then_die
    fs3 = gd.channel_relevance(G, clip, mean, std, ws=ws, block_size=4, out_dir=out, progress=False)
    print("DEVICES", jax.device_count())
""")


def _run_child(tmp_path, out, mode, devices=1):
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests=os.path.join(REPO, "tests")))
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.run([sys.executable, str(script), str(out), mode], env=env, capture_output=True, text=True,
                          timeout=600)


def test_sigkill_resume_and_four_devices_equal_one(setup, tmp_path):
    G, clip, mean, std = setup
    ws = gd.sample_ws(G, 2, seed=3)
    fresh = gd.channel_relevance(G, clip, mean, std, ws=ws, block_size=4, progress=False)
    killed = _run_child(tmp_path, tmp_path / "k", "kill")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "k" / "fs3.npy").exists()
    assert len(list((tmp_path / "k" / "blocks").glob("*.npy"))) == 2
    resumed = _run_child(tmp_path, tmp_path / "k", "run")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    four = _run_child(tmp_path, tmp_path / "four", "run", devices=4)
    assert four.returncode == 0 and "DEVICES 4" in four.stdout, four.stderr[-2000:]
    a, b = (np.load(tmp_path / d / "fs3.npy") for d in ("k", "four"))
    np.testing.assert_array_equal(a, fresh)   # killed + resumed == uninterrupted (bit for bit)
    np.testing.assert_allclose(b, fresh, atol=1e-6)  # sharded over 4 devices == 1 device


def test_direction_and_apply_match_fixture_math(fixtures_dir):
    e = np.load(fixtures_dir / "global_direction" / "expected.npz")
    cfg = json.load(open(fixtures_dir / "global_direction" / "config.json"))
    lay = cfg["fake_layout"]
    # our own layer names for the toy layout, in S order, so layout_of() can order them
    std = {n: e[f"layout_code_std_{i:02d}"] for i, n in enumerate(lay["s_names"])}
    dt = text_direction_from_embeddings(e["text_emb_target"], e["text_emb_neutral"])
    np.testing.assert_allclose(dt, e["dt"], atol=1e-6)
    fs3 = gd.relevance_from_features(e["all_f"])
    np.testing.assert_allclose(fs3, e["fs3"], atol=1e-6)
    for beta, tag in [(0.0, "0p0"), (0.1, "0p1"), (0.2, "0p2")]:
        delta, kept = gd.direction(fs3, e["dt"], std, beta)
        assert int(kept) == int(e[f"num_c_beta_{tag}"])
        for i, n in enumerate(lay["s_names"]):
            np.testing.assert_allclose(delta[n], e[f"boundary_beta_{tag}_layer_{i:02d}"], atol=1e-6)
    delta, _ = gd.direction(fs3, e["dt"], std, 0.1)
    s = {n: e[f"layout_dlatents_{i:02d}"] for i, n in enumerate(lay["s_names"])}
    edited = gd.apply(s, delta, np.asarray(e["mscode_alpha"], np.float32))
    for i, n in enumerate(lay["s_names"]):
        np.testing.assert_allclose(edited[n], e[f"mscode_layer_{i:02d}"], atol=1e-5)


def test_official_fs3_file_drives_an_edit(setup, tmp_path):
    G, clip, mean, std = setup
    k = gd.num_relevance_channels(G)
    rng = np.random.RandomState(0)
    fs3 = rng.randn(k, clip.embed_dim).astype(np.float32)
    fs3 /= np.linalg.norm(fs3, axis=1, keepdims=True)
    np.save(tmp_path / "fs3.npy", fs3)  # the published format: plain (channels, D) float array
    loaded = gd.load_fs3(tmp_path / "fs3.npy", G)
    dt = fs3[7] + 0.1 * rng.randn(clip.embed_dim).astype(np.float32)
    dt /= np.linalg.norm(dt)
    delta, kept = gd.direction(loaded, dt, std, 0.3)
    assert 0 < int(kept) < k
    for l in G.layout:
        if l.is_torgb:
            assert np.all(np.asarray(delta[l.name]) == 0)
    s = G.w_to_s(gd.sample_ws(G, 2, seed=4))
    img0 = G.synthesis_from_s(s)
    img1 = G.synthesis_from_s(gd.apply(s, delta, 3.0))
    assert np.abs(np.asarray(img1) - np.asarray(img0)).max() > 1e-3
    np.save(tmp_path / "bad.npy", fs3[:10])
    with pytest.raises(ValueError, match="bad.npy"):
        gd.load_fs3(tmp_path / "bad.npy", G)


def test_bfloat16_sweep_agrees_with_float32_in_the_shapes_world():
    """precision="bfloat16" really rounds the generator's conv inputs (the rows differ) and agrees with the
    float32 sweep. Measured on the full shipped-world sweep (224 channels x 100 images): mean cosine 0.977, and
    -0.05 for the worst channel (in this world many channels vary by ~1 % of their value, less than bfloat16's
    rounding of the codes; in the first shapes world, 336 channels: 0.99976, min 0.989). Here: the 4-px layer,
    16 images (measured 0.952)."""
    from configs.global_direction import get_config
    from styleclip_jax.jobs import global_direction as job
    G, clip = sc.load_generator("shapes"), sc.load_clip("shapes")
    mean, std, _, _ = job.precompute(get_config(), G, clip, verbose=False)
    ws = gd.sample_ws(G, 16, 0.7, 8, seed=0)
    a = gd.channel_relevance(G, clip, mean, std, ws=ws, max_resolution=4, progress=False)
    b = gd.channel_relevance(G, clip, mean, std, ws=ws, max_resolution=4, progress=False, precision="bfloat16")
    assert np.abs(a - b).max() > 1e-3
    assert gd.agreement(a, b) > 0.9, gd.agreement(a, b)
