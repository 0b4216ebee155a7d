"""mapper_nets.py vs the official LevelsMapper outputs (mapper/expected.npz)."""
import dataclasses
import json
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from styleclip_jax.models import mapper as mn


@pytest.fixture(scope="module")
def mapper_pt(fixtures_dir, tmp_path_factory):
    pytest.importorskip("torch")
    sys.path.insert(0, str(fixtures_dir))
    import build_from_recipe

    recipe = json.loads((fixtures_dir / "mapper" / "recipe.json").read_text())
    arrays = build_from_recipe.build(recipe)
    path = tmp_path_factory.mktemp("mapper") / "mapper.pt"
    build_from_recipe.write_pt(recipe, arrays, path)
    return path


@pytest.fixture(scope="module")
def loaded(mapper_pt):
    return mn.read_styleclip_mapper_pt(mapper_pt, return_info=True)


@pytest.fixture(scope="module")
def expected(fixtures_dir):
    return dict(np.load(fixtures_dir / "mapper" / "expected.npz"))


def test_reader_config_and_counts(loaded):
    params, cfg, info = loaded
    assert cfg.mapper_type == "LevelsMapper" and cfg.pixelnorm_axis == "rows"
    assert not (cfg.no_coarse_mapper or cfg.no_medium_mapper or cfg.no_fine_mapper)
    assert set(params) == {"course_mapping", "medium_mapping", "fine_mapping"}
    assert params["course_mapping"]["mapping"]["1"]["weight"].shape == (512, 512)
    assert info["num_mapper_tensors"] == 24
    assert info["num_decoder_tensors"] > 0 and info["num_decoder_values"] == 16_015_070
    assert sum(v.size for v in mn.flatten_params(params).values()) == 3_151_872


def test_levels_mapper_matches_official(loaded, expected):
    params, cfg, _ = loaded
    w = jnp.asarray(expected["w"])
    delta = jax.jit(mn.apply_mapper, static_argnums=2)(params, w, cfg)
    np.testing.assert_allclose(np.asarray(delta), expected["delta"], rtol=1e-5, atol=1e-5)
    w_hat = w + 0.1 * delta
    np.testing.assert_allclose(np.asarray(w_hat), expected["w_hat"], rtol=0, atol=1e-5)
    loss = jnp.mean((w_hat - w) ** 2)
    np.testing.assert_allclose(float(loss), float(expected["loss_l2_latent"]), rtol=1e-5)


def test_features_pixelnorm_differs(loaded, expected):
    params, cfg, _ = loaded
    cfg_f = dataclasses.replace(cfg, pixelnorm_axis="features")
    delta = mn.apply_mapper(params, jnp.asarray(expected["w"]), cfg_f)
    assert np.abs(np.asarray(delta) - expected["delta"]).max() > 1e-2


def test_disabled_fine_mapper_gives_zeros(loaded, expected):
    params, cfg, _ = loaded
    cfg_nf = dataclasses.replace(cfg, no_fine_mapper=True)
    p = {k: v for k, v in params.items() if k != "fine_mapping"}
    delta = np.asarray(mn.apply_mapper(p, jnp.asarray(expected["w"]), cfg_nf))
    assert np.all(delta[:, 8:] == 0)
    np.testing.assert_allclose(delta[:, :8], expected["delta"][:, :8], rtol=1e-5, atol=1e-5)


def _np_mlp(layers, x, axis):
    x = x / np.sqrt(np.mean(x ** 2, axis=axis, keepdims=True) + 1e-8)
    for i in range(1, 5):
        wt, b = np.asarray(layers[str(i)]["weight"], np.float64), np.asarray(layers[str(i)]["bias"], np.float64)
        y = x @ (wt * 0.01 / math.sqrt(wt.shape[1])).T + 0.01 * b
        x = np.where(y >= 0, y, 0.2 * y) * math.sqrt(2)
    return x


def _np_params(cfg, seed=0):
    """Random params with the structure of init_mapper_params, drawn in numpy (no compile)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(lambda: mn.init_mapper_params(jax.random.PRNGKey(0), cfg))
    return jax.tree.map(lambda sd: (100 * rng.standard_normal(sd.shape)).astype(np.float32)
                        if len(sd.shape) == 2 else (10 * rng.standard_normal(sd.shape)).astype(np.float32), shapes)


def test_init_official_scale():
    cfg = mn.MapperConfig(mapper_type="SingleMapper", latent_dim=32)
    p = mn.init_mapper_params(jax.random.PRNGKey(0), cfg)["mapping"]["mapping"]
    assert sorted(p) == ["1", "2", "3", "4"]
    assert float(jnp.abs(p["1"]["bias"]).max()) == 0.0
    assert 90 < float(jnp.std(p["1"]["weight"])) < 110  # randn / lr_mul
    assert float(jnp.abs(p["1"]["weight"] - p["2"]["weight"]).max()) > 0


def test_single_and_stylespace_mapper_vs_numpy():
    # SingleMapper over all rows (PixelNorm over the 18 rows)
    cfg = mn.MapperConfig(mapper_type="SingleMapper", latent_dim=16)
    p = _np_params(cfg)
    w = np.random.default_rng(0).standard_normal((2, 18, 16)).astype(np.float32)
    got = np.asarray(mn.apply_mapper(p, jnp.asarray(w), cfg))
    np.testing.assert_allclose(got, _np_mlp(p["mapping"]["mapping"], w.astype(np.float64), 1), atol=1e-4)
    # StyleSpace mapper on a toy 8-layer layout: toRGB (1, 4, 7) zero, others width C over C
    dims = (8, 8, 8, 8, 8, 8, 4, 4)
    cfg_s = mn.MapperConfig(mapper_type="WithoutToRGBStyleSpaceMapper", stylespace_dims=dims)
    assert cfg_s.stylespace_mapped_indices == (0, 2, 3, 5, 6)
    ps = _np_params(cfg_s, 1)
    assert sorted(ps) == ["mapper_0", "mapper_2", "mapper_3", "mapper_5", "mapper_6"]
    s = [np.random.default_rng(i).standard_normal((3, 1, c, 1, 1)).astype(np.float32) for i, c in enumerate(dims)]
    out = jax.jit(mn.apply_mapper, static_argnums=2)(ps, s, cfg_s)
    for i, (x, y) in enumerate(zip(s, out)):
        assert y.shape == x.shape
        if i in (1, 4, 7):
            assert np.all(np.asarray(y) == 0)
        else:
            ref = _np_mlp(ps[f"mapper_{i}"]["mapping"], x.reshape(3, -1).astype(np.float64), 1)
            np.testing.assert_allclose(np.asarray(y).reshape(3, -1), ref, rtol=1e-5, atol=1e-4)


def test_flax_module_and_flatten_roundtrip(loaded, expected):
    params, cfg, _ = loaded
    flat = mn.flatten_params(params)
    assert "course_mapping.mapping.1.weight" in flat
    assert jax.tree.structure(mn.unflatten_params(flat)) == jax.tree.structure(params)
    module = mn.LatentMapper(cfg)
    w = jnp.asarray(expected["w"][:1])
    v = jax.eval_shape(module.init, jax.random.PRNGKey(0), w)
    assert jax.tree.structure(v["params"]["mapper"]) == jax.tree.structure(params)
    out = module.apply({"params": {"mapper": params}}, w)
    np.testing.assert_allclose(np.asarray(out), expected["delta"][:1], rtol=1e-5, atol=1e-5)
    assert mn.MapperConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_convert_script(mapper_pt, tmp_path, expected):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "checkpoints_convert"))
    import convert_mapper

    dst = tmp_path / "out"
    convert_mapper.main([f"--src={mapper_pt}", f"--dst={dst}"])
    assert any(dst.iterdir())
    try:
        from styleclip_jax.checkpoints import load_params
    except ImportError:  # fallback format of convert_mapper.py
        import orbax.checkpoint as ocp

        def load_params(d):
            return (ocp.StandardCheckpointer().restore(d / "params"),
                    json.loads((d / "config.json").read_text()))
    params, cfg_dict = load_params(dst)
    cfg = mn.MapperConfig.from_dict(cfg_dict)
    assert cfg.mapper_type == "LevelsMapper" and cfg.pixelnorm_axis == "rows"
    delta = mn.apply_mapper(params, jnp.asarray(expected["w"][:1]), cfg)
    np.testing.assert_allclose(np.asarray(delta), expected["delta"][:1], rtol=1e-5, atol=1e-5)
