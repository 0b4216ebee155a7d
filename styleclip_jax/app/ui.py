"""The Gradio page of the editor: widgets wired to `editor.Editor` methods; errors become a message in the page."""
from __future__ import annotations

import functools
import os
import pathlib
import time
import traceback
import uuid

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reporting, no version check

import gradio as gr  # noqa: E402

from . import editor as E  # noqa: E402
from ..errors import ConfigError, StyleClipError  # noqa: E402

TITLE = "StyleCLIP-JAX interactive editor"
CHANNEL_HEADERS = ["layer", "channel", "relevance"]


def _error_text(e: Exception) -> str:
    if isinstance(e, (StyleClipError, ValueError, OSError)):
        return f"**error:** {' '.join(str(e).split())}"
    traceback.print_exc()
    return f"**error:** unexpected {type(e).__name__}: {' '.join(str(e).split())}"


def _guarded(n_out: int, msg_index: int):
    """Run a callback after warm-up; on an error leave every output as it is and put the message in the page."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            try:
                return fn(*args)
            except Exception as e:  # never let a bad input take the server down
                outs = [gr.update() for _ in range(n_out)]
                outs[msg_index] = _error_text(e)
                return tuple(outs)
        return wrapper
    return deco


def build(ed: "E.Editor", config, workdir: pathlib.Path) -> gr.Blocks:
    workdir = pathlib.Path(workdir)
    maps = [] if config.mappers is None else __import__("json").loads(config.mappers)
    res = ed.G.cfg.img_resolution
    present = [g for g in E.GROUPS if ed.group_layers[g]]
    theme = gr.themes.Default(font=["sans-serif"], font_mono=["monospace"])  # no web fonts: works offline
    with gr.Blocks(title=TITLE, theme=theme, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\nGlobal directions (text → StyleSpace Δs) and latent mappers on a "
                    f"{res}-px generator. Moving α re-renders with the cached Δs; text and β recompute it.")
        status = gr.Markdown(f"**status:** {ed.status}", elem_id="status")
        timer = gr.Timer(0.5)
        msg = gr.Markdown("", elem_id="message")
        source_state = gr.State(None)
        edit_state = gr.State(None)
        with gr.Row():
            with gr.Column():
                with gr.Tab("Seed"):
                    seed = gr.Number(value=int(config.seed), precision=0, label="seed", elem_id="seed")
                    psi = gr.Slider(0.0, 1.0, value=float(config.truncation_psi), step=0.05, label="truncation ψ")
                with gr.Tab("Latents file"):
                    latents = gr.File(label="W+ latents (.npy / .npz; empty: --config.latents)",
                                      file_types=[".npy", ".npz"],
                                      type="filepath", elem_id="latents_file")
                    latents_index = gr.Number(value=0, precision=0, label="index")
                with gr.Tab("Upload photo"):
                    photo = gr.File(label="image (PNG, JPEG, WebP, ...)", type="filepath", elem_id="photo")
                    refine_steps = gr.Number(value=int(config.refine_steps), precision=0, elem_id="refine_steps",
                                             label="refinement steps (0: encoder only)")
                with gr.Row():
                    source_img = gr.Image(label="source", type="numpy", format="png", interactive=False,
                                          elem_id="source", height=220)
                    recon_img = gr.Image(label="reconstruction (what is edited)", type="numpy", format="png",
                                         interactive=False, elem_id="reconstruction", height=220)
            with gr.Column():
                preview = gr.Image(label="edited", type="numpy", format="png", interactive=False, elem_id="preview",
                                   height=300)
                with gr.Tab("Global direction") as gd_tab:
                    neutral = gr.Textbox(value=config.neutral, label="neutral prompt", elem_id="neutral")
                    target = gr.Textbox(value=config.target, label="target prompt (Enter to apply)", elem_id="target")
                    alpha = gr.Slider(-10, 10, value=float(config.alpha), step=0.1, label="α (strength)",
                                      elem_id="alpha")
                    beta = gr.Slider(0.0, 0.5, value=float(config.beta), step=0.01,
                                     label="β (disentanglement: channels with |relevance| ≥ β)", elem_id="beta")
                    with gr.Accordion("strength per layer group", open=False):
                        strength = {g: gr.Slider(0.0, 2.0, value=1.0, step=0.05, elem_id=f"strength_{g}",
                                                 label=f"{g} ({_group_text(ed, g)})", interactive=g in present)
                                    for g in E.GROUPS}
                    kept = gr.Markdown("", elem_id="kept")
                    channels = gr.Dataframe(headers=CHANNEL_HEADERS, datatype=["str", "number", "number"],
                                            label="channels the direction uses (by |relevance|)",
                                            interactive=False, elem_id="channels")
                with gr.Tab("Latent mapper") as mapper_tab:
                    mapper = gr.Dropdown(choices=maps, value=maps[0] if maps else None, allow_custom_value=True,
                                         label="mapper (folder from --mode=mapper_train, or an official .pt)",
                                         elem_id="mapper")
                    mapper_alpha = gr.Slider(-3, 3, value=1.0, step=0.05, label="α", elem_id="mapper_alpha")
                with gr.Row():
                    download_btn = gr.Button("download PNG + latents", elem_id="download")
                    study_btn = gr.Button("export study (index.html, grids, images.npz, metrics.json)",
                                          elem_id="study")
                files = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="files")
                study_md = gr.Markdown("", elem_id="study_out")

        # ---------------------------------------------------------------------------------------- callbacks
        def show_source(src):
            orig = src.photo if src.photo is not None else E.to_display(src.reconstruction)
            return src, orig, E.to_display(src.reconstruction)

        def gd_render(src, ntr, tgt, a, b, *gs):
            ed.ready.wait()
            if src is None:
                return gr.update(), gr.update(), ""
            r = ed.edit(src, ntr, tgt, a, b, dict(zip(E.GROUPS, gs)))
            return E.to_display(r.image), r, ""

        def channel_table(ntr, tgt, b):
            ed.ready.wait()
            rows, n = ed.channels(ntr, tgt, b, int(config.channels_shown))
            total = ed.fs3.shape[0]
            return ([[l, c, round(v, 4)] for l, c, v in rows],
                    f"**channels kept:** {n} of {total} (β = {float(b):g}); the {len(rows)} most relevant:", "")

        def map_render(src, path, a):
            ed.ready.wait()
            if src is None:
                return gr.update(), gr.update(), ""
            r = ed.mapper_edit(src, path, a)
            return E.to_display(r.image), r, ""

        src_out = [source_state, source_img, recon_img, msg]
        gd_in = [source_state, neutral, target, alpha, beta] + [strength[g] for g in E.GROUPS]
        gd_out = [preview, edit_state, msg]
        ch_out = [channels, kept, msg]

        @_guarded(4, 3)
        def from_seed(s, p):
            ed.ready.wait()
            return (*show_source(ed.source_from_seed(s, p)), "")

        @_guarded(4, 3)
        def from_latents(path, i):
            ed.ready.wait()
            path = path or config.latents  # the index box also picks from --config.latents
            if not path:
                return gr.update(), gr.update(), gr.update(), ""
            return (*show_source(ed.source_from_latents(path, i)), "")

        @_guarded(4, 3)
        def from_photo(path, steps):
            ed.ready.wait()
            if not path:
                return gr.update(), gr.update(), gr.update(), ""
            src = ed.source_from_upload(path, steps)
            return (*show_source(src), f"inverted {pathlib.Path(path).name} ({src.note})")

        gd_fn, ch_fn, map_fn = _guarded(3, 2)(gd_render), _guarded(3, 2)(channel_table), _guarded(3, 2)(map_render)

        @_guarded(3, 2)
        def gd_then(*args):  # a render chained after another step keeps that step's message
            img, r, _ = gd_render(*args)
            return img, r, gr.update()
        fast = dict(trigger_mode="always_last", show_progress="hidden")

        def then_render(ev):
            ev.then(gd_then, gd_in, gd_out, **fast)

        for ev in (seed.submit(from_seed, [seed, psi], src_out), psi.release(from_seed, [seed, psi], src_out),
                   latents.upload(from_latents, [latents, latents_index], src_out),
                   latents_index.submit(from_latents, [latents, latents_index], src_out),
                   photo.upload(from_photo, [photo, refine_steps], src_out)):
            then_render(ev)
        alpha.change(gd_fn, gd_in, gd_out, **fast)
        for g in E.GROUPS:
            strength[g].change(gd_fn, gd_in, gd_out, **fast)
        for ev in (neutral.submit, target.submit, neutral.blur, target.blur, beta.change):
            ev(ch_fn, [neutral, target, beta], ch_out, **fast).then(gd_then, gd_in, gd_out, **fast)
        gd_tab.select(gd_fn, gd_in, gd_out, **fast)
        map_in = [source_state, mapper, mapper_alpha]
        mapper_alpha.change(map_fn, map_in, gd_out, **fast)
        mapper.change(map_fn, map_in, gd_out, **fast)
        mapper_tab.select(map_fn, map_in, gd_out, **fast)

        @_guarded(2, 1)
        def download(r):
            if r is None:
                raise E.InputError("nothing to download yet: make an edit first")
            d = workdir / "downloads" / _stamp()
            return list(ed.save_edit(r, d)), f"saved {d}"

        @_guarded(2, 1)
        def study(src, ntr, tgt, a, b):
            ed.ready.wait()
            if src is None:
                raise E.InputError("no source image yet")
            d = workdir / f"study_{_stamp()}"
            summary = ed.export_study(src, ntr, tgt, [a], b, d)
            gain = summary["cells"][0]["clip_similarity_gain_mean"]
            return f"study written to `{d}` (index.html, grid, images.npz, metrics.json; CLIP gain {gain:+.4f})", ""

        download_btn.click(download, [edit_state], [files, msg])
        study_btn.click(study, [source_state, neutral, target, alpha, beta], [study_md, msg])

        def tick():
            done = ed.ready.is_set()
            return f"**status:** {ed.status}", gr.Timer(active=not done)

        timer.tick(tick, None, [status, timer], show_progress="hidden")

        @_guarded(7, 6)
        def initial(s, p, ntr, tgt, b):
            ed.ready.wait()
            first = ed.source_from_latents(config.latents, 0) if config.latents else ed.source_from_seed(s, p)
            src, a, c = show_source(first)
            rows, k, _ = channel_table(ntr, tgt, b)
            return src, a, c, rows, k, f"**status:** {ed.status}", ""

        demo.load(initial, [seed, psi, neutral, target, beta],
                  [source_state, source_img, recon_img, channels, kept, status, msg]).then(gd_then, gd_in, gd_out)
    return demo


def _stamp() -> str:
    """A folder name per export: time, plus a random suffix so two exports in one second do not collide."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _group_text(ed, g) -> str:
    res = sorted({l.resolution for l in ed.layers if ed.groups[l.name] == g})
    return f"{res[0]}-{res[-1]} px" if res else "no layers in this generator"


def serve(demo: gr.Blocks, config, workdir: pathlib.Path) -> None:
    """Start the server, print the URL once it answers, and block until Ctrl-C."""
    host, port = str(config.host), int(config.port)
    demo.queue(default_concurrency_limit=2)
    try:
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, show_api=False,
                    share=False, inbrowser=False, max_file_size=int(float(config.max_upload_mb) * 2 ** 20),
                    allowed_paths=[str(workdir)])
    except OSError as e:  # port taken, host not an address of this machine
        raise ConfigError(f"--config.host={host} --config.port={port}: cannot serve there "
                          f"({' '.join(str(e).split())})") from None
    shown = f"[{host}]" if ":" in host else host
    print(f"StyleCLIP-JAX editor serving at http://{shown}:{port}/ (Ctrl-C stops it)", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()
