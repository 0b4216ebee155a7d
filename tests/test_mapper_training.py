"""Latent mappers: official import, training (loss decrease, exact resume in-process and after
SIGKILL, K prompts vmapped == K single runs), level switches, inference job, shapes-world semantics.

Tiny random models are written to folders (generator via ``checkpoints.save_params``, CLIP via
``save_pretrained`` + the shapes tokenizer files) so that the job code path, the ``main.py`` subprocess
and the in-process runs all load exactly the same weights.
"""
import copy
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import styleclip_jax as sc
from styleclip_jax import checkpoints
from styleclip_jax.editing import mapper as M
from styleclip_jax.jobs import mapper_train
from styleclip_jax.models.mapper import MapperConfig
from tiny_models import tiny_clip, tiny_generator

REPO = pathlib.Path(__file__).resolve().parents[1]
SHAPES_TOKENIZER = REPO / "styleclip_jax" / "assets" / "shapes_clip"
PROMPTS = ["a green shape", "a red shape"]
STEPS = 120


def _config(name, preset=None):
    spec = importlib.util.spec_from_file_location(f"_cfg_{name}", REPO / "configs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(preset)


def _set(c, **fields):
    """c.a.b = v for fields given as a__b=v."""
    for k, v in fields.items():
        *sections, leaf = k.split("__")
        node = c
        for sec in sections:
            node = node[sec]
        node[leaf] = v
    return c


def _save_tiny_generator(path):
    G = tiny_generator()
    checkpoints.save_params(path, jax.tree_util.tree_map(np.asarray, G.params),
                            {"kind": "stylegan2_generator", **G.cfg.to_dict()})
    return path


def _save_tiny_clip(path):
    """``tiny_clip()`` with a text vocabulary sized for the shapes tokenizer, saved with that tokenizer.

    Made pixel-sensitive: logit scale 100 as the released CLIP, and zero class / position embeddings so
    the class token is built from the image patches only (a plain random CLIP's embedding barely depends
    on the image: gradients ~1e-8 at the mapper weights, below Ranger's eps, so nothing would train)."""
    from transformers import FlaxCLIPModel
    base = tiny_clip()
    vocab = json.loads((SHAPES_TOKENIZER / "vocab.json").read_text())
    cfg = copy.deepcopy(base.module.config)
    cfg.text_config.vocab_size = len(vocab)
    cfg.text_config.eos_token_id = cfg.text_config.pad_token_id = vocab["<|endoftext|>"]
    cfg.text_config.bos_token_id = vocab["<|startoftext|>"]
    params = jax.tree_util.tree_map(np.asarray, base.params)
    tok = params["text_model"]["embeddings"]["token_embedding"]
    tok["embedding"] = np.asarray(0.02 * jax.random.normal(jax.random.PRNGKey(9), (len(vocab), tok["embedding"].shape[1])))
    emb = params["vision_model"]["embeddings"]
    emb["class_embedding"] = np.zeros_like(emb["class_embedding"])
    emb["position_embedding"]["embedding"] = np.zeros_like(emb["position_embedding"]["embedding"])
    params["logit_scale"] = np.asarray(np.log(100.0), np.float32)
    FlaxCLIPModel(cfg, _do_init=False).save_pretrained(path, params=params)
    for f in SHAPES_TOKENIZER.iterdir():
        if f.suffix in (".json", ".txt") and f.name != "config.json":
            shutil.copy(f, pathlib.Path(path) / f.name)
    return path


@pytest.fixture(scope="module")
def tiny_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mapper_assets")
    return {"generator": str(_save_tiny_generator(root / "G16")), "clip": str(_save_tiny_clip(root / "clip"))}


def _train_config(assets, **over):
    c = _config("mapper_train", "official")  # Ranger, l2 0.8 as StyleCLIP
    _set(c, generator=assets["generator"], clip_model=assets["clip"], prompts=json.dumps(PROMPTS[:1]),
         data__train_size=64, data__test_size=4, log__test_batch_size=4, optim__max_steps=STEPS, log__every=1,
         log__val_every=40, log__ckpt_every=10, log__image_every=STEPS, log__num_samples=2, log__tensorboard=False)
    return _set(c, **over)


def _cli_args(c):
    keys = ["generator", "clip_model", "prompts", "data.train_size", "data.test_size", "log.test_batch_size",
            "optim.max_steps", "log.every", "log.val_every", "log.ckpt_every", "log.image_every", "log.num_samples",
            "log.tensorboard"]
    def get(k):
        node = c
        for part in k.split("."):
            node = node[part]
        return node
    return [f"--config.{k}={get(k)}" for k in keys]


def _assert_tree_close(a, b, atol=1e-5, rtol=1e-6):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol)


class _KilledRun:
    """`main.py --mode=mapper_train` in a subprocess, SIGKILLed by a watchdog thread once 25 steps are
    logged (past the checkpoints at steps 10 and 20, well before step 120). Started before the in-process
    reference run so that both compile in parallel."""

    def __init__(self, config, workdir):
        self.workdir = pathlib.Path(workdir)
        cmd = [sys.executable, str(REPO / "main.py"), "--mode=mapper_train", f"--workdir={workdir}",
               f"--config={REPO / 'configs' / 'mapper_train.py'}:official"] + _cli_args(config)
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.killed_at = None
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self, min_lines=25, timeout=300):
        metrics, deadline = self.workdir / "metrics.jsonl", time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            n = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
            if n >= min_lines:
                self.proc.send_signal(signal.SIGKILL)
                self.killed_at = n
                break
            time.sleep(0.005)
        if self.proc.poll() is None and self.killed_at is None:
            self.proc.kill()

    def result(self):
        self.thread.join(timeout=400)
        self.proc.wait(timeout=60)
        return self.proc.returncode, self.killed_at, self.proc.stderr.read().decode()[-3000:]


@pytest.fixture(scope="module")
def killed_run(tiny_assets, tmp_path_factory):
    run = _KilledRun(_train_config(tiny_assets), tmp_path_factory.mktemp("killed_run"))
    yield run
    if run.proc.poll() is None:
        run.proc.kill()


@pytest.fixture(scope="module")
def reference(tiny_assets, killed_run, tmp_path_factory):
    """One uninterrupted single-prompt run through the job code; shared by several tests."""
    workdir = tmp_path_factory.mktemp("ref_run")
    config = _train_config(tiny_assets)
    kw = mapper_train.prepare(config)
    out = mapper_train.train(workdir=workdir, **kw)
    return {"config": config, "kw": kw, "out": out, "workdir": workdir}


# ----------------------------------------------------------------------------- imported mapper
def test_official_mapper_pt_loads_and_reproduces_fixture(fixtures_dir, tmp_path):
    sys.path.insert(0, str(fixtures_dir))
    import build_from_recipe
    recipe = json.loads((fixtures_dir / "mapper" / "recipe.json").read_text())
    pt = tmp_path / "mapper.pt"
    build_from_recipe.write_pt(recipe, build_from_recipe.build(recipe), pt)
    e = np.load(fixtures_dir / "mapper" / "expected.npz")
    m = sc_load_mapper(pt)
    assert m.config.pixelnorm_axis == "rows" and m.config.mapper_type == "LevelsMapper"
    np.testing.assert_allclose(np.asarray(m(e["w"])), e["delta"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(m.apply(e["w"])), e["w_hat"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda mm, w: mm.apply(w, alpha=0.5))(m, e["w"])),
                               e["w"] + 0.5 * (e["w_hat"] - e["w"]), atol=1e-5)
    # converted folder: same numbers
    spec = importlib.util.spec_from_file_location("_convert_mapper", REPO / "checkpoints_convert" / "convert_mapper.py")
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    conv.main([f"--src={pt}", f"--dst={tmp_path / 'conv'}"])
    m2 = sc_load_mapper(tmp_path / "conv")
    np.testing.assert_allclose(np.asarray(m2.apply(e["w"])), e["w_hat"], atol=1e-5)


def sc_load_mapper(path):
    return getattr(sc, "load_mapper", M.load_mapper)(path)


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DEFAULT_MATMUL_PRECISION": "highest",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ----------------------------------------------------------------------------- training
def test_loss_decreases_and_outputs(reference):
    out, wd, kw = reference["out"], reference["workdir"], reference["kw"]
    assert out["finished"] and out["step"] == STEPS and out["resumed_from"] == 0
    recs = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
    train = np.array([r["loss"] for r in recs if r["split"] == "train"])
    assert len(train) == STEPS
    assert train[-20:].mean() < train[:20].mean() - 1e-3, (train[:20].mean(), train[-20:].mean())
    # validation loss of the trained mapper beats the initial mapper on held-out latents
    init = M.current_params(M.init_train_state(jax.random.PRNGKey(0), jax.random.PRNGKey(1), kw["mcfg"],
                                               kw["tcfg"], 1), kw["tcfg"])
    v0 = M.eval_losses(kw["G"], kw["clip"], None, init, jnp.asarray(kw["w_test"]), kw["text_embs"],
                       mcfg=kw["mcfg"], tcfg=kw["tcfg"])
    assert out["best_val"][0] < float(v0["loss"][0]) - 1e-3
    # exported mappers load and record their variant; the final one equals the returned params
    m = sc_load_mapper(wd / "final" / "00")
    assert m.prompt == PROMPTS[0] and m.config.pixelnorm_axis == "rows" and m.config.latent_dim == 16
    _assert_tree_close(m.params, jax.tree_util.tree_map(lambda a: a[0], out["params"]), atol=0, rtol=0)
    best = sc_load_mapper(wd)  # a one-prompt workdir resolves to best/00
    assert best.info["step"] in (40, 80, 120)
    assert (wd / "samples" / f"step_{STEPS:06d}.png").is_file()
    assert json.loads((wd / "run.json").read_text())["prompts"] == PROMPTS[:1]


def test_stop_and_resume_in_process_equals_uninterrupted(reference, tmp_path):
    kw = reference["kw"]
    first = mapper_train.train(workdir=tmp_path, stop_after=37, verbose=False, **kw)  # "killed" after step 37
    assert not first["finished"] and not (tmp_path / "final").exists()
    second = mapper_train.train(workdir=tmp_path, verbose=False, **kw)
    assert second["resumed_from"] == 30 and second["finished"]
    _assert_tree_close(second["params"], reference["out"]["params"], atol=0, rtol=0)
    steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["split"] == "train"]
    assert steps == list(range(1, STEPS + 1))  # no duplicated lines from the replayed steps 31-37


def test_sigkill_subprocess_then_resume_equals_uninterrupted(reference, killed_run):
    rc, killed_at, err = killed_run.result()
    assert killed_at is not None and rc == -signal.SIGKILL, f"the subprocess was not killed mid-run (rc {rc}): {err}"
    wd = killed_run.workdir
    assert not (wd / "final").exists()
    # resume in this process, with the models the job loaded for the reference (same compiled step)
    out = mapper_train.train(workdir=wd, verbose=False, **reference["kw"])
    assert 10 <= out["resumed_from"] < STEPS and out["finished"]
    _assert_tree_close(out["params"], reference["out"]["params"], atol=0, rtol=0)
    steps = [json.loads(l)["step"] for l in (wd / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["split"] == "train"]
    assert steps == list(range(1, STEPS + 1))


def test_k_prompts_vmapped_equal_single_runs(reference, tmp_path):
    kw = reference["kw"]
    text = np.concatenate([kw["text_embs"], np.asarray(kw["clip"].encode_texts(PROMPTS[1:2]))])
    kw2 = dict(kw, prompts=PROMPTS, text_embs=text, max_steps=60, val_every=0, ckpt_every=0, image_every=0,
               log_every=0, verbose=False)
    both = mapper_train.train(workdir=tmp_path / "k2", **kw2)
    for k in range(2):
        alone = mapper_train.train(workdir=tmp_path / f"k1_{k}", **dict(kw2, prompts=PROMPTS[k:k + 1], text_embs=text[k:k + 1]))
        _assert_tree_close(jax.tree_util.tree_map(lambda a: a[k:k + 1], both["params"]), alone["params"],
                           atol=1e-5, rtol=1e-6)
    p0, p1 = (jax.tree_util.tree_leaves(both["params"])[0][k] for k in range(2))
    assert np.abs(p0 - p1).max() > 1e-3  # the two prompts really trained different mappers
    assert [sc_load_mapper(tmp_path / "k2" / "final" / f"{k:02d}").prompt for k in range(2)] == PROMPTS


def test_fine_mapper_off_leaves_rows_8_plus_untouched(tmp_path):
    """LevelsMapper with the fine level off, on the W+ of a 64-px generator (num_ws 10, rows 8-9 fine):
    the edit never touches rows 8+, whatever the (perturbed, i.e. 'trained') weights."""
    gcfg = sc.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=64, channel_base=128, channel_max=16)
    assert gcfg.num_ws == 10
    mcfg = MapperConfig(latent_dim=16, no_fine_mapper=True)
    tcfg = M.MapperTrainConfig()
    params = M.current_params(M.init_train_state(jax.random.PRNGKey(0), jax.random.PRNGKey(1), mcfg, tcfg, 1), tcfg)
    assert set(params) == {"course_mapping", "medium_mapping"}  # no fine params to train
    leaves, tree = jax.tree_util.tree_flatten(jax.tree_util.tree_map(lambda a: a[0], params))
    keys = jax.random.split(jax.random.PRNGKey(5), len(leaves))
    trained = jax.tree_util.tree_unflatten(tree, [x + 10 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    M.Mapper(trained, mcfg, {"prompt": "p"}).save(tmp_path / "m")
    m = sc_load_mapper(tmp_path / "m")
    assert m.config.no_fine_mapper and not m.config.no_coarse_mapper and m.config.pixelnorm_axis == "rows"
    w = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (3, gcfg.num_ws, 16)))
    w_hat = np.asarray(m.apply(w, alpha=2.0))
    np.testing.assert_array_equal(w_hat[:, 8:], w[:, 8:])
    assert np.abs(w_hat[:, :8] - w[:, :8]).min(axis=-1).min() > 0  # every row < 8 moves
    assert np.abs(np.asarray(m(w))[:, 8:]).max() == 0


def test_config_errors(tiny_assets, reference, tmp_path):
    # the ID term is used only with ArcFace weights
    assert mapper_train.build_configs(_train_config(tiny_assets))[1].id_lambda == 0.0
    assert mapper_train.build_configs(_train_config(tiny_assets, arcface="x.pth"))[1].id_lambda == 0.1
    with pytest.raises(ValueError, match="--config.optim.optimizer"):
        mapper_train.validate(_train_config(tiny_assets, optim__optimizer="sgd"))
    with pytest.raises(ValueError, match="--config.data.latents_train"):
        mapper_train.validate(_train_config(tiny_assets, data__latents_train=str(tmp_path / "missing.npy")))
    with pytest.raises(ValueError, match="--config.generator is required"):
        mapper_train.validate(_config("mapper_train", "official"))
    # resuming a workdir with other prompts is refused
    kw = dict(reference["kw"], prompts=["another prompt"])
    with pytest.raises(ValueError, match="different run"):
        mapper_train.train(workdir=reference["workdir"], verbose=False, **kw)


# ----------------------------------------------------------------------------- inference
def test_inference_job_outputs_and_alpha(reference, tmp_path):
    from styleclip_jax.jobs import mapper_infer
    wd = reference["workdir"]
    c = _config("mapper_infer")
    c.generator = reference["config"].generator
    c.mapper = json.dumps([str(wd / "final" / "00"), str(wd)])
    c.seeds = "0-2"
    c.clip_model = reference["config"].clip_model
    summary = mapper_infer.run(c, str(tmp_path / "a1"))
    imgs = np.load(tmp_path / "a1" / "images.npz")
    lat = np.load(tmp_path / "a1" / "latents.npy")
    assert imgs["source"].shape == (3, 16, 16, 3) and imgs["edited"].shape == (2, 3, 16, 16, 3)
    assert lat.shape == (2, 3, 6, 16)
    G = sc.load_generator(c.generator)
    w = G.mapping(sc.seeds_to_z([0, 1, 2], 16), truncation_psi=0.7)
    m = sc_load_mapper(wd / "final" / "00")
    np.testing.assert_allclose(lat[0], np.asarray(m.apply(w)), atol=1e-6)
    np.testing.assert_allclose(imgs["edited"][0], np.asarray(G.synthesis(m.apply(w))), atol=1e-5)
    assert summary["mappers"][0]["prompt"] == PROMPTS[0] and "clip_similarity_after" in summary["mappers"][0]
    assert (tmp_path / "a1" / "grid.png").is_file()
    # alpha 0 switches the mapper off: the sources come back
    c.alpha, c.clip_model = 0.0, None
    mapper_infer.run(c, str(tmp_path / "a0"))
    imgs0 = np.load(tmp_path / "a0" / "images.npz")
    np.testing.assert_allclose(imgs0["edited"][0], imgs0["source"], atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "a0" / "latents.npy")[0], np.asarray(w))


# ----------------------------------------------------------------------------- shapes world
def test_presets_official_or_shapes(tiny_assets):
    """The default (shapes) preset trains with Adam, l2 0.3, 1000 steps; the official preset with StyleCLIP's
    Ranger, 0.8, 50k steps; explicit fields win; checkpoints come at least every 10 % of the run."""
    c = _config("mapper_train")
    _, t = mapper_train.build_configs(c)
    assert (t.optimizer, t.l2_lambda, c.optim.max_steps) == ("adam", 0.3, 1000)
    c = _set(_config("mapper_train", "official"), generator=tiny_assets["generator"])
    _, t = mapper_train.build_configs(c)
    assert (t.optimizer, t.lr, t.l2_lambda, c.optim.max_steps) == ("ranger", 0.5, 0.8, 50000)
    _set(c, optim__optimizer="adam", loss__l2_lambda=0.5)
    _, t = mapper_train.build_configs(c)
    assert (t.optimizer, t.l2_lambda) == ("adam", 0.5)
    assert mapper_train.checkpoint_interval(400, 1000) == 40
    assert mapper_train.checkpoint_interval(50000, 1000) == 1000
    assert mapper_train.checkpoint_interval(400, 0) == 0


def test_bfloat16_generator_convs_give_nearly_the_float32_mapper_gradient():
    """MapperTrainConfig(precision="bfloat16") rounds the generator's conv inputs (the gradient changes) and
    keeps the mapper's gradient direction (cosine > 0.99 with float32)."""
    G, clip = tiny_generator(), tiny_clip()
    mcfg = MapperConfig(latent_dim=G.cfg.w_dim)
    params = M.init_mapper_params(jax.random.PRNGKey(0), mcfg)
    w = G.mapping(jax.random.normal(jax.random.PRNGKey(1), (2, G.cfg.z_dim)), truncation_psi=0.7)
    text = jnp.ones((clip.embed_dim,)) / np.sqrt(clip.embed_dim)
    grads = {}
    for prec in ("float32", "bfloat16"):
        tcfg = M.MapperTrainConfig(precision=prec)
        loss = lambda p: M.mapper_loss(p, w, None, text, G=G, clip=clip, arc=None, mcfg=mcfg, tcfg=tcfg)[0]
        g = jax.jit(jax.grad(loss))(params)
        grads[prec] = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(g)])
    a, b = grads["float32"], grads["bfloat16"]
    assert np.abs(a - b).max() > 1e-5 * np.abs(a).max()  # measured 7e-5 (float32 reruns: ~1e-7)
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.99
