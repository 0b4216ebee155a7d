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


MODES_CHILD = textwrap.dedent("""
    import functools, pathlib, sys
    import jax, jax.numpy as jnp, numpy as np
    import styleclip_jax as sc
    from configs import generate as generate_config
    from styleclip_jax import parallel, shipped
    from styleclip_jax.editing import global_direction as gd, invert
    from styleclip_jax.editing.mapper import Mapper
    from styleclip_jax.jobs import generate, mapper_infer
    from styleclip_jax.models.mapper import MapperConfig, init_mapper_params
    from tiny_models import tiny_generator
    assert jax.device_count() == 4
    one = jax.devices()[:1]

    def close(a, b, atol):
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            assert np.shape(x) == np.shape(y), (np.shape(x), np.shape(y))
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)

    G = tiny_generator()
    # statistics: 300 samples in calls of 64 (16 per device; the last call padded)
    close(gd.style_stats(G, 300, batch_size=64, devices=one), gd.style_stats(G, 300, batch_size=64), 1e-6)
    # generation rows with random noise (each image from its own seed's key)
    fn = functools.partial(generate._sample_rows, noise_mode="random")
    consts = (G, jnp.float32(0.7), jnp.int32(G.num_ws))
    rows = {"z": sc.seeds_to_z(list(range(7)), G.cfg.z_dim),
            "key": np.stack([np.asarray(jax.random.PRNGKey(s)) for s in range(7)])}
    close(parallel.map_batched(fn, consts, rows, 3, devices=one), parallel.map_batched(fn, consts, rows, 1), 1e-5)
    # mapper inference
    w = np.asarray(G.mapping(jax.random.normal(jax.random.PRNGKey(3), (5, G.cfg.z_dim)), truncation_psi=0.7))
    mcfg = MapperConfig(latent_dim=G.cfg.w_dim)
    m = Mapper(init_mapper_params(jax.random.PRNGKey(4), mcfg), mcfg)
    close(mapper_infer.edit(G, m, w, 1.0, batch_size=4, devices=one), mapper_infer.edit(G, m, w, 1.0, batch_size=4),
          1e-5)
    # inversion refinement: 5 images over 4 devices (3 padding rows)
    x = np.asarray(G.synthesis(w))
    a, ma = invert.refine(G, None, x, 5, lr=0.05, devices=one)
    b, mb = invert.refine(G, None, x, 5, lr=0.05)
    close((a, ma["mse_after"], ma["loss_curve"]), (b, mb["mse_after"], mb["loss_curve"]), 2e-5)
    # a global-direction study in the shapes world: renders and CLIP embeddings as rows over the devices
    Gs, clip = sc.load_generator("shapes"), sc.load_clip("shapes")
    mean, std = gd.load_stats(shipped.SHAPES_STATS, Gs)
    fs3 = gd.load_fs3(shipped.SHAPES_FS3, Gs)
    ws = gd.sample_ws(Gs, 3, seed=11)
    kw = dict(prompt_pairs=[("a shape", "a red shape")], alphas=[0.0, 1.5], betas=[0.1], fs3=fs3, mean=mean,
              std=std, max_images_per_call=4)
    r1, r4 = gd.study(Gs, clip, ws, devices=one, **kw), gd.study(Gs, clip, ws, **kw)
    close([r1[k] for k in ("source", "edited", "clip_before", "clip_after")],
          [r4[k] for k in ("source", "edited", "clip_before", "clip_after")], 2e-5)
    # the generate job itself (4 devices) against the library on one device
    c = generate_config.get_config("shapes")
    c.seeds, c.noise_mode, c.batch_size = "0-5", "random", 4
    generate.run(c, sys.argv[1])
    got = np.load(pathlib.Path(sys.argv[1]) / "images.npz")["images"]
    rows = {"z": sc.seeds_to_z(list(range(6)), Gs.cfg.z_dim),
            "key": np.stack([np.asarray(jax.random.PRNGKey(s)) for s in range(6)])}
    ref = parallel.map_batched(fn, (Gs, jnp.float32(0.7), jnp.int32(Gs.num_ws)), rows, 6, devices=one)[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    print("OK")
""")


def test_every_row_parallel_mode_on_four_devices_equals_one(tmp_path):
    """Statistics, generation, mapper inference, inversion refinement, a global-direction study and the generate
    job: rows split over 4 forced CPU devices (padded where they do not divide) give the one-device results."""
    script = tmp_path / "child.py"
    script.write_text(MODES_CHILD)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "gen")], capture_output=True, text=True,
                       env=env, timeout=900, cwd=str(REPO))
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
    assert "running on 4 devices (1 process): 1 images per device" in r.stdout, r.stdout


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


def test_a_probe_whose_compile_runs_out_of_memory_does_not_fit():
    """On an H100 the sweep's probe of a too-large candidate batch failed while COMPILING (cuDNN autotuning
    allocates real buffers: RESOURCE_EXHAUSTED). That must read as "does not fit", so the fit goes on to a
    smaller batch; any other compile error still raises."""
    import jax
    import jax.numpy as jnp
    import pytest

    from styleclip_jax import memory

    class FailingCompile:  # a jitted stand-in whose compile fails like the H100's autotuner did
        def __init__(self, message):
            self.message = message

        def lower(self, *a, **k):
            return self

        def compile(self):
            raise jax.errors.JaxRuntimeError(self.message)

    oom = FailingCompile("NOT_FOUND: All configs failed during profiling. EXECUTION FAILED: RESOURCE_EXHAUSTED: "
                         "Out of memory while trying to allocate 20.05GiB")
    assert memory.program_bytes(oom, jnp.zeros(3)) == memory.DOES_NOT_FIT
    with pytest.raises(jax.errors.JaxRuntimeError, match="INVALID_ARGUMENT"):
        memory.program_bytes(FailingCompile("INVALID_ARGUMENT: bad"), jnp.zeros(3))
    real = memory.program_bytes(jax.jit(lambda x: x * 2), jax.ShapeDtypeStruct((1000,), jnp.float32))
    assert 4000 <= real < memory.DOES_NOT_FIT

    # bytes grow 100 per item; candidates above 6 fail to compile: the fit lands on the largest that compiles
    def bytes_at(b):
        return memory.program_bytes(oom) if b > 6 else 100 * b
    assert memory.fit_batch(bytes_at, 50, 10_000, "probe") == 6


def test_mapper_training_that_does_not_fit_fails_before_its_first_step(tmp_path):
    """The batch is a hyper-parameter, so mapper training does not shrink it: a step over the memory budget is a
    one-line ConfigError with needed vs available bytes, before any step runs or any checkpoint is written."""
    import pytest

    from styleclip_jax.editing.mapper import MapperTrainConfig, sample_latents
    from styleclip_jax.errors import ConfigError
    from styleclip_jax.jobs import mapper_train
    from styleclip_jax.models.mapper import MapperConfig
    from tiny_models import tiny_generator, unit
    G, clip = tiny_generator(), _native_tiny_clip()
    kw = dict(G=G, clip=clip, w_train=sample_latents(G, 8, 0), w_test=sample_latents(G, 2, 1),
              text_embs=unit(5, 1, clip.embed_dim), prompts=["p"], mcfg=MapperConfig(latent_dim=G.cfg.w_dim),
              tcfg=MapperTrainConfig(optimizer="adam", batch_size=2), max_steps=3, val_every=0, image_every=0,
              log_every=0, tensorboard=False, verbose=False)
    with pytest.raises(ConfigError, match=r"mapper training: one step of 2 latents per device needs [\d,]+ bytes per "
                                          r"device but 1,000 are available"):
        mapper_train.train(workdir=tmp_path / "small", memory_budget=1000, **kw)
    assert not (tmp_path / "small" / "run.json").exists()
    assert not list((tmp_path / "small").glob("checkpoints/*/"))
    out = mapper_train.train(workdir=tmp_path / "fits", memory_budget=2 ** 30, **kw)  # a budget that holds it
    assert out["step"] == 3
