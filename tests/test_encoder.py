"""e4e / pSp encoders against the official encoder4editing outputs (fixtures/e4e), and their checkpoint readers.

The 1 GB official-size state dict is built in memory from the recipe (never written); the .pt reader, the
converted folder and load_generator(e4e .pt) are tested on a small checkpoint of the same layout, whose
key names come from a generator that is first checked against the official recipe's keys.
"""
import json
import subprocess
import sys
from collections import OrderedDict

import jax
import numpy as np
import pytest

import styleclip_jax as sc
from styleclip_jax.errors import CheckpointFormatError, CheckpointNotFoundError
from styleclip_jax.models import encoder as enc


def nhwc(a):
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


def nchw(a):
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


@pytest.fixture(scope="module")
def recipes(fixtures_dir):
    sys.path.insert(0, str(fixtures_dir))
    try:
        import build_from_recipe
    finally:
        sys.path.remove(str(fixtures_dir))
    return build_from_recipe


@pytest.fixture(scope="module")
def official(fixtures_dir, recipes):
    """The official-size encoder (IR-SE-50, 18 rows) from the recipe, in memory, and the expected outputs."""
    with open(fixtures_dir / "e4e" / "recipe.json") as f:
        recipe = json.load(f)
    sd = recipes.build(recipe)
    latent_avg = recipes.extra_arrays(recipe)["latent_avg"]
    E = enc.encoder_from_state_dict(sd, enc.E4E, latent_avg, source="e4e recipe")
    del sd
    with np.load(fixtures_dir / "e4e" / "expected.npz") as d:
        want = {k: d[k] for k in d.files}
    feats = E.features(nhwc(want["x"]))
    return E, want, feats, recipe


def test_backbone_features_match_official(official):
    E, want, feats, _ = official
    assert E.config.feature_units == (6, 20, 23) and E.num_ws == 18 and E.input_size == 256
    for name, got in zip(("c1", "c2", "c3"), feats):
        np.testing.assert_allclose(nchw(got), want[name], rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("etype,key", [(enc.E4E, "e4e"), (enc.PSP, "psp")])
def test_codes_and_w_plus_match_official(official, etype, key):
    import dataclasses
    E, want, feats, _ = official
    cfg = dataclasses.replace(E.config, encoder_type=etype)
    codes = jax.jit(enc.codes_from_features_fn, static_argnums=1)(E.params, cfg, *feats)
    np.testing.assert_allclose(np.asarray(codes), want[f"codes_{key}"], rtol=1e-4, atol=1e-4)
    w = enc.add_latent_avg(codes, E.latent_avg, cfg)
    np.testing.assert_allclose(np.asarray(w), want[f"w_plus_{key}"], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ small checkpoint, official layout
def official_keys(stage_units, depths, num_ws, w_dim, input_size, se=True):
    """(key, shape) of an official Encoder4Editing/GradualStyleEncoder state dict, in state_dict() order,
    written from the official module structure (input_layer, body units, styles, latlayers)."""
    out = [("input_layer.0.weight", (depths[0], 3, 3, 3))]
    out += [(f"input_layer.1.{n}", (depths[0],) if n != "num_batches_tracked" else ())
            for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    out += [("input_layer.2.weight", (depths[0],))]

    def bn(prefix, c):
        return [(f"{prefix}.{n}", (c,) if n != "num_batches_tracked" else ())
                for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    i, cin = 0, depths[0]
    for depth, n in zip(depths, stage_units):
        for _ in range(n):
            p = f"body.{i}."
            if cin != depth:
                out += [(p + "shortcut_layer.0.weight", (depth, cin, 1, 1))] + bn(p + "shortcut_layer.1", depth)
            out += bn(p + "res_layer.0", cin) + [(p + "res_layer.1.weight", (depth, cin, 3, 3)),
                                                   (p + "res_layer.2.weight", (depth,)),
                                                   (p + "res_layer.3.weight", (depth, depth, 3, 3))]
            out += bn(p + "res_layer.4", depth)
            if se:
                out += [(p + "res_layer.5.fc1.weight", (depth // 16, depth, 1, 1)),
                        (p + "res_layer.5.fc2.weight", (depth, depth // 16, 1, 1))]
            i, cin = i + 1, depth
    c3 = input_size // 16
    for s in range(num_ws):
        spatial = c3 if s < 3 else (2 * c3 if s < 7 else 4 * c3)
        for k in range(int(np.log2(spatial))):
            out += [(f"styles.{s}.convs.{2 * k}.weight", (w_dim, depths[-1] if k == 0 else w_dim, 3, 3)),
                    (f"styles.{s}.convs.{2 * k}.bias", (w_dim,))]
        out += [(f"styles.{s}.linear.weight", (w_dim, w_dim)), (f"styles.{s}.linear.bias", (w_dim,))]
    out += [("latlayer1.weight", (depths[-1], depths[2], 1, 1)), ("latlayer1.bias", (depths[-1],)),
            ("latlayer2.weight", (depths[-1], depths[1], 1, 1)), ("latlayer2.bias", (depths[-1],))]
    return out


def test_official_key_generator_matches_recipe(official):
    recipe = official[3]
    got = official_keys((3, 4, 14, 3), (64, 128, 256, 512), 18, 512, 256)
    want = [(e["key"], tuple(e["shape"])) for e in recipe["groups"][0]["entries"]]
    assert sorted(got) == sorted(want)


SMALL = dict(stage_units=(1, 2, 1, 1), depths=(16, 32, 48, 64), num_ws=6, w_dim=64, input_size=32)


def small_state_dict(seed=0):
    rng = np.random.default_rng(seed)
    sd = OrderedDict()
    for key, shape in official_keys(**SMALL):
        if key.endswith("num_batches_tracked"):
            sd[key] = np.array(7, np.int64)
        elif key.endswith("running_var"):
            sd[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            scale = 1.0 if len(shape) == 2 else (1 / np.sqrt(fan_in) if len(shape) > 1 else 0.1)
            sd[key] = (rng.standard_normal(shape) * scale + (1.0 if key.endswith(".weight") and len(shape) == 1
                                                              else 0.0)).astype(np.float32)
    return sd


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory, fixtures_dir, recipes):
    """An e4e checkpoint of the official layout: small encoder, the rosinality fixture's 16-px decoder."""
    import torch
    with open(fixtures_dir / "rosinality" / "recipe.json") as f:
        ros = json.load(f)
    dec = recipes.build(ros)
    avg = recipes.extra_arrays(ros)["latent_avg"].reshape(1, -1).repeat(SMALL["num_ws"], 0)
    sd = small_state_dict()
    state = OrderedDict([("encoder." + k, torch.from_numpy(v)) for k, v in sd.items()]
                        + [("decoder." + k, torch.from_numpy(np.array(v))) for k, v in dec.items()])
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": 16, "start_from_latent_avg": True, "lr": 1e-4}
    d = tmp_path_factory.mktemp("e4e")
    path = d / "e4e_small.pt"
    torch.save({"state_dict": state, "opts": opts, "latent_avg": torch.from_numpy(avg)}, path)
    ros_path = d / "rosinality.pt"
    recipes.write_pt(ros, dec, str(ros_path))
    return path, sd, avg, ros_path


def test_pt_reader_small_checkpoint(small_ckpt):
    path, sd, avg, _ = small_ckpt
    E = sc.load_encoder(path)
    assert (E.num_ws, E.w_dim, E.input_size) == (6, 64, 32)
    assert E.config.stage_units == SMALL["stage_units"] and E.config.encoder_type == enc.E4E
    ref = enc.encoder_from_state_dict(sd, enc.E4E, avg, source="memory")
    for a, b in zip(jax.tree_util.tree_leaves(E), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    w = np.asarray(E.encode(x))
    codes = np.asarray(E.codes(x))
    assert w.shape == (3, 6, 64)
    np.testing.assert_allclose(w, codes + avg[None], rtol=1e-6, atol=1e-6)
    # e4e structure: every row is row 0 plus its own style block's output (pSp's row i)
    import dataclasses
    psp = np.asarray(enc.codes_fn(E.params, dataclasses.replace(E.config, encoder_type=enc.PSP), x))
    np.testing.assert_allclose(codes[:, 1:], psp[:, :1] + psp[:, 1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(codes[:, 0], psp[:, 0], rtol=1e-6, atol=1e-6)
    # the thin Flax module applies the same params
    np.testing.assert_allclose(np.asarray(E.module.apply(E.variables, x)), w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(E.module.apply(E.variables, x, method="codes")), codes, rtol=1e-5,
                               atol=1e-5)
    shapes = jax.eval_shape(lambda: E.module.init(jax.random.PRNGKey(0), x))
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(E.variables)
    with pytest.raises(ValueError, match=r"\(N, 32, 32, 3\)"):
        E.encode(np.zeros((1, 64, 64, 3), np.float32))


def test_load_generator_from_e4e_checkpoint(small_ckpt):
    path, _, _, ros_path = small_ckpt
    G = sc.load_generator(path)
    G_ref = sc.load_generator(ros_path)
    assert G.config == G_ref.config and G.num_ws == 6
    for a, b in zip(jax.tree_util.tree_leaves(G.params), jax.tree_util.tree_leaves(G_ref.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_converted_folder_loads_without_torch(small_ckpt, tmp_path):
    path = small_ckpt[0]
    sys.path.insert(0, str(sc.__path__[0] + "/../checkpoints_convert"))
    try:
        import convert_encoder
    finally:
        sys.path.pop(0)
    dst = tmp_path / "enc"
    assert convert_encoder.main([f"--src={path}", f"--dst={dst}"]) == 0
    assert convert_encoder.main([f"--src={path}", f"--dst={dst}"]) == 1  # refuses to overwrite
    x = np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(sc.load_encoder(dst).encode(x)),
                                  np.asarray(sc.load_encoder(path).encode(x)))
    code = (f"import sys, styleclip_jax as sc; E = sc.load_encoder({str(dst)!r}); "
            "print(E.num_ws, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "False"]


def test_bad_checkpoints_give_one_line_errors(small_ckpt, tmp_path):
    import torch
    path, sd, avg, ros_path = small_ckpt
    with pytest.raises(CheckpointNotFoundError, match="missing.pt"):
        sc.load_encoder(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointFormatError, match="junk.pt"):
        sc.load_encoder(junk)
    with pytest.raises(CheckpointFormatError, match=r"rosinality.pt.*e4e/pSp checkpoint"):
        sc.load_encoder(ros_path)
    bad = tmp_path / "single.pt"
    torch.save({"state_dict": {"encoder." + k: torch.from_numpy(v) for k, v in sd.items()},
                "opts": {"encoder_type": "SingleStyleCodeEncoder", "stylegan_size": 16}}, bad)
    with pytest.raises(CheckpointFormatError, match=r"single.pt.*SingleStyleCodeEncoder"):
        sc.load_encoder(bad)
    wrong_size = tmp_path / "size.pt"
    torch.save({"state_dict": {"encoder." + k: torch.from_numpy(v) for k, v in sd.items()},
                "opts": {"encoder_type": "GradualStyleEncoder", "stylegan_size": 1024}}, wrong_size)
    with pytest.raises(CheckpointFormatError, match=r"size.pt: 6 style blocks.*18 W\+ rows"):
        sc.load_encoder(wrong_size)
    # the encoder-only checkpoint has no generator to give
    with pytest.raises(CheckpointFormatError, match=r"size.pt.*no 'decoder"):
        sc.load_generator(wrong_size)


def test_invert_job_with_an_e4e_checkpoint(small_ckpt, tmp_path):
    """--mode=invert: the checkpoint's encoder and decoder, refinement, and the promised outputs."""
    import PIL.Image
    from configs.invert import get_config
    from styleclip_jax.jobs import invert as job
    rng = np.random.default_rng(5)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("b.png", "a.png"):
        PIL.Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(photos / name)
    c = get_config("official")
    c.encoder, c.images, c.report_every = str(small_ckpt[0]), str(photos), 0
    c.refine.steps, c.refine.lr = 5, 0.05
    summary = job.run(c, str(tmp_path / "run"))
    out = tmp_path / "run"
    lat = np.load(out / "latents.npy")
    assert lat.shape == (2, 6, 64)
    with np.load(out / "images.npz") as d:
        assert d["source"].shape == d["reconstruction"].shape == (2, 16, 16, 3)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in metrics["images"]] == ["a.png", "b.png"] and metrics["refine_steps"] == 5
    assert summary["mean_mse"] < summary["mean_mse_before_refinement"]
    assert (out / "grid.png").is_file()
    c.encoder = None
    with pytest.raises(sc.errors.ConfigError, match="--config.encoder is required with the official preset"):
        job.validate(c)
    c.encoder, c.refine.id_lambda = "none", 0.1
    with pytest.raises(sc.errors.ConfigError, match="id_lambda > 0 needs --config.arcface"):
        job.validate(c)


def test_psp_checkpoint_without_latent_avg_start(small_ckpt, tmp_path):
    """pSp options (encoder_type GradualStyleEncoder, output_size, start_from_latent_avg False): W+ = codes."""
    import torch
    _, sd, avg, _ = small_ckpt
    path = tmp_path / "psp.pt"
    torch.save({"state_dict": {"encoder." + k: torch.from_numpy(v) for k, v in sd.items()},
                "opts": {"encoder_type": "GradualStyleEncoder", "output_size": 16, "start_from_latent_avg": False},
                "latent_avg": torch.from_numpy(avg)}, path)
    E = sc.load_encoder(path)
    assert E.config.encoder_type == enc.PSP and not E.config.start_from_latent_avg and E.latent_avg is None
    x = np.random.default_rng(3).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(E.encode(x)), np.asarray(E.codes(x)))
