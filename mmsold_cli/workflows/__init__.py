"""Workflows built on the sampler: densifying point clouds and generating in a PCA latent space.

Import the modules themselves (``mmsold_cli.workflows.densify``, ``mmsold_cli.workflows.latent``);
this package imports nothing so that the command line stays fast to start.
"""
