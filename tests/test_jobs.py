"""main.py and the job drivers: clear errors before any weights load, and the outputs of each mode
(run in-process on the NVlabs fixture generator and a tiny CLIP written to disk)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import styleclip_jax as sc
from test_clip import _write_tiny_clip

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _main(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, os.path.join(REPO, "main.py"), *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=REPO)


def test_cli_rejects_bad_mode_and_values_before_loading(tmp_path):
    r = _main("--mode=bogus", f"--workdir={tmp_path}")
    assert r.returncode != 0 and "--mode=bogus: unknown mode" in r.stderr and "generate" in r.stderr
    r = _main("--mode=generate", f"--workdir={tmp_path}", "--config.noise_mode=loud",
              "--config.generator=/nonexistent.pkl")
    assert r.returncode != 0 and "--config.noise_mode='loud'" in r.stderr
    r = _main("--mode=generate", f"--workdir={tmp_path}", "--config.seeds=3-1")
    assert r.returncode != 0 and "--config.seeds" in r.stderr
    r = _main("--mode=latent_optimization", f"--workdir={tmp_path}", "--config.space=z")
    assert r.returncode != 0 and "space='z'" in r.stderr
    r = _main("--mode=generate", f"--workdir={tmp_path}", "--config.generator=/nonexistent.pkl")
    assert r.returncode != 0 and "/nonexistent.pkl" in r.stderr and "Traceback" not in r.stderr


def _config(mode, **kw):
    """The mode's default config with fields set from kw (a dotted name as a__b); fields the mode's config
    does not have are skipped, so one kw dict can serve global_direction and its precompute mode."""
    mod = __import__(f"configs.{mode}", fromlist=["get_config"])
    c = mod.get_config()
    for k, v in kw.items():
        *sections, leaf = k.split("__")
        node = c
        for sec in sections:
            node = node[sec]
        if leaf in node:
            node[leaf] = v
    return c


@pytest.fixture(scope="module")
def models(fixtures_dir, tmp_path_factory):
    clip_dir = _write_tiny_clip(tmp_path_factory.mktemp("clip"))
    return str(fixtures_dir / "stylegan2_ada" / "G.pkl"), str(clip_dir)


def test_generate_job(models, tmp_path):
    from styleclip_jax.jobs import generate
    g, _ = models
    generate.run(_config("generate", generator=g, seeds="0-2", truncation_psi=0.5), str(tmp_path))
    imgs = np.load(tmp_path / "images.npz")["images"]
    G = sc.load_generator(g)
    want = G.synthesis(G.mapping(sc.seeds_to_z([0, 1, 2], 64), truncation_psi=0.5))
    np.testing.assert_allclose(imgs, want, atol=1e-5)
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert np.load(tmp_path / "latents.npy").shape == (3, 8, 64)


def test_latent_optimization_job(models, tmp_path):
    from styleclip_jax.jobs import latent_optimization as job
    g, c = models
    cfg = _config("latent_optimization", generator=g, clip_model=c, seeds="0-1",
                  prompts='["a red shape", "a blue circle"]', optim__steps=4, optim__lr=0.01)
    job.run(cfg, str(tmp_path))
    z = np.load(tmp_path / "images.npz")
    assert z["source"].shape == (2, 32, 32, 3) and z["edited"].shape == (2, 2, 32, 32, 3)
    lat = np.load(tmp_path / "latents.npy")
    assert lat.shape == (2, 2, 8, 64)
    G = sc.load_generator(g)
    np.testing.assert_allclose(G.synthesis(lat[1]), z["edited"][1], atol=1e-4)
    m = json.load(open(tmp_path / "metrics.json"))
    assert m["num_pairs"] == 4 and {p["prompt"] for p in m["pairs"]} == {"a red shape", "a blue circle"}
    assert all(len(p["loss"]["curve"]) >= 1 for p in m["pairs"])


def test_global_direction_job_and_cache(models, tmp_path):
    from styleclip_jax.jobs import global_direction as job
    from styleclip_jax.jobs import global_direction_precompute as pre
    g, c = models
    kw = dict(generator=g, clip_model=c, neutral="a shape", targets='["a red shape", "a blue circle"]',
              alphas="[-3, 0, 3]", betas="[0.0, 0.3]", seeds="0-1", stats__samples=200, sweep__images=2,
              sweep__block_size=32, cache_dir=str(tmp_path / "cache"), sweep__max_resolution=8)
    pre.run(_config("global_direction_precompute", **kw), str(tmp_path / "pre"))
    fs3 = np.load(tmp_path / "pre" / "fs3.npy")
    assert fs3.shape == (3 * 64, 16)  # layers up to 8 px: conv1_4, conv0_8, conv1_8
    summary = job.run(_config("global_direction", **kw), str(tmp_path / "gd"))  # reuses the cache
    z = np.load(tmp_path / "gd" / "images.npz")
    assert z["edited"].shape == (2, 3, 2, 2, 32, 32, 3)
    np.testing.assert_allclose(z["edited"][:, 1], np.broadcast_to(z["source"], (2, 2, 2, 32, 32, 3)), atol=1e-4)
    cells = summary["cells"]
    assert len(cells) == 2 * 3 * 2
    kept = {(c_["target"], c_["beta"]): c_["channels_kept"] for c_ in cells}
    assert kept[("a red shape", 0.0)] == 192 and kept[("a red shape", 0.3)] < 192
    page = (tmp_path / "gd" / "index.html").read_text()
    assert page.count("<img") == 4 and "a blue circle" in page


def test_reduced_precision_sweep_reports_agreement_with_cached_float32(tmp_path):
    from styleclip_jax.jobs import global_direction as job
    rs = np.random.RandomState(0)
    f32 = rs.randn(12, 5).astype(np.float32)
    bf = f32 + 0.1 * rs.randn(12, 5).astype(np.float32)
    out = tmp_path / "fs3_bfloat16" / "fs3.npy"
    out.parent.mkdir()
    missing = tmp_path / "nowhere" / "fs3.npy"
    assert job._precision_agreement(bf, out, [missing], verbose=False) == {}
    ref = tmp_path / "fs3_float32" / "fs3.npy"
    ref.parent.mkdir()
    np.save(ref, f32)
    paths = job._precision_agreement(bf, out, [missing, ref], verbose=False)
    rep = json.loads(open(paths["agreement"]).read())
    cos = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(bf, f32)]
    assert rep["float32_fs3"] == str(ref) and rep["rows"] == 12
    np.testing.assert_allclose([rep["mean_cosine"], rep["min_cosine"]], [np.mean(cos), np.min(cos)], rtol=1e-5)
