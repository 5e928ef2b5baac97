"""Checkpoints of the npvae command's run folders: ``checkpoints/epoch-NNNN.npz``
in the format of :mod:`npvae.models.saving`, holding any npvae estimator."""
from pathlib import Path

from ..models import saving   # the package: every estimator class is defined
from ..models.base import BaseAutoencoder
from ..models.saving import FORMAT_VERSION, latest_checkpoint, save_checkpoint

__all__ = ["FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "epoch_checkpoint"]


def load_checkpoint(path, return_extra=False, require_optimizer=False):
    """Rebuild the npvae estimator a checkpoint (or a run folder's latest)
    holds: :func:`npvae.models.saving.load_checkpoint` for every class."""
    return saving.load_checkpoint(path, BaseAutoencoder, return_extra=return_extra,
                                  require_optimizer=require_optimizer)


def epoch_checkpoint(run, epoch):
    """The checkpoint file of run folder ``run`` after ``epoch`` epochs."""
    return Path(run) / "checkpoints" / f"epoch-{epoch:04d}.npz"
