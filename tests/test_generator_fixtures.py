"""The Flax generator reproduces the official PyTorch networks, loaded from official checkpoint files.

stylegan2_ada/: NVlabs stylegan2-ada-pytorch Generator (G.pkl read through sc.load_generator).
rosinality/: StyleCLIP's rosinality Generator (stylegan2.pt rebuilt from the recipe, then loaded).
Tolerances from the fixture READMEs: images 1e-4, ws/S 1e-5, grads 1e-6, clamp probe 1e-2.
"""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import styleclip_jax as sc


def nchw(x):
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


# ----------------------------------------------------------------------------------- NVlabs
@pytest.fixture(scope="module")
def ada(fixtures_dir):
    G = sc.load_generator(fixtures_dir / "stylegan2_ada" / "G.pkl")
    return G, np.load(fixtures_dir / "stylegan2_ada" / "expected.npz")


def test_ada_config_from_pickle(ada):
    G, _ = ada
    c = G.config
    assert (c["z_dim"], c["w_dim"], c["img_resolution"], c["num_ws"]) == (64, 64, 32, 8)
    assert (c["channel_base"], c["channel_max"], c["conv_clamp"]) == (2048, 64, 256)


def test_ada_mapping_and_truncation(ada):
    G, E = ada
    np.testing.assert_allclose(G.mapping(E["z"]), E["ws"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(G.mapping(E["z"], truncation_psi=0.7), E["ws_trunc"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(G.mapping(E["z"], truncation_psi=0.5, truncation_cutoff=2), E["ws_trunc_cut"],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key", ["", "_trunc", "_trunc_cut", "_mix"])
def test_ada_images(ada, key):
    G, E = ada
    np.testing.assert_allclose(nchw(G.synthesis(E["ws" + key])), E["images" + key], atol=1e-4, rtol=1e-4)


def test_ada_conv_clamp_probe(ada):
    G, E = ada
    np.testing.assert_allclose(nchw(G.synthesis(E["ws_clamp_probe"])), E["images_clamp_probe"], atol=1e-2)


def test_ada_stylespace(ada):
    G, E = ada
    s = G.w_to_s(E["ws"])
    assert list(s) == [l.name for l in G.layout]
    for name, v in s.items():
        np.testing.assert_allclose(v, E["s_" + name], atol=1e-5, rtol=1e-5, err_msg=name)
    for name, v in G.w_to_s(E["ws_mix"]).items():
        np.testing.assert_allclose(v, E["smix_" + name], atol=1e-5, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(nchw(G.synthesis_from_s(s)), E["images_from_s"], atol=1e-4, rtol=1e-4)
    s["conv0_resolution_8"] = s["conv0_resolution_8"].at[:, 3].add(5.0 * E["s_std_conv0_resolution_8"][3])
    np.testing.assert_allclose(nchw(G.synthesis_from_s(s)), E["images_s_edit"], atol=1e-4, rtol=1e-4)


def test_ada_stylespace_statistics(ada):
    G, E = ada
    zs = np.random.RandomState(5).randn(1000, 64).astype(np.float32)
    s = G.w_to_s(G.mapping(zs, truncation_psi=0.7, truncation_cutoff=8))
    for name, v in s.items():
        np.testing.assert_allclose(v.mean(0), E["s_mean_" + name], atol=1e-5, err_msg=name)
        np.testing.assert_allclose(v.std(0), E["s_std_" + name], atol=1e-5, err_msg=name)


def test_ada_gradient(ada):
    G, E = ada
    grad = jax.grad(lambda ws: jnp.mean(G.synthesis(ws)))(jnp.asarray(E["ws"]))
    np.testing.assert_allclose(grad, E["grad_check"], atol=1e-6)


def test_ada_reads_g_ema_not_g(ada, fixtures_dir):
    """G.pkl also holds the raw `G` (perturbed): our images must be far from it and equal to G_ema's."""
    from styleclip_jax.checkpoints import stylegan2 as torch_io
    sd, _ = torch_io.read_nvlabs_pkl(fixtures_dir / "stylegan2_ada" / "G.pkl", key="G")
    G, _ = ada
    raw = np.asarray(sd["synthesis.b32.conv1.weight"])
    ema = np.asarray(G.params["synthesis"]["b32"]["conv1"]["weight"])
    assert np.abs(raw - ema).max() > 1e-4


# ------------------------------------------------------------------------------- rosinality
@pytest.fixture(scope="module")
def rosi(fixtures_dir, tmp_path_factory):
    sys.path.insert(0, str(fixtures_dir))
    import build_from_recipe
    recipe = json.load(open(fixtures_dir / "rosinality" / "recipe.json"))
    path = tmp_path_factory.mktemp("rosinality") / "stylegan2.pt"
    build_from_recipe.write_pt(recipe, build_from_recipe.build(recipe), str(path))
    layout = json.load(open(fixtures_dir / "rosinality" / "stylespace_layout.json"))["layers"]
    return sc.load_generator(path), np.load(fixtures_dir / "rosinality" / "expected.npz"), layout


def test_rosinality_mapping(rosi):
    G, E, _ = rosi
    assert G.num_ws == 6 and G.resolution == 16
    ws = G.mapping(E["z"])
    np.testing.assert_allclose(ws[:, 0], E["w"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ws, E["wplus"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(G.mean_w(), E["mean_latent"][0], atol=0)
    np.testing.assert_allclose(G.mapping(E["z"], truncation_psi=0.7), E["wplus_trunc"], atol=1e-5, rtol=1e-5)
    k = int(E["inject_index"])
    mix = jnp.concatenate([G.mapping(E["z"])[:, :k], G.mapping(E["z2"])[:, k:]], axis=1)
    np.testing.assert_allclose(mix, E["wplus_mix"], atol=1e-5, rtol=1e-5)


def test_rosinality_images(rosi):
    G, E, _ = rosi
    np.testing.assert_allclose(nchw(G(E["z"])), E["images_z"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(nchw(G(E["z"], truncation_psi=0.7)), E["images_trunc"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(nchw(G.synthesis(E["wplus_in"])), E["images_wplus"], atol=1e-4, rtol=1e-4)
    wt = G.mean_w() + 0.7 * (E["wplus_in"] - G.mean_w())
    np.testing.assert_allclose(nchw(G.synthesis(wt)), E["images_wplus_trunc"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(nchw(G.synthesis(E["wplus_mix"])), E["images_mix"], atol=1e-4, rtol=1e-4)


def test_rosinality_stylespace_and_edit(rosi):
    G, E, layout = rosi
    s = G.w_to_s(E["wplus_in"])
    assert list(s) == [l["ada_name"] for l in layout]
    for l in layout:
        np.testing.assert_allclose(s[l["ada_name"]], E[l["npz_key"]][:, 0, :, 0, 0], atol=1e-4, rtol=1e-5,
                                   err_msg=l["ada_name"])
    np.testing.assert_allclose(nchw(G.synthesis_from_s(s)), E["images_from_s"], atol=1e-4, rtol=1e-4)
    for li, ch, amt in zip(E["s_edit_layer"], E["s_edit_channel"], E["s_edit_amount"]):
        name = layout[int(li)]["ada_name"]
        s[name] = s[name].at[:, int(ch)].add(float(amt))
    np.testing.assert_allclose(nchw(G.synthesis_from_s(s)), E["images_s_edit"], atol=1e-4, rtol=1e-4)


def test_rosinality_gradients(rosi):
    G, E, layout = rosi
    gw = jax.grad(lambda w: jnp.mean(G.synthesis(w)))(jnp.asarray(E["wplus_in"]))
    np.testing.assert_allclose(gw, E["grad_wplus"], atol=1e-6)
    s = G.w_to_s(E["wplus_in"])
    gs = jax.grad(lambda s: jnp.mean(G.synthesis_from_s(s)))(s)
    for l in layout:
        np.testing.assert_allclose(gs[l["ada_name"]], E["grad_" + l["npz_key"]][:, 0, :, 0, 0], atol=1e-6,
                                   err_msg=l["ada_name"])
