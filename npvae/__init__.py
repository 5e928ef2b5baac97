"""npvae: a Variational Autoencoder written from scratch in NumPy.

Every forward and backward pass is written by hand, with its equation in the
docstring, and every gradient is checked by finite differences
(:mod:`npvae.gradcheck`).
"""
from . import gradcheck, layers, losses
from .conditional import ConditionalVAE
from .layers import reparameterize, reparameterize_backward
from .models import VAE, Autoencoder
from .iwae import IWAE
from .optimizers import SGD, Adam

__version__ = "0.1.0"
__all__ = ["VAE", "IWAE", "Autoencoder", "ConditionalVAE", "Adam", "SGD", "reparameterize",
           "reparameterize_backward", "gradcheck", "layers", "losses"]
