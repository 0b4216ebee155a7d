"""Data parallelism through styleclip_jax.parallel: 4 forced CPU devices give the results of 1 device."""
import os
import pathlib
import subprocess
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import jax, numpy as np
    from styleclip_jax.editing import latent_optimization as lo
    from tiny_models import tiny_clip, tiny_generator, unit
    assert jax.device_count() == 4, jax.devices()
    G, clip = tiny_generator(), tiny_clip()
    w = G.mapping(jax.random.normal(jax.random.PRNGKey(3), (3, G.cfg.z_dim)), truncation_psi=0.7)
    t = unit(7, 2, clip.embed_dim)
    for space in ("wplus",):  # the S variant shards the same way (dicts of (P, C)); left out for time
        cfg = lo.LatentOptConfig(steps=4, lr=0.05, space=space)
        one, m1 = lo.optimize(G, clip, w, t, cfg, verbose=False, devices=jax.devices()[:1])
        four, m4 = lo.optimize(G, clip, w, t, cfg, verbose=(space == "wplus"))  # 6 pairs -> 8 rows, 2 per device
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(four)):
            assert a.shape == b.shape, (a.shape, b.shape)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)
        np.testing.assert_allclose(m1["loss_last"], m4["loss_last"], atol=2e-5)
        assert m4["loss_curve"].shape[0] == 6
    print("OK")
""")

MAPPER_CHILD = textwrap.dedent("""
    import sys, jax, numpy as np
    from styleclip_jax.editing.mapper import MapperTrainConfig, sample_latents
    from styleclip_jax.jobs import mapper_train
    from styleclip_jax.models.mapper import MapperConfig
    from tiny_models import tiny_clip, tiny_generator, unit
    assert jax.device_count() == 4
    G, clip = tiny_generator(), tiny_clip()
    w_train, w_test = sample_latents(G, 32, 0), sample_latents(G, 4, 1)
    text = unit(5, 1, clip.embed_dim)
    kw = dict(G=G, clip=clip, w_train=w_train, w_test=w_test, text_embs=text, prompts=["p"],
              mcfg=MapperConfig(latent_dim=G.cfg.w_dim), tcfg=MapperTrainConfig(optimizer="adam", batch_size=4),
              max_steps=20, val_every=0, image_every=0, log_every=0, tensorboard=False)
    one = mapper_train.train(workdir=sys.argv[1] + "/one", verbose=False, devices=jax.devices()[:1], **kw)
    four = mapper_train.train(workdir=sys.argv[1] + "/four", **kw)
    for a, b in zip(jax.tree_util.tree_leaves(one["params"]), jax.tree_util.tree_leaves(four["params"])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # raw weights reach ~150: relative
    assert max(np.abs(a).max() for a in jax.tree_util.tree_leaves(four["params"])) > 0
    print("OK")
""")


def test_mapper_training_on_four_devices_equals_one(tmp_path):
    """20 steps, batch 4 split over 4 devices: the mappers equal the one-device run to 1e-5 (relative)."""
    script = tmp_path / "child.py"
    script.write_text(MAPPER_CHILD)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
    assert "running on 4 devices (1 process): 1 latents per device" in r.stdout


def test_latent_optimization_on_four_devices_equals_one(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
    assert "running on 4 devices (1 process): 2 pairs per device" in r.stdout


def test_small_memory_budget_chooses_smaller_sweep_calls_with_the_same_result(capsys):
    """XLA's memory analysis under an artificial budget: fewer images per call, then fewer channels per call,
    the same fs3 to float rounding; a budget below one image x one channel fails before running."""
    import re

    import numpy as np
    import pytest

    import styleclip_jax as sc
    from styleclip_jax.editing import global_direction as gd
    from styleclip_jax.errors import ConfigError
    from tiny_models import linear_embedder, tiny_generator
    G = tiny_generator(cfg=sc.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8,
                                              mapping_layers=2))
    clip = linear_embedder(8)
    mean, std = gd.style_stats(G, num_samples=300, seed=5, batch_size=128)
    kw = dict(ws=gd.sample_ws(G, 6, seed=1), block_size=8, max_resolution=4)  # one layer of 8 channels

    def sweep(budget):
        capsys.readouterr()
        fs3 = gd.channel_relevance(G, clip, mean, std, memory_budget=budget, **kw)
        ch, im = map(int, re.search(r"(\d+) channels x (\d+) images per device", capsys.readouterr().out).groups())
        return fs3, ch, im

    ref, ch, im = sweep(None)  # CPU without a budget: the fixed defaults (one call per block, all images)
    assert (ch, im) == (8, 6)
    fs3, ch, im = sweep(300_000)  # measured: 8 channels x 6 images need ~0.5 MB, 8 x 1 ~0.17 MB
    assert ch == 8 and im < 6
    np.testing.assert_allclose(fs3, ref, atol=1e-6)
    fs3, ch, im = sweep(100_000)
    assert ch < 8 and im == 1
    np.testing.assert_allclose(fs3, ref, atol=1e-6)
    with pytest.raises(ConfigError, match=r"needs [\d,]+ bytes per device at batch 1 but 1,000 are available"):
        gd.channel_relevance(G, clip, mean, std, memory_budget=1000, progress=False, **kw)


def test_small_memory_budget_splits_latent_optimization_into_programs(capsys):
    import numpy as np
    import pytest

    import jax
    from styleclip_jax import parallel
    from styleclip_jax.editing import latent_optimization as lo
    from styleclip_jax.errors import ConfigError
    from tiny_models import tiny_generator, unit
    G, clip = tiny_generator(), _native_tiny_clip()
    w = G.mapping(jax.random.normal(jax.random.PRNGKey(3), (2, G.cfg.z_dim)), truncation_psi=0.7)
    t = unit(7, 2, clip.embed_dim)
    cfg = lo.LatentOptConfig(steps=1, lr=0.05)  # 4 pairs
    one, m1 = lo.optimize(G, clip, w, t, cfg, verbose=False)
    # a budget that holds the program of 2 pairs (XLA's analysis of the compiled chunk) but not of 4
    budget = lo._chunk_bytes(G, clip, None, w[:1], {}, t[:1], cfg, parallel.data_mesh(), 2)
    capsys.readouterr()
    split, m2 = lo.optimize(G, clip, w, t, cfg, memory_budget=budget)
    assert "running on 1 device (1 process): 2 pairs per device (4 pairs in programs of 2" in capsys.readouterr().out
    np.testing.assert_allclose(np.asarray(split), np.asarray(one), atol=2e-6)
    for k in ("clip_cos_after", "l2_sum_sq", "loss_curve"):
        np.testing.assert_allclose(m2[k], m1[k], atol=2e-6)
    np.testing.assert_array_equal(m2["src_idx"], m1["src_idx"])
    with pytest.raises(ConfigError, match="latent optimisation, pairs per device: the program needs"):
        lo.optimize(G, clip, w, t, cfg, memory_budget=1000, verbose=False)


def _native_tiny_clip():
    """A 1-layer random CLIP on 16-px images through the native implementation (no transformers import)."""
    from styleclip_jax.models import clip_net
    from styleclip_jax.models.clip import CLIP
    cfg = clip_net.Config.from_dict(dict(
        text_config=dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=8),
        vision_config=dict(image_size=16, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2), projection_dim=16))
    return CLIP(clip_net.CLIPNet(cfg), None, clip_net.init_params(0, cfg))


def test_memory_fields_are_checked_in_one_line():
    import pytest
    from ml_collections import config_dict

    from styleclip_jax.errors import ConfigError
    from styleclip_jax.memory import available_bytes, memory_args
    c = config_dict.ConfigDict({"memory_fraction": 0.5, "memory_budget_mb": 1.5})
    assert memory_args(c) == {"memory_fraction": 0.5, "memory_budget": 1572864}
    assert available_bytes(0.5, None) is None  # a CPU reports no memory: no budget, no probing
    for field, value, msg in (("memory_fraction", 2.0, r"memory_fraction=2.0: expected a number in \(0, 1\]"),
                              ("memory_budget_mb", -1.0, "memory_budget_mb=-1.0: expected a positive number")):
        bad = config_dict.ConfigDict({**c.to_dict(), field: value})
        with pytest.raises(ConfigError, match=msg):
            memory_args(bad)
