"""styleclip_jax command line: `python main.py --mode=MODE --workdir=DIR [--config.field=value ...]`.

The config of a mode is `configs/<mode>.py` (its docstring gives the command and runtime);
`--config=path.py` overrides the file. Jobs live in `styleclip_jax.jobs` and can be imported.
"""
import importlib
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"
MODES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))

flags.DEFINE_string("mode", None, f"Job to run: one of {MODES}.")
flags.DEFINE_string("workdir", "runs/default", "Directory for outputs (created if missing).")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first (multi-host TPU/GPU).")
config_flags.DEFINE_config_file("config", None, "Config file; defaults to configs/<mode>.py.", lock_config=True)
FLAGS = flags.FLAGS


def _mode_from_argv(argv):
    for i, a in enumerate(argv):
        if a.startswith("--mode="):
            return a.split("=", 1)[1]
        if a == "--mode" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _with_default_config(argv):
    """Insert --config=configs/<mode>.py unless the user gave --config; fail early on a bad mode."""
    mode = _mode_from_argv(argv)
    if mode is None:
        sys.exit(f"error: --mode is required; one of {', '.join(MODES)}")
    if mode not in MODES:
        sys.exit(f"error: unknown --mode={mode!r}; expected one of {', '.join(MODES)}")
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        argv = [argv[0], f"--config={CONFIG_DIR / (mode + '.py')}"] + argv[1:]
    return argv


def main(argv):
    del argv
    if FLAGS["verbosity"].using_default_value:
        logging.set_verbosity(logging.WARNING)  # orbax/jax INFO logs drown the job's own progress lines
    if FLAGS.distributed:
        import jax
        jax.distributed.initialize()
    job = importlib.import_module(f"styleclip_jax.jobs.{FLAGS.mode}")
    try:
        if hasattr(job, "validate"):
            job.validate(FLAGS.config)
    except ValueError as e:
        sys.exit(f"error: {e}")
    logging.info("mode=%s workdir=%s\n%s", FLAGS.mode, FLAGS.workdir, FLAGS.config)
    try:
        job.run(FLAGS.config, FLAGS.workdir)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main, argv=_with_default_config(sys.argv))
