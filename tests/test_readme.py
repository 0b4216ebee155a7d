"""Every Python block in README.md runs as written (on the shipped shapes world)."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    """Each block runs on its own, in a fresh namespace, from a folder holding what the README's commands
    before it would have written (here: the green mapper of `--mode=mapper_train --workdir=runs/green`,
    trained for a few steps)."""
    code = BLOCKS[index]
    monkeypatch.chdir(tmp_path)
    if "runs/green" in code:
        _train_green_mapper(tmp_path / "runs" / "green")
    exec(compile(code, f"README.md python block {index}", "exec"), {})


def _train_green_mapper(workdir):
    """What `python main.py --mode=mapper_train --workdir=runs/green` leaves, at a few steps."""
    import importlib.util
    from styleclip_jax.jobs import mapper_train
    spec = importlib.util.spec_from_file_location("_cfg_mt", README.parent / "configs" / "mapper_train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    c.data.train_size, c.data.test_size, c.optim.max_steps = 16, 4, 2
    c.log.val_every, c.log.image_every, c.log.tensorboard = 2, 0, False
    mapper_train.run(c, str(workdir))
