"""scripts/train_shapes_encoder.py on a tiny generator: the jitted step lowers the loss, a full bounded run
(train, measure on renders, save) writes a folder that ``sc.load_encoder`` reads, and rerunning resumes."""
import importlib.util
import json
import pathlib

import jax
import numpy as np
import pytest

import styleclip_jax as sc
from styleclip_jax import checkpoints
from tiny_models import tiny_generator

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--stage-units", "1,1,1,1", "--stage-depths", "4,8,12,16", "--batch", "8", "--refine-steps", "0",
        "--warmup", "1", "--lr", "3e-3", "--eval-every", "1000",
        "--no-progress-eval"]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_shapes_encoder", REPO / "scripts" / "train_shapes_encoder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    G = tiny_generator()
    path = tmp_path_factory.mktemp("gen") / "tiny_generator"
    checkpoints.save_params(path, jax.tree_util.tree_map(np.asarray, G.params),
                            {"kind": "stylegan2_generator", **G.cfg.to_dict()})
    return path


def test_step_lowers_the_loss_on_a_fixed_batch(script):
    G = tiny_generator()
    a = script.parse_args(TINY)
    ecfg = script.encoder_config(G, a)
    # the generator's W+ shape; a 16-px generator's images are read at 32 px (16 px has no coarse convs)
    assert (ecfg.num_ws, ecfg.w_dim, ecfg.input_size) == (G.num_ws, G.w_dim, 32)
    params = script.init_params(0, ecfg)
    mask = script.trainable_mask(params)
    tx, step = script.make_step(G, ecfg, script.w_variance(G, 256), mask, a.batch, a.psi_min, a.mix_prob)
    opt_state, key = tx.init(params), jax.random.PRNGKey(5)
    first = None
    for _ in range(25):  # the same key: the same batch every step, so its loss must fall
        new, opt_state, m = step(params, opt_state, key, 3e-3, script.loss_weights(a))
        first = float(m["loss"]) if first is None else first
        params = new
    _, _, m = step(params, opt_state, key, 0.0, script.loss_weights(a))
    assert float(m["loss"]) < 0.7 * first, (first, float(m["loss"]))
    bn = params["body"]["unit_00"]["bn1"]  # running statistics stay at 0 / 1
    assert np.all(np.asarray(bn["mean"]) == 0) and np.all(np.asarray(bn["var"]) == 1)


def test_bounded_run_saves_a_loadable_encoder_and_resumes(script, gen_dir, tmp_path):
    out, state = tmp_path / "enc", tmp_path / "state.pkl"
    argv = TINY + ["--generator", str(gen_dir), "--out", str(out), "--state", str(state), "--minutes", "5",
                   "--max-steps", "4"]
    res = script.main(argv)
    assert res["steps"] == 4 and state.is_file()
    E = sc.load_encoder(out)
    G = sc.load_generator(gen_dir)
    x = np.asarray(sc.shapes.render.render_batch([1, 2, 3])[0])
    x = np.asarray(jax.image.resize(x, (3, E.input_size, E.input_size, 3), "linear"))
    w = np.asarray(E.encode(x))
    assert w.shape == (3, G.num_ws, G.w_dim) and np.all(np.isfinite(w))
    np.testing.assert_allclose(np.asarray(E.latent_avg), np.asarray(G.mean_w()))
    extra = json.loads((out / "extra.json").read_text())
    ev = extra["render_eval"]
    assert 0.0 <= ev["colour_recovery"] <= 1.0 and len(ev["render_seeds"]) == 32
    assert len(set(ev["render_colours"])) == len(sc.shapes.render.COLOURS)  # renders cover the palette
    assert ev["mse_encoder"] > 0  # (refinement is measured by the real run; tests/test_invert.py tests it)
    md = (out / "TRAINING.md").read_text()
    assert "--max-steps 4" in md and f"{100 * ev['colour_recovery']:.1f} %" in md
    # rerunning the same command resumes from the state instead of starting over; float16 storage loads
    res2 = script.main(argv[:-1] + ["6", "--save-dtype", "float16"])
    assert res2["steps"] == 6 and res2["history"][0]["step"] == 4
    manifest = json.loads((out / "manifest.json").read_text())
    stored = {(leaf["path"][0], leaf["dtype"]) for leaf in manifest["leaves"]}
    assert stored == {("params", "float16"), ("latent_avg", "float32")}
    md = (out / "TRAINING.md").read_text()  # both invocations are listed
    assert "--max-steps 4 " in md and "--max-steps 6 --save-dtype float16" in md and "steps 4 -> 6" in md
    E16 = sc.load_encoder(out)
    assert np.asarray(E16.encode(x)).shape == (3, G.num_ws, G.w_dim)
