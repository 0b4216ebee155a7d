"""The three StyleCLIP editing methods as jittable cores that take and return arrays (no file I/O).

latent_optimization (method 1), mapper (method 2: latent mappers, loss and training step),
global_direction (method 3: StyleSpace statistics, channel relevance, text -> direction -> edit),
global_direction_math (the official global-direction formulas), optim (Ranger, StyleCLIP's lr schedule).
"""
