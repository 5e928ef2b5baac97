"""npvae: a Variational Autoencoder written from scratch in NumPy.

Every forward and backward pass is written by hand, with its equation in the
docstring, and every gradient is checked by finite differences
(:mod:`npvae.core.gradcheck`).  Three layers, imports only downward:
:mod:`npvae.core` (the math), :mod:`npvae.models` (the estimators) and
:mod:`npvae.app` (command line, run folders, data sets, figures).
"""
from .core import gradcheck, layers, losses
from .core.layers import reparameterize, reparameterize_backward
from .core.optimizers import SGD, Adam
from .models import (IWAE, VAE, Autoencoder, ConditionalVAE, TwoLayerIWAE, TwoLayerVAE,
                     evaluation, inference)

__version__ = "0.1.0"
__all__ = ["VAE", "IWAE", "Autoencoder", "ConditionalVAE", "TwoLayerVAE", "TwoLayerIWAE",
           "Adam", "SGD", "reparameterize", "reparameterize_backward", "gradcheck", "layers",
           "losses", "evaluation", "inference"]
