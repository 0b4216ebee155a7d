"""Properties of the generator on small random configs: jit == eager, vmap == loop, S path == W path,
the Flax module and the pure functions agree, and the fast synthesis equals the slow reference."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import styleclip_jax as sc
from styleclip_jax.models import generator as gen
from styleclip_jax.models import layout as layout_lib

CFG = sc.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, channel_base=128, channel_max=16,
                         mapping_layers=2, conv_clamp=None)


@pytest.fixture(scope="module")
def G():
    params = sc.init_params(jax.random.PRNGKey(0), CFG)
    # non-trivial noise strengths and w_avg so those code paths matter
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.1 if p[-1].key in ("noise_strength", "w_avg") else x, params)
    return sc.Generator(params, CFG)


def z(n, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, CFG.z_dim))


def test_layout_table_matches_generator_shapes(G):
    lay = G.layout
    assert [l.name for l in lay][:5] == ["conv1_resolution_4", "toRGB_resolution_4", "conv0_resolution_8",
                                         "conv1_resolution_8", "toRGB_resolution_8"]
    assert layout_lib.torgb_indices(lay) == [1, 4, 7]
    s = G.w_to_s(G.mapping(z(2)))
    for l in lay:
        assert s[l.name].shape == (2, l.channels)


def test_ffhq_layout_facts(fixtures_dir):
    import json
    facts = json.load(open(fixtures_dir / "global_direction" / "ffhq1024_layout.json"))
    lay = layout_lib.stylespace_layout(1024, 32768, 512)
    text = json.dumps(facts)
    assert len(lay) == 26
    assert [l.channels for l in lay] == [512] * 15 + [256] * 3 + [128] * 3 + [64] * 3 + [32] * 2
    assert layout_lib.torgb_indices(lay) == [1, 4, 7, 10, 13, 16, 19, 22, 25]
    assert layout_lib.num_channels(lay) == 6048 and layout_lib.num_channels(lay, True) == 9088
    assert layout_lib.num_channels(layout_lib.non_torgb_layers(lay, 128)) == 5376
    assert "6048" in text and "5376" in text
    # the fixture's own per-layer facts, computed from the official code
    assert [l.name for l in lay] == facts["s_names"]
    assert [l.channels for l in lay] == facts["channels_per_s_layer"]
    assert [l.ws_index for l in lay] == facts["w_plus_row_per_s_layer"]
    assert layout_lib.torgb_indices(lay) == facts["torgb_indices"]
    assert [l.index for l in layout_lib.non_torgb_layers(lay)] == facts["mindexs"]
    assert layout_lib.num_channels(lay) == facts["channels_without_torgb"]
    # the same table from names alone (published fs3 / statistics files), in any key order
    named = layout_lib.from_names(facts["s_names"], facts["channels_per_s_layer"])
    assert [(l.name, l.channels, l.is_torgb, l.resolution) for l in named] == \
        [(l.name, l.channels, l.is_torgb, l.resolution) for l in lay]
    assert layout_lib.order_names(list(reversed(facts["s_names"]))) == facts["s_names"]
    assert layout_lib.torgb_indices_for(26) == facts["torgb_indices"]
    assert layout_lib.channel_bounds(lay, 128)[-1] == 5376


def test_jit_equals_eager(G):
    ws = G.mapping(z(3), truncation_psi=0.7)
    eager = gen.synthesis(G.params, CFG, ws)
    jitted = jax.jit(lambda g, w: g.synthesis(w))(G, ws)
    np.testing.assert_allclose(jitted, eager, atol=1e-5)
    np.testing.assert_allclose(gen.mapping(G.params, CFG, z(3), truncation_psi=0.7), ws, atol=1e-6)


def test_vmap_equals_loop(G):
    ws = G.mapping(z(4, seed=1))
    batched = jax.vmap(lambda w: gen.synthesis(G.params, CFG, w[None])[0])(ws)
    loop = jnp.stack([G.synthesis(ws[i:i + 1])[0] for i in range(4)])
    np.testing.assert_allclose(batched, loop, atol=1e-5)


def test_s_path_equals_w_path_and_rows_matter(G):
    ws = G.mapping(z(2)) + 0.3 * jax.random.normal(jax.random.PRNGKey(5), (2, CFG.num_ws, CFG.w_dim))
    np.testing.assert_allclose(G.synthesis_from_s(G.w_to_s(ws)), G.synthesis(ws), atol=1e-6)
    # each S layer reads its own w row: changing row 3 only changes the layers that read row 3
    ws2 = ws.at[:, 3].add(1.0)
    s1, s2 = G.w_to_s(ws), G.w_to_s(ws2)
    changed = [l.name for l in G.layout if not np.allclose(s1[l.name], s2[l.name])]
    assert changed == [l.name for l in G.layout if l.ws_index == 3] == ["toRGB_resolution_8", "conv0_resolution_16"]


def test_fast_synthesis_equals_reference(G):
    ws = G.mapping(z(2, seed=2))
    np.testing.assert_allclose(G.synthesis(ws), gen.synthesis_ref(G.params, CFG, ws), atol=1e-4)


def test_flax_module_matches_pure_functions(G):
    mod = G.module
    variables = mod.init(jax.random.PRNGKey(1), z(1))
    shapes = jax.tree_util.tree_map(lambda a: a.shape, variables["params"])
    want = jax.tree_util.tree_map(lambda s: s, gen.param_shapes(CFG), is_leaf=lambda x: isinstance(x, tuple))
    assert shapes == want
    out = mod.apply({"params": G.params}, z(2), truncation_psi=0.5)
    np.testing.assert_allclose(out, G(z(2), truncation_psi=0.5), atol=1e-5)
    s = mod.apply({"params": G.params}, G.mapping(z(2)), method=mod.w_to_s)
    np.testing.assert_allclose(s["conv1_resolution_8"], G.w_to_s(G.mapping(z(2)))["conv1_resolution_8"], atol=1e-6)


def test_noise_modes(G):
    ws = G.mapping(z(2))
    const, none = G.synthesis(ws, "const"), G.synthesis(ws, "none")
    assert not np.allclose(const, none)
    r1 = G.synthesis(ws, "random", noise_key=jax.random.PRNGKey(1))
    r2 = G.synthesis(ws, "random", noise_key=jax.random.PRNGKey(1))
    r3 = G.synthesis(ws, "random", noise_key=jax.random.PRNGKey(2))
    np.testing.assert_array_equal(r1, r2)
    assert not np.allclose(r1, r3)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, "bogus")


def test_grad_through_mapping_and_stylespace(G):
    def loss(zz):
        return jnp.mean(G.synthesis_from_s(G.w_to_s(G.mapping(zz, truncation_psi=0.7))) ** 2)
    g = jax.grad(loss)(z(2))
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


def test_remat_synthesis_has_the_same_values_and_gradients(G):
    """remat=True (jax.checkpoint per S layer: less memory in the backward pass) changes no number."""
    ws = G.mapping(jax.random.normal(jax.random.PRNGKey(4), (2, G.cfg.z_dim)), truncation_psi=0.7)
    target = jax.random.normal(jax.random.PRNGKey(5), (2, G.cfg.img_resolution, G.cfg.img_resolution, 3))

    def loss(ws, remat):
        img = gen.synthesis(G.params, G.cfg, ws, "random", jax.random.PRNGKey(6), remat=remat)
        return jnp.sum(jnp.square(img - target)), img

    (l0, img0), g0 = jax.jit(jax.value_and_grad(lambda w: loss(w, False), has_aux=True))(ws)
    (l1, img1), g1 = jax.jit(jax.value_and_grad(lambda w: loss(w, True), has_aux=True))(ws)
    np.testing.assert_allclose(np.asarray(img1), np.asarray(img0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-5, atol=1e-5)  # float rounding
    assert float(jnp.max(jnp.abs(g0))) > 0
    # and the flag does something: one checkpoint (jaxpr "remat2") per S layer in the program, none without it
    n_remat = [str(jax.make_jaxpr(jax.grad(lambda w, r=r: loss(w, r)[0]))(ws)).count("remat2[")
               for r in (False, True)]
    assert n_remat == [0, len(G.layout)], n_remat


def test_truncation_cutoff_rows(G):
    w = G.mapping(z(2))
    wc = G.mapping(z(2), truncation_psi=0.0, truncation_cutoff=3)
    np.testing.assert_allclose(wc[:, :3], np.broadcast_to(G.mean_w(), (2, 3, CFG.w_dim)), atol=1e-6)
    np.testing.assert_allclose(wc[:, 3:], w[:, 3:], atol=1e-6)


def test_conditional_mapping_and_bad_inputs():
    cfg = sc.GeneratorConfig(z_dim=8, w_dim=8, c_dim=3, img_resolution=8, channel_base=64, channel_max=8,
                             mapping_layers=2)
    G = sc.Generator(sc.init_params(jax.random.PRNGKey(0), cfg), cfg)
    c = jnp.eye(3)[:2]
    ws = G.mapping(jnp.ones((2, 8)), c)
    assert ws.shape == (2, 4, 8)
    assert not np.allclose(ws[0], ws[1])  # the label matters
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(jnp.ones((2, 8)))
    with pytest.raises(ValueError, match=r"z must be \(N, 8\)"):
        G.mapping(jnp.ones((2, 5)), c)


@pytest.mark.parametrize("res,base,cmax", [(4, 64, 8), (32, 256, 16), (64, 512, 16)])
def test_any_power_of_two_resolution(res, base, cmax):
    cfg = sc.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=res, channel_base=base, channel_max=cmax,
                             mapping_layers=1)
    G = sc.Generator(sc.init_params(jax.random.PRNGKey(0), cfg), cfg)
    img = G(jnp.ones((1, 8)))
    assert img.shape == (1, res, res, 3) and np.all(np.isfinite(img))
    with pytest.raises(ValueError, match="power of two"):
        sc.GeneratorConfig(img_resolution=48).layout
