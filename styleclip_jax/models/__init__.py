"""The networks, as pure functions over parameter pytrees with thin bundles on top.

ops (upfirdn2d, bias_act, modulated conv, each with a slow reference), layout (the StyleSpace table),
generator (StyleGAN2: mapping, W -> S, synthesis), clip (CLIP image/text towers and the StyleCLIP loss),
arcface (IR-SE50 identity network), mapper (StyleCLIP latent-mapper networks).
"""
