"""The estimators: the VAE, its family and the Autoencoder, built from the
pieces of :mod:`npvae.core`, with their evaluation and inference."""
from .base import DTYPES
from .vae import VAE
from .autoencoder import Autoencoder
from .iwae import IWAE
from .conditional import ConditionalVAE
from .two_layer import TwoLayerIWAE, TwoLayerVAE
from . import evaluation, inference

__all__ = ["DTYPES", "VAE", "Autoencoder", "IWAE", "ConditionalVAE", "TwoLayerVAE", "TwoLayerIWAE",
           "evaluation", "inference"]
