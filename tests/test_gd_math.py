"""editing/global_direction_math.py vs the official global-direction outputs (global_direction/expected.npz)."""
import json

import numpy as np
import pytest

from styleclip_jax.editing import global_direction_math as gd
from styleclip_jax.models import layout as layout_lib
from styleclip_jax.models.clip import text_direction_from_embeddings

ATOL = 1e-6


@pytest.fixture(scope="module")
def gdir(fixtures_dir):
    exp = dict(np.load(fixtures_dir / "global_direction" / "expected.npz"))
    cfg = json.loads((fixtures_dir / "global_direction" / "config.json").read_text())
    fl = cfg["fake_layout"]
    layout = layout_lib.from_names(fl["s_names"], fl["dims"])
    names = [l.name for l in layout]
    std = {n: exp[f"layout_code_std_{i:02d}"] for i, n in enumerate(names)}
    mean = {n: exp[f"layout_code_mean_{i:02d}"] for i, n in enumerate(names)}
    s = {n: exp[f"layout_dlatents_{i:02d}"] for i, n in enumerate(names)}
    return exp, cfg, layout, names, std, mean, s


def test_layout(gdir):
    _, cfg, layout, _, _, _, _ = gdir
    mindexs = [i for i, l in enumerate(layout) if not l.is_torgb]
    assert mindexs == cfg["fake_layout"]["mindexs"]
    assert layout_lib.num_channels(layout) == cfg["num_channels"] == 40


def test_relevance_from_features(gdir):
    exp = gdir[0]
    fs3 = np.asarray(gd.relevance_from_features(exp["all_f"]))
    np.testing.assert_allclose(fs3, exp["fs3"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(fs3, exp["fs3_f64"], rtol=0, atol=ATOL)


def test_text_direction(gdir):
    exp = gdir[0]
    tf = np.stack([np.asarray(gd.template_average(exp["text_emb_target"])),
                   np.asarray(gd.template_average(exp["text_emb_neutral"]))])
    np.testing.assert_allclose(tf, exp["text_features"], rtol=0, atol=ATOL)
    dt = np.asarray(gd.text_direction_from_features(tf[0], tf[1]))
    np.testing.assert_allclose(dt, exp["dt"], rtol=0, atol=ATOL)
    dt2 = text_direction_from_embeddings(exp["text_emb_target"], exp["text_emb_neutral"])
    np.testing.assert_allclose(np.asarray(dt2), exp["dt"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("beta,tag", [(0.0, "0p0"), (0.1, "0p1"), (0.2, "0p2")])
def test_direction(gdir, beta, tag):
    exp, cfg, layout, names, std, _, _ = gdir
    ds_imp, num = gd.relevance(exp["fs3"], exp["dt"], beta)
    np.testing.assert_allclose(np.asarray(ds_imp), exp[f"ds_imp_beta_{tag}"], rtol=0, atol=ATOL)
    delta, num_c = gd.direction(exp["fs3"], exp["dt"], std, beta, layout)
    assert int(num_c) == int(exp[f"num_c_beta_{tag}"]) == {d["beta"]: d["num_c"] for d in cfg["num_c"]}[beta]
    assert list(delta) == names
    for i, n in enumerate(names):
        np.testing.assert_allclose(np.asarray(delta[n]), exp[f"boundary_beta_{tag}_layer_{i:02d}"],
                                   rtol=0, atol=ATOL, err_msg=n)


def test_direction_layer_prefix_and_errors(gdir):
    exp, _, layout, names, std, _, _ = gdir
    full, _ = gd.direction(exp["fs3"], exp["dt"], std, 0.1, layout)
    # fs3 covering only the first 3 non-toRGB layers (12+8+8=28 channels): later layers zero.
    part, _ = gd.direction(exp["fs3"][:28], exp["dt"], std, 0.0, layout)
    assert np.all(np.asarray(part["conv0_resolution_16"]) == 0)
    assert np.all(np.asarray(part["conv1_resolution_16"]) == 0)
    assert np.abs(np.asarray(part["conv1_resolution_8"])).max() > 0
    with pytest.raises(ValueError):
        gd.direction(exp["fs3"][:30], exp["dt"], std, 0.0, layout)


def test_apply_mscode(gdir):
    exp, _, layout, names, std, _, s = gdir
    delta, _ = gd.direction(exp["fs3"], exp["dt"], std, 0.1, layout)
    out = gd.apply(s, delta, exp["mscode_alpha"])
    for i, n in enumerate(names):
        np.testing.assert_allclose(np.asarray(out[n]), exp[f"mscode_layer_{i:02d}"], rtol=0, atol=ATOL, err_msg=n)
    one = gd.apply(s, delta, 3.0)
    np.testing.assert_allclose(np.asarray(one[names[0]]), exp["mscode_layer_00"][:, 2], atol=ATOL)
    only = gd.apply(s, delta, 3.0, layers=[names[2]])
    np.testing.assert_array_equal(np.asarray(only[names[0]]), s[names[0]])


def test_single_channel_codes(gdir):
    exp, cfg, layout, names, std, mean, s = gdir
    ec = cfg["editonec"]
    lname = names[ec["lindex"]]
    sched = [(lname, c) for c in ec["cindexes"]]
    got = list(gd.single_channel_codes(s, mean, std, sched, ec["alpha"], persist_mean_clamp=True))
    for (name, c, codes) in got:
        np.testing.assert_allclose(codes[name], exp[f"editonec_l{ec['lindex']:02d}_c{c:03d}"], rtol=0, atol=ATOL)
        np.testing.assert_array_equal(codes[names[0]][:, 1], s[names[0]])
    # our default does not persist the clamp: the second sweep keeps channel 3 untouched
    nop = list(gd.single_channel_codes(s, mean, std, sched, ec["alpha"]))
    c0, c1 = ec["cindexes"]
    np.testing.assert_allclose(nop[0][2][lname], got[0][2][lname], atol=ATOL)
    np.testing.assert_array_equal(nop[1][2][lname][:, 0, c0], s[lname][:, c0])
    assert np.abs(nop[1][2][lname] - got[1][2][lname]).max() > 1e-3
    # schedule order of SingleChannel.py (all five non-toRGB layers have S index <= 16 here)
    full = gd.single_channel_schedule(layout)
    assert len(full) == 40 and full[0] == (names[0], 0) and full[12] == (names[2], 0)


def test_fs3_io(gdir, tmp_path):
    exp, _, layout, *_ = gdir
    p = tmp_path / "fs3.npy"
    np.save(p, exp["fs3"])
    np.testing.assert_array_equal(gd.load_fs3(p, layout), exp["fs3"])
    np.save(p, exp["fs3"][:28])  # layer-aligned prefix
    assert gd.load_fs3(p, layout).shape == (28, 512)
    with pytest.raises(ValueError, match="fs3.npy"):
        gd.load_fs3(p, layout, allow_layer_prefix=False)
    np.save(p, exp["fs3"][:30])
    with pytest.raises(ValueError, match="30 rows"):
        gd.load_fs3(p, layout)


def test_ffhq1024_layout_counts(fixtures_dir):
    info = json.loads((fixtures_dir / "global_direction" / "ffhq1024_layout.json").read_text())
    layout = layout_lib.from_names(info["s_names"], info["channels_per_s_layer"])
    assert layout_lib.num_channels(layout) == info["channels_without_torgb"]
    assert len(gd.single_channel_schedule(layout, 16)) == info["singlechannel_restriction"]["channels"]
