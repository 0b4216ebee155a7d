"""Two processes on this machine (jax.distributed over 127.0.0.1, CPU backend with gloo collectives, 2 forced
devices each) give the one-process results: the shapes-world fs3 sweep (each process computes its own blocks,
no block twice, only process 0 writes), StyleSpace statistics and generated images (rows over the devices of
both processes), 20 mapper-training steps and a latent optimisation; a sweep stopped
mid-way by both processes is finished by ONE process into the identical array; main.py --distributed."""
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import json, os, sys, time
    out, pid, nproc, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    import jax
    if nproc > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # cross-process collectives on CPU
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
    writes, watching = [], [True]
    if pid != 0:  # every file this process opens for writing (orbax's own training checkpoints excepted)
        def audit(event, args):
            if not watching:
                return
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                mode, flags = args[1] or "", args[2] or 0
                if (any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)) \\
                        and str(args[0]).startswith(out) and "/checkpoints/" not in str(args[0]):
                    writes.append(str(args[0]))
            elif event in ("os.rename", "os.replace", "os.mkdir") and str(args[0]).startswith(out):
                writes.append(str(args[0]))
        sys.addaudithook(audit)
    import numpy as np
    import styleclip_jax as sc
    from styleclip_jax.editing import global_direction as gd
    from styleclip_jax.editing.mapper import MapperTrainConfig, sample_latents
    from styleclip_jax.jobs import mapper_train
    from styleclip_jax.models.mapper import MapperConfig
    assert jax.device_count() == 4, jax.devices()  # 2 processes x 2 devices, or 1 process x 4
    t0 = time.time()
    G, clip = sc.load_generator("shapes"), sc.load_clip("shapes")
    mean, std = gd.style_stats(G, num_samples=256, seed=5, batch_size=256)
    ws = gd.sample_ws(G, 4, seed=0)
    # 32 channels of the 4-px layer in 4 blocks; the blocks run on 2 devices in both set-ups (the same
    # per-block programs: bit-identical blocks)
    kw = dict(ws=ws, max_resolution=4, block_size=8, progress=False, devices=jax.local_devices()[:2])
    res = {}
    tag = "two" if nproc > 1 else "one"
    if nproc > 1:  # both processes stop after 1 round (2 blocks written), as if killed
        assert gd.channel_relevance(G, clip, mean, std, out_dir=out + "/killed", stop_after_blocks=1, **kw) is None
        done = []
        t = time.time()
        res["fs3"] = gd.channel_relevance(G, clip, mean, std, out_dir=out + "/fresh", computed_blocks=done,
                                          **dict(kw, progress=True))
        res["sweep_seconds"] = time.time() - t
    else:  # one process finishes the killed sweep, then the one-process reference
        done = []
        res["resumed"] = gd.channel_relevance(G, clip, mean, std, out_dir=out + "/killed", computed_blocks=done, **kw)
        t = time.time()
        res["fs3"] = gd.channel_relevance(G, clip, mean, std, **kw)
        res["sweep_seconds"] = time.time() - t
    res["sweeps_end"] = time.time() - t0
    # row-parallel work over the mesh of every process (parallel.map_batched): the statistics above (256
    # samples) and 7 generated images with per-seed random noise (one padded call of 4 x 2 rows)
    res["stats"] = np.concatenate([np.concatenate([mean[k], std[k]]) for k in sorted(mean)])
    import functools
    import jax.numpy as jnp
    from styleclip_jax import parallel
    from styleclip_jax.jobs import generate
    rows = {"z": sc.seeds_to_z(list(range(7)), G.cfg.z_dim),
            "key": np.stack([np.asarray(jax.random.PRNGKey(s)) for s in range(7)])}
    res["generated"] = parallel.map_batched(functools.partial(generate._sample_rows, noise_mode="random"),
                                            (G, jnp.float32(0.7), jnp.int32(G.num_ws)), rows, 2)[0]
    # the mapper with tiny random networks (the 16-px generator of tiny_models, a 1-layer native CLIP)
    from styleclip_jax.models import clip_net
    from styleclip_jax.models.clip import CLIP
    from tiny_models import tiny_generator, unit
    ccfg = clip_net.Config.from_dict(dict(
        text_config=dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=8),
        vision_config=dict(image_size=16, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2), projection_dim=16))
    G, clip = tiny_generator(), CLIP(clip_net.CLIPNet(ccfg), None, clip_net.init_params(0, ccfg))
    w_train, w_test = sample_latents(G, 16, 0), sample_latents(G, 2, 1)
    text = np.asarray(unit(5, 1, clip.embed_dim))
    mapper = mapper_train.train(G=G, clip=clip, w_train=w_train, w_test=w_test, text_embs=text, prompts=["red"],
                                workdir=f"{out}/mapper_{tag}", mcfg=MapperConfig(latent_dim=G.cfg.w_dim),
                                tcfg=MapperTrainConfig(optimizer="adam", batch_size=4), max_steps=20,
                                val_every=0, image_every=0, log_every=0, ckpt_every=0, tensorboard=False,
                                verbose=(pid == 0))
    res["mapper_end"] = time.time() - t0
    res["mapper"] = np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(mapper["params"])])
    # latent optimisation: 2 sources x 2 prompts, one pair per device
    from styleclip_jax.editing import latent_optimization as lo
    edited, m = lo.optimize(G, clip, w_test, unit(6, 2, clip.embed_dim), lo.LatentOptConfig(steps=2, lr=0.05),
                            verbose=False)
    res["lo"], res["lo_loss"] = np.asarray(edited), m["loss_curve"]
    watching.clear()  # the test's own result files follow
    np.savez(f"{out}/result_{tag}_{pid}.npz", **res)
    with open(f"{out}/log_{tag}_{pid}.json", "w") as f:
        json.dump({"computed": done, "writes": writes}, f)
    print("OK", flush=True)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path, nproc):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={4 // nproc}",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(i), str(nproc), port], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(nproc)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=400))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0 and "OK" in o, e[-3000:]
    return outs


def _units(blocks):
    return sorted(tuple(b) for b in blocks)


def test_two_processes_equal_one_and_one_process_finishes_their_sweep(tmp_path):
    two = _launch(tmp_path, 2)
    killed = sorted(p.name for p in (tmp_path / "killed" / "blocks").iterdir())
    assert len(killed) == 2 and not (tmp_path / "killed" / "fs3.npy").exists()  # 1 round x 2 processes
    one = _launch(tmp_path, 1)

    logs = {(t, p): json.loads((tmp_path / f"log_{t}_{p}.json").read_text()) for t, p in
            (("two", 0), ("two", 1), ("one", 0))}
    res = {(t, p): np.load(tmp_path / f"result_{t}_{p}.npz") for t, p in logs}
    ref = res["one", 0]["fs3"]
    assert ref.shape == (32, 64)
    # each of the two processes computed half of the 4 blocks, none twice; only process 0 wrote files
    a, b = _units(logs["two", 0]["computed"]), _units(logs["two", 1]["computed"])
    assert len(a) == len(b) == 2 and not set(a) & set(b)
    assert len(set(a) | set(b)) == 4 and len(list((tmp_path / "fresh" / "blocks").iterdir())) == 4
    assert logs["two", 1]["writes"] == [], logs["two", 1]["writes"]
    assert "process 0 of 2: computed 2 of 4 unfinished blocks (16 channels)" in two[0][1]  # stderr
    assert "process 1 of 2: computed 2 of 4 unfinished blocks (16 channels)" in two[1][1]
    assert "running on 4 devices (2 processes, 2 devices each): 4 channels x 4 images per device" in two[0][0]
    assert "running on" not in two[1][0] + two[1][1]  # progress and the run line: process 0 only
    # both processes return the same whole array (bit for bit), equal to one process's to float rounding: the
    # per-block programs are the same, but XLA:CPU's kernels may round differently with 2 devices per process
    # than with 4 in one (bit-identical on earlier machines; 3.4e-6 at most on 2026-12-07's, 1.3e-5 with the
    # hue-layer generator, whose 4-px channels change 4 images less); a block computed twice, swapped or
    # missing would differ by ~0.1 (fs3 entries are 0.01-0.3)
    np.testing.assert_array_equal(res["two", 1]["fs3"], res["two", 0]["fs3"])
    np.testing.assert_allclose(res["two", 0]["fs3"], ref, rtol=0, atol=5e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "fresh" / "fs3.npy"), res["two", 0]["fs3"])
    # ONE process finished the sweep the two had stopped: it computed exactly the 2 missing blocks
    resumed = _units(logs["one", 0]["computed"])
    assert len(resumed) == 2 and not {f"L{li:02d}_C{s:05d}.npy" for li, s, _ in resumed} & set(killed)
    np.testing.assert_allclose(res["one", 0]["resumed"], ref, rtol=0, atol=5e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "killed" / "fs3.npy"), res["one", 0]["resumed"])
    # statistics and generation split over the devices of both processes == one process, gathered on both
    # (the statistics bit for bit; the images to float rounding: 2 devices per process schedule their convs
    # differently from 4 in one process, 5.7e-7 at most when measured)
    for p in (0, 1):
        np.testing.assert_array_equal(res["two", p]["stats"], res["one", 0]["stats"])
        np.testing.assert_allclose(res["two", p]["generated"], res["one", 0]["generated"], atol=1e-5)
    np.testing.assert_array_equal(res["two", 1]["generated"], res["two", 0]["generated"])
    assert res["one", 0]["generated"].shape == (7, 32, 32, 3)
    # 20 mapper steps, batch 4 over 2 processes x 2 devices == over one process's 4 devices
    m1, m2 = res["one", 0]["mapper"], res["two", 0]["mapper"]
    np.testing.assert_allclose(m2, m1, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(res["two", 1]["mapper"], m2)
    assert np.abs(m1).max() > 0
    # latent optimisation, pairs sharded over 2 processes x 2 devices, gathered on both == one process
    for k in ("lo", "lo_loss"):
        for p in (0, 1):
            np.testing.assert_allclose(res["two", p][k], res["one", 0][k], atol=1e-5)
    assert res["one", 0]["lo"].shape == (4, 6, 16)
    for k in ("sweep_seconds", "sweeps_end", "mapper_end"):
        print(k, "two processes", float(res["two", 0][k]), "one process", float(res["one", 0][k]))


def test_main_distributed_flags_run_the_sweep_in_two_processes(tmp_path):
    """`main.py --distributed` with explicit coordinator / process flags: the two processes share the sweep,
    process 0 alone prints and writes."""
    port = str(_free_port())
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    args = ["--mode=global_direction_precompute", f"--workdir={tmp_path / 'out'}", "--distributed",
            f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--config.cache_dir={tmp_path / 'c'}",
            "--config.stats.samples=256", "--config.sweep.images=2", "--config.sweep.max_resolution=4"]
    procs = [subprocess.Popen([sys.executable, str(REPO / "main.py"), *args, f"--process_id={i}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    (o0, e0), (o1, e1) = outs
    assert o0.startswith("running on 4 devices (2 processes)\n"), o0
    assert "running on 4 devices (2 processes, 2 devices each): 8 channels x 2 images per device" in o0
    assert o1 == ""
    for i, e in enumerate((e0, e1)):  # 32 channels of the 4-px layer in 2 blocks of 16: 1 each
        assert f"process {i} of 2: computed 1 of 2 unfinished blocks (16 channels)" in e, e
    fs3 = np.load(tmp_path / "out" / "fs3.npy")
    assert fs3.shape == (32, 64)
    # unit rows, and zero rows for the 6 hue channels this layer leaves constant (--hue-layer generator)
    norms = np.linalg.norm(fs3, axis=1)
    np.testing.assert_allclose(norms[6:], 1.0, atol=1e-5)
    assert not fs3[:6].any()


def test_process_flags_need_distributed():
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "--mode=generate", "--process_id=1"],
                       capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == \
        "error: --coordinator_address/--num_processes/--process_id need --distributed", r.stderr
