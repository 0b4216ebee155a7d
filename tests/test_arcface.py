"""ArcFace IR-SE50 + StyleCLIP ID loss against the official PyTorch outputs (fixtures/arcface)."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from styleclip_jax.models import arcface
from styleclip_jax.models.arcface import identity_loss, identity_similarity, load_arcface

REPO = pathlib.Path(__file__).resolve().parents[1]


def nhwc(a):
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


@pytest.fixture(scope="module")
def expected(fixtures_dir):
    with np.load(fixtures_dir / "arcface" / "expected.npz") as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def pth_path(fixtures_dir, tmp_path_factory):
    """The official-layout model_ir_se50.pth rebuilt from the recipe (175 MB, built once)."""
    sys.path.insert(0, str(fixtures_dir))
    try:
        import build_from_recipe
    finally:
        sys.path.remove(str(fixtures_dir))
    with open(fixtures_dir / "arcface" / "recipe.json") as f:
        recipe = json.load(f)
    arrays = build_from_recipe.build(recipe)
    path = tmp_path_factory.mktemp("arcface") / "model_ir_se50.pth"
    build_from_recipe.write_pt(recipe, arrays, path)
    return path


@pytest.fixture(scope="module")
def arc(pth_path):
    return load_arcface(pth_path)


def test_adaptive_pool_matrix_windows():
    m = arcface.adaptive_pool_matrix(188, 112)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)
    # output 1 averages input [floor(188/112), ceil(2*188/112)) = [1, 4)
    np.testing.assert_allclose(m[1, :5], [0, 1 / 3, 1 / 3, 1 / 3, 0], rtol=1e-6)
    # 384 -> 256: overlapping windows of two pixels
    m = arcface.adaptive_pool_matrix(384, 256)
    np.testing.assert_allclose(m[1, :4], [0, 0.5, 0.5, 0])


@pytest.mark.parametrize("name", ["a", "b", "odd"])
def test_face_input_matches_official(arc, expected, name):
    got = np.asarray(arc.face_input(nhwc(expected[f"images_{name}"])))
    want = nhwc(expected[f"face_input_{name}"])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["a", "b", "odd"])
def test_features_match_official(arc, expected, name):
    got = np.asarray(arc.features(nhwc(expected[f"images_{name}"])))
    want = expected[f"feats_{name}"]
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_id_loss_value_and_gradient_under_jit(arc, expected):
    a, b = nhwc(expected["images_a"]), nhwc(expected["images_b"])
    # The ArcFace object is a pytree: pass it through jit as an ordinary argument.
    loss_and_grads = jax.jit(jax.value_and_grad(identity_loss, argnums=(1, 2)))
    loss, (g_edit, g_orig) = loss_and_grads(arc, a, b)
    np.testing.assert_allclose(float(loss), float(expected["id_loss"]), rtol=0, atol=1e-5)

    want = nhwc(expected["grad_id_loss_wrt_images_a"])
    g_edit = np.asarray(g_edit)
    rel = np.linalg.norm(g_edit - want) / np.linalg.norm(want)
    assert rel < 1e-3, f"relative gradient error {rel:.2e}"
    np.testing.assert_allclose(g_edit, want, rtol=0, atol=2e-6)
    # target features are detached: nothing flows into `original`
    assert not np.any(np.asarray(g_orig))


def test_identity_similarity_consistent_with_loss(arc, expected):
    a, b = nhwc(expected["images_a"]), nhwc(expected["images_b"])
    sim = np.asarray(identity_similarity(arc, a, b))
    want = np.sum(expected["feats_a"] * expected["feats_b"], axis=1)
    assert sim.shape == (2,)
    np.testing.assert_allclose(sim, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(1.0 - sim.mean(), float(expected["id_loss"]), rtol=0, atol=1e-5)


def test_flax_module_matches(arc, expected):
    model = arcface.IRSE50(num_layers=50)
    variables = {"params": {"arcface": arc.params}}
    faces = nhwc(expected["face_input_odd"])
    got = jax.jit(lambda v, x: model.apply(v, x, face_crop=False))(variables, faces)
    np.testing.assert_allclose(np.asarray(got), expected["feats_odd"], rtol=0, atol=1e-5)
    # fresh init has the converted layout
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 112, 112, 3)),
                                               face_crop=False))
    ref = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), arc.params)
    assert jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), shapes["params"]["arcface"]) == ref


def test_converter_script_round_trip(arc, pth_path, expected, tmp_path, capsys):
    dst = tmp_path / "arcface_jax"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, str(REPO / "checkpoints_convert" / "convert_arcface.py"),
         f"--src={pth_path}", f"--dst={dst}"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(dst / "config.json") as f:
        assert json.load(f) == {"model": "arcface_ir_se", "num_layers": 50, "mode": "ir_se", "input_size": 112}
    reloaded = load_arcface(dst)
    assert reloaded.num_layers == 50
    for x, y in zip(jax.tree_util.tree_leaves(reloaded.params), jax.tree_util.tree_leaves(arc.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    feats = np.asarray(reloaded.features(nhwc(expected["images_a"])))
    np.testing.assert_allclose(feats, expected["feats_a"], rtol=0, atol=1e-5)
    # a second conversion into the same folder refuses to overwrite silently (checked in-process)
    sys.path.insert(0, str(REPO / "checkpoints_convert"))
    try:
        import convert_arcface
    finally:
        sys.path.remove(str(REPO / "checkpoints_convert"))
    assert convert_arcface.main([f"--src={pth_path}", f"--dst={dst}"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_torch_is_optional(pth_path, monkeypatch):
    code = "import sys, styleclip_jax.models.arcface; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
    monkeypatch.setitem(sys.modules, "torch", None)  # simulate torch not installed
    with pytest.raises(ImportError, match=r"styleclip_jax\[convert\]"):
        load_arcface(pth_path)


def test_bad_inputs_give_clear_errors(tmp_path, pth_path):
    import torch

    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_arcface(missing)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_arcface(garbage)

    wrong = tmp_path / "wrong.pth"
    torch.save({"input_layer.0.weight": torch.zeros(64, 3, 3, 3)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth"):
        load_arcface(wrong)

    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_arcface(empty_dir)

    from styleclip_jax import checkpoints
    other = checkpoints.save_params(tmp_path / "not_arcface", {"w": np.ones(3, np.float32)}, {"model": "mapper"})
    with pytest.raises(ValueError, match="not_arcface"):
        load_arcface(other)

    with pytest.raises(ValueError, match="NHWC"):
        arcface.face_input(np.zeros((3, 256, 256), np.float32))
