"""Command line of styleclip_jax: `python main.py --mode=MODE --workdir=DIR [--config.FIELD=VALUE ...]`.

Each mode has a config file `configs/<mode>.py` (`get_config(preset)`; its docstring gives commands and
measured runtimes) and a job `styleclip_jax/jobs/<mode>.py` (`validate(config)`, `run(config, workdir)`).
The table MODES below is the whole mapping. `python main.py --help` lists the modes, `python main.py
--mode=MODE --help` the mode's config fields with their defaults. Errors print one line; `--debug` shows
tracebacks, `--verbosity=0` (or higher) brings back library INFO logs.
"""
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent
if str(REPO) not in sys.path:  # `configs` is imported as a package from the checkout
    sys.path.insert(0, str(REPO))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from styleclip_jax import jobs  # noqa: E402
from styleclip_jax.jobs import app as app_job  # noqa: E402  (`app` is absl's)
from styleclip_jax.errors import ConfigError, StyleClipError  # noqa: E402

# mode -> (job module, one line for --help); the config is configs/<mode>.py
MODES = {
    "generate": (jobs.generate, "sample a grid of images from seeds"),
    "latent_optimization": (jobs.latent_optimization, "CLIP-guided optimisation of W+ or S, all edits batched"),
    "mapper_train": (jobs.mapper_train, "train latent mappers, one per prompt (resumable)"),
    "mapper_infer": (jobs.mapper_infer, "apply trained latent mappers to seeds or a latents file"),
    "global_direction": (jobs.global_direction, "text -> StyleSpace direction -> alpha/beta edits and studies"),
    "global_direction_precompute": (jobs.global_direction_precompute,
                                    "only the StyleSpace statistics and the fs3 channel-relevance sweep"),
    "invert": (jobs.invert, "image files -> W+ (e4e/pSp encoder, optional refinement), with reconstructions"),
    "app": (app_job, "interactive editor in the browser: live alpha/beta, mappers, uploads (extra [app])"),
}

# modes whose job prints its own `running on ...: B <unit> per device` line (parallel.describe)
SELF_DESCRIBING = {"latent_optimization", "mapper_train", "generate", "mapper_infer", "invert"}

flags.DEFINE_string("mode", None, "Job to run; `python main.py --help` lists the modes.")
flags.DEFINE_string("workdir", "runs/default", "Directory for outputs (created if missing).")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first (multi-host TPU/GPU; every "
                  "process runs the same command; only process 0 writes files and prints).")
flags.DEFINE_string("coordinator_address", None, "With --distributed: host:port of process 0 (default: auto-detected).")
flags.DEFINE_integer("num_processes", None, "With --distributed: the number of processes (default: auto-detected).")
flags.DEFINE_integer("process_id", None, "With --distributed: this process's index (default: auto-detected).")
flags.DEFINE_bool("debug", False, "Show Python tracebacks instead of one-line errors.")
config_flags.DEFINE_config_file("config", None, "configs/<mode>.py[:preset] (default: the mode's file).",
                                lock_config=True)
FLAGS = flags.FLAGS


def _flag_value(argv, name):
    for i, a in enumerate(argv):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _fail(msg):
    sys.stderr.write(f"error: {msg}\n")
    sys.exit(2)


def _usage() -> str:
    width = max(map(len, MODES))
    lines = ["usage: python main.py --mode=MODE --workdir=DIR [--config=configs/MODE.py[:PRESET]] "
             "[--config.FIELD=VALUE ...]", "", "modes:"]
    lines += [f"  {m:<{width}}  {MODES[m][1]}" for m in MODES]
    lines += ["", "flags: --workdir (default runs/default), --distributed [--coordinator_address=HOST:PORT "
              "--num_processes=N --process_id=I], --debug, --verbosity",
              "`python main.py --mode=MODE --help` lists the mode's presets and config fields."]
    return "\n".join(lines)


def _load_config(config_arg: str):
    """The ConfigDict that `--config=PATH[:PRESET]` names (loaded the way config_flags loads it)."""
    path, _, preset = config_arg.partition(":")
    if not pathlib.Path(path).is_file():
        _fail(f"--config={config_arg}: no such config file (expected configs/<mode>.py[:preset])")
    try:
        return config_flags.config_flags._LoadConfigModule(f"{path}_config", path).get_config(preset or None)
    except ValueError as e:  # an unknown preset
        _fail(str(e))


def _fields(cfg, prefix=""):
    for k, v in cfg.items():
        if hasattr(v, "items"):
            yield from _fields(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _mode_help(mode: str, config_arg: str) -> str:
    cfg = _load_config(config_arg)
    doc = (sys.modules.get(f"{pathlib.Path(config_arg.partition(':')[0])}_config").__doc__ or "").strip()
    from configs.common import PRESETS
    lines = [f"--mode={mode}: {MODES[mode][1]} (config {config_arg}; presets: {', '.join(PRESETS)})", "", doc, "",
             "config fields (defaults):"]
    lines += [f"  --config.{k}={v!r}" if v is not None else f"  --config.{k}  (unset)" for k, v in _fields(cfg)]
    return "\n".join(lines)


def _check_overrides(argv, config_arg: str) -> None:
    """Fail in one line on a --config.FIELD that the mode's config does not have (with a suggestion)."""
    import difflib
    known = dict(_fields(_load_config(config_arg)))
    for a in argv[1:]:
        if a.startswith("--config."):
            field = a[len("--config."):].split("=", 1)[0]
            if field not in known:
                close = difflib.get_close_matches(field, list(known), n=1)
                hint = f"; did you mean --config.{close[0]}?" if close else ""
                _fail(f"--config.{field}: no such field in {config_arg}{hint} "
                      f"(`python main.py --mode={_flag_value(argv, 'mode')} --help` lists them)")


def prepare_argv(argv):
    """Handle --help, fill in the mode's default --config, and check modes and field names (one-line errors)."""
    mode = _flag_value(argv, "mode")
    wants_help = any(a in ("--help", "-h", "--helpshort", "--helpfull", "-?") for a in argv[1:])
    if mode is None:
        if wants_help:
            print(_usage())
            sys.exit(0)
        _fail(f"--mode is required: one of {', '.join(MODES)} (`python main.py --help` describes them)")
    if mode not in MODES:
        _fail(f"--mode={mode}: unknown mode; expected one of {', '.join(MODES)}")
    config_arg = _flag_value(argv, "config") or str(REPO / "configs" / f"{mode}.py")
    if wants_help:
        print(_mode_help(mode, config_arg))
        sys.exit(0)
    _check_overrides(argv, config_arg)
    if _flag_value(argv, "config") is None:
        argv = [argv[0], f"--config={config_arg}"] + argv[1:]
    return argv


def _quiet_logs(argv) -> None:
    """A plain run prints only the job's own progress: library INFO logs (orbax, jax backends) only when the
    user asks for them with --verbosity."""
    if _flag_value(argv, "verbosity") is None and not any(a.startswith(("-v=", "--v=")) for a in argv):
        import logging as pylogging
        logging.set_verbosity(logging.WARNING)
        for name in ("jax", "orbax", "absl"):
            pylogging.getLogger(name).setLevel(pylogging.WARNING)


def main(argv):
    _quiet_logs(sys.argv)
    job = MODES[FLAGS.mode][0]
    try:
        from styleclip_jax import parallel
        explicit = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
        if FLAGS.distributed:
            line = parallel.initialize(*explicit)
        elif any(v is not None for v in explicit):
            raise ConfigError("--coordinator_address/--num_processes/--process_id need --distributed")
        else:
            line = None
        if line is not None and not parallel.is_writer():
            # only process 0 prints progress (errors still reach stderr); fd 1 too, for the runtime's own lines
            sys.stdout.flush()
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        job.validate(FLAGS.config)  # before any weights load
        if FLAGS.mode not in SELF_DESCRIBING:
            print(line or parallel.run_line(), flush=True)
        logging.info("mode=%s workdir=%s\n%s", FLAGS.mode, FLAGS.workdir, FLAGS.config)
        job.run(FLAGS.config, FLAGS.workdir)
    except (StyleClipError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as e:
        if FLAGS.debug:
            raise
        _fail(" ".join(str(e).split()) or type(e).__name__)
    except KeyboardInterrupt:
        if FLAGS.debug:
            raise
        _fail("interrupted (rerun the same command to resume where the mode supports it)")


def _parse_flags(argv):
    try:
        return FLAGS(argv)
    except flags.Error as e:  # a value that does not parse (e.g. --config.alpha=abc)
        _fail(str(e).splitlines()[0])


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main, argv=prepare_argv(sys.argv), flags_parser=_parse_flags)
