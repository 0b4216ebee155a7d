"""`--mode=app`: load the models, serve the Gradio editor on 127.0.0.1, warm up (compile) in the background."""
from __future__ import annotations

import ipaddress
import os
import pathlib
import threading

from . import outputs as io_utils
from ..errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(config) -> None:
    from .global_direction import validate_precompute
    host = str(config.host)
    if not is_loopback(host) and not config.allow_remote:
        raise ConfigError(f"--config.host={host}: serving on a non-loopback interface exposes the editor to the "
                          "network; add --config.allow_remote=True if that is what you want")
    if not 0 < int(config.port) < 65536:
        raise ConfigError(f"--config.port={config.port}: expected 1..65535")
    if not 0 < float(config.max_upload_mb) <= 1024:
        raise ConfigError(f"--config.max_upload_mb={config.max_upload_mb}: expected a size in MB in (0, 1024]")
    if float(config.beta) < 0:
        raise ConfigError(f"--config.beta={config.beta}: expected >= 0")
    if config.latents is not None and not pathlib.Path(config.latents).expanduser().is_file():
        raise ConfigError(f"--config.latents={config.latents}: file not found (expected W+ latents .npy/.npz)")
    for p in mapper_paths(config):
        if not pathlib.Path(p).expanduser().exists():
            raise ConfigError(f"--config.mappers: {p} does not exist")
    validate_precompute(config)
    import importlib.util
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("--mode=app needs gradio: pip install 'styleclip_jax[app]' (or pip install -e '.[app]')")


def mapper_paths(config) -> list:
    return [] if config.mappers is None else io_utils.parse_list(config.mappers, "--config.mappers")


def run(config, workdir: str) -> None:
    from ..app import editor as editor_mod
    from ..app import ui
    out = pathlib.Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    for h in ("127.0.0.1", "localhost"):  # the server's own readiness probe must not go through a proxy
        os.environ["NO_PROXY"] = ",".join(x for x in (os.environ.get("NO_PROXY"), h) if x)
    ed = editor_mod.Editor.from_config(config)
    demo = ui.build(ed, config, out)
    maps = mapper_paths(config)
    threading.Thread(target=ed.warm_up, args=(config.neutral, config.target, float(config.alpha),
                                              float(config.beta), maps[0] if maps else None), daemon=True).start()
    try:
        ui.serve(demo, config, out)
    finally:  # a process that exits while XLA compiles in the warm-up thread aborts; let it finish first
        ed.ready.wait(timeout=120)
