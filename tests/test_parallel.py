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


def test_latent_optimization_on_four_devices_equals_one(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
    assert "running on 4 devices (1 process): 2 pairs per device" in r.stdout
