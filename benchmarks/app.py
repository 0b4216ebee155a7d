"""Slider-to-image latency of the interactive editor (shapes world by default): median and p90 per kind of move.

    python benchmarks/app.py                  # callbacks in-process, then through the Gradio server over HTTP
    python benchmarks/app.py --no-server      # callbacks only

Kinds: an alpha move (cached Δs: one render), a beta move (Δs recomputed from the cached text direction), a new
target text (CLIP text encoding of the 79 templates, Δs, render). "callback" times what the page's callback does
after warm-up: the edit, the display upscale and the PNG encoding. "server" times a request through the running
Gradio server with gradio_client (HTTP, queue, callback, PNG written and downloaded by the client), i.e. from
request to image file. No value is asserted anywhere.
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("shape", "circle", "square", "triangle")


def stats(xs):
    xs = np.asarray(xs) * 1000
    return f"median {np.median(xs):7.1f} ms   p90 {np.percentile(xs, 90):7.1f} ms   (n={len(xs)})"


def moves(n, seed=0):
    rs = np.random.RandomState(seed)
    alphas = list(np.round(rs.uniform(-5, 5, n), 2))
    betas = list(np.round(np.linspace(0.05, 0.3, n), 4))  # all distinct: no cache hits
    targets = [f"a {c} {s}" for s in SHAPES for c in COLOURS][1:n + 1]  # "a red shape" is warmed up
    return alphas, betas, targets


def bench_callbacks(ed, n):
    from PIL import Image

    from styleclip_jax.app.editor import to_display
    src = ed.source_from_seed(0)
    alphas, betas, targets = moves(n)

    def one(**kw):
        t = time.perf_counter()
        args = dict(neutral="a shape", target="a red shape", alpha=1.0, beta=0.1) | kw
        r = ed.edit(src, **args)
        Image.fromarray(to_display(r.image)).save(io.BytesIO(), format="PNG")
        return time.perf_counter() - t
    return {"alpha move": [one(alpha=a) for a in alphas],
            "beta move": [one(beta=b) for b in betas],
            "new target text": [one(target=t) for t in targets]}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_server(ed, config, n):
    from gradio_client import Client

    from styleclip_jax.app import ui
    config.port = _free_port()
    demo = ui.build(ed, config, tempfile.mkdtemp())
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name="127.0.0.1", server_port=config.port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{config.port}/", verbose=False, download_files=tempfile.mkdtemp())
        client.predict(0, 0.7, api_name="/from_seed")  # the session's source
        alphas, betas, targets = moves(n, seed=1)

        def one(**kw):
            a = dict(ntr="a shape", tgt="a red shape", a=1.0, b=0.1) | kw
            t = time.perf_counter()
            out = client.predict(a["ntr"], a["tgt"], a["a"], a["b"], 1.0, 1.0, 1.0, api_name="/gd_render")
            dt = time.perf_counter() - t
            assert os.path.isfile(out[0] if isinstance(out, (list, tuple)) else out), out
            return dt
        one()  # the first request of a session opens its connections
        return {"alpha move": [one(a=a) for a in alphas],
                "beta move": [one(b=b) for b in betas],
                "new target text": [one(tgt=t) for t in targets]}
    finally:
        demo.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20, help="moves of each kind")
    p.add_argument("--no-server", action="store_true", help="time the callbacks only")
    p.add_argument("--preset", default="shapes")
    args = p.parse_args()
    import jax

    from configs.app import get_config
    from styleclip_jax.app.editor import Editor
    config = get_config(args.preset)
    t = time.perf_counter()
    ed = Editor.from_config(config, verbose=False)
    load = time.perf_counter() - t
    warm = ed.warm_up(config.neutral, config.target, float(config.alpha), float(config.beta))
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} CPUs; generator "
          f"{ed.G.cfg.img_resolution} px; load {load:.1f} s, warm-up (compile) {warm:.1f} s; {ed.status}")
    for name, res in (("callback", bench_callbacks(ed, args.n)),) + (
            () if args.no_server else (("server (HTTP, gradio_client)", bench_server(ed, config, args.n)),)):
        print(f"{name}:")
        for kind, xs in res.items():
            print(f"  {kind:16s} {stats(xs)}")


if __name__ == "__main__":
    main()
