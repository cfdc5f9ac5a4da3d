"""Data augmentation of EEG batches during training (label-preserving, on the batch's device).

:func:`fourier_surrogate` is the Fourier-transform surrogate of Schwabedal et al. (2019),
"Addressing class imbalance in classification problems of noisy signals by using Fourier
transform surrogates" (arXiv:1806.08675), as braindecode's ``FTSurrogate``: every frequency
component's phase is shifted by a random angle, the same for all channels, so each channel's
power spectrum and the cross-channel phase differences are kept while the waveform (and with it
anything a network could use to recognise *the trial* rather than its state) is new in every
epoch. Affect in EEG lives mostly in band power and its spatial pattern, which the surrogate
keeps; on small datasets it stops deep networks from memorising training trials.
"""

from __future__ import annotations

import math

import torch

__all__ = ["fourier_surrogate", "AUGMENTATIONS"]

#: Augmentations by name (``optim.augment``).
AUGMENTATIONS = ("none", "ft_surrogate", "ft_surrogate_channels")


def fourier_surrogate(x: torch.Tensor, prob: float = 0.5, magnitude: float = 1.0,
                      channel_independent: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Fourier-transform surrogates of some windows of a batch.

    Parameters
    ----------
    x : Tensor, shape (batch, channels, samples)
        Raw EEG windows (any unit).
    prob : float
        Probability that a window is replaced by its surrogate (0-1).
    magnitude : float
        Phase noise as a fraction of 2*pi (1: uniform phases, braindecode's default).
    channel_independent : bool
        Draw the phases per channel (braindecode's ``channel_indep=True``): each channel's
        spectrum is still kept, the cross-channel phase relations are not.
    generator : torch.Generator or None
        Random source (None: torch's global generator, saved with epoch checkpoints).

    Returns
    -------
    Tensor
        Same shape and dtype; windows not drawn are returned unchanged. The DC component is
        kept (the phase shift of frequency 0 is zero) and the output is real.
    """
    if x.ndim != 3 or prob <= 0:
        return x
    n, _, t = x.shape
    pick = torch.rand(n, device=x.device, generator=generator) < prob
    if not bool(pick.any()):
        return x
    every = bool(pick.all())  # the default (prob 1): no gather, no scatter, no copy of x
    sel = x.float() if every else x[pick].float()
    spec = torch.fft.rfft(sel, dim=-1)
    phase = torch.rand((sel.shape[0], sel.shape[1] if channel_independent else 1,
                        spec.shape[-1]), device=x.device,
                       generator=generator) * (2 * math.pi * magnitude)
    phase[..., 0] = 0.0
    if t % 2 == 0:
        phase[..., -1] = 0.0  # the Nyquist bin of an even length is real too
    new = torch.fft.irfft(spec * torch.polar(torch.ones_like(phase), phase), n=t,
                          dim=-1).to(x.dtype)
    if every:
        return new
    out = x.clone()
    out[pick] = new
    return out
