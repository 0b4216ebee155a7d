"""The interactive editor (`python main.py --mode=app`): callbacks without a browser, and a Gradio page on top.

    from styleclip_jax.app import editor
    ed = editor.Editor.from_config(config)          # loads G, CLIP, the S statistics and fs3 once
    src = ed.source_from_seed(3)
    res = ed.edit(src, "a shape", "a red shape", alpha=2.0, beta=0.1)   # res.image (H, W, 3) in [-1, 1]

`editor` holds every callback as a plain method (unit-tested in tests/test_app.py); `uploads` decodes uploaded
files with PIL only, size-checked; `ui` builds the Gradio Blocks page (gradio is the optional extra
`pip install 'styleclip_jax[app]'`, imported only there).
"""
