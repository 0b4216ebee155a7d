"""main.py as a user meets it: help texts, one-line errors without tracebacks, quiet default runs, output
file permissions."""
import os
import pathlib
import pickle
import stat
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _main(*args, cwd=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd or REPO)


def _one_line_error(r, *needles):
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Traceback" not in out, out
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_help_lists_modes_and_mode_fields():
    r = _main("--help")
    assert r.returncode == 0
    for mode in ("generate", "latent_optimization", "mapper_train", "mapper_infer", "global_direction",
                 "global_direction_precompute"):
        assert f"\n  {mode} " in r.stdout
    r = _main("--mode=mapper_train", "--help")
    assert r.returncode == 0
    assert "--config.optim.max_steps=1000" in r.stdout and "--config.log.ckpt_every=1000" in r.stdout
    assert "presets: shapes, official" in r.stdout
    r = _main("--mode=mapper_train", f"--config={REPO / 'configs' / 'mapper_train.py'}:official", "--help")
    assert "--config.optim.max_steps=50000" in r.stdout and "--config.optim.optimizer='ranger'" in r.stdout


def test_flag_errors_are_one_line(tmp_path):
    _one_line_error(_main("--mode=global_direction", f"--workdir={tmp_path}", "--config.seedz=0-3"),
                    "--config.seedz", "did you mean --config.seeds")
    _one_line_error(_main("--mode=global_direction", f"--workdir={tmp_path}", "--config.alpha=abc"),
                    "--config.alpha")
    _one_line_error(_main(f"--workdir={tmp_path}"), "--mode is required")
    _one_line_error(_main("--mode=global_direction", f"--config={REPO / 'configs' / 'global_direction.py'}:ffhq"),
                    "unknown preset")
    _one_line_error(_main("--mode=mapper_train", f"--config={REPO / 'configs' / 'mapper_train.py'}:official"),
                    "--config.generator is required")


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("kind", ["unsafe", "empty", "random"])
def test_bad_checkpoint_is_one_line_error(tmp_path, kind):
    path = tmp_path / "G.pkl"
    if kind == "unsafe":
        path.write_bytes(pickle.dumps({"G_ema": _Boom()}))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(os.urandom(4096))
    r = _main("--mode=generate", f"--workdir={tmp_path / 'out'}", f"--config.generator={path}", cwd=tmp_path)
    _one_line_error(r, str(path))
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_quickstart_is_quiet_and_writes_normal_permissions(tmp_path):
    """The Quickstart's first command prints only its own progress: no INFO log lines (absl 'I1206 ...',
    orbax, 'Unable to initialize backend') on stderr; outputs get 0666 minus the umask, as open() gives."""
    old = os.umask(0o022)
    try:
        r = _main("--mode=global_direction", f"--workdir={tmp_path / 'gd'}")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr
    assert "CLIP gain" in r.stdout
    for name in ("grid_p00_b00.png", "images.npz", "index.html", "metrics.json"):
        mode = stat.S_IMODE((tmp_path / "gd" / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))
    r = _main("--mode=generate", f"--workdir={tmp_path / 'gen'}", "--config.seeds=0-1", "--verbosity=0")
    assert r.returncode == 0 and "mode=generate" in r.stderr  # --verbosity brings the INFO lines back
