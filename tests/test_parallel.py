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
