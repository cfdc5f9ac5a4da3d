"""EEG-Deformer: a dense convolutional transformer for raw EEG.

Reference
---------
Y. Ding et al., "EEG-Deformer: A Dense Convolutional Transformer for Brain-Computer
Interfaces", IEEE Journal of Biomedical and Health Informatics, 2024.
Public code: github.com/yi-ding-cs/EEG-Deformer.

This is an independent implementation of the published architecture. With the same
hyper-parameters it has exactly the parameter count of the reference code, and it computes the
same function; two things are done differently because they are faster:

* The temporal convolution (1 -> F maps, kernel k) and the spatial convolution (F -> F maps over
  all channels) are linear maps applied one after the other, so their weights are contracted
  into one ``(F, n_chans, k)`` kernel per forward pass and applied as a single ``conv1d``. This
  avoids the ``(batch, F, n_chans, n_times)`` intermediate tensor, which is the largest tensor of
  the reference network. Both weights stay separate parameters with their own max-norm
  constraint, so gradients and parameter count are those of the two-layer form.
* Self-attention uses :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from physioaffect.models._base import EEGModel, ModelConfigError

__all__ = ["EEGDeformer", "deformer_temporal_kernel"]


def deformer_temporal_kernel(sfreq: float) -> int:
    """Temporal kernel length of EEG-Deformer: the odd integer nearest ``0.1 * sfreq``.

    Ties (``0.1 * sfreq`` even) round up, as in the reference configurations
    (128 Hz -> 13, 200 Hz -> 21, 500 Hz -> 51).

    Parameters
    ----------
    sfreq : float
        Sampling rate in Hz.
    """
    return 2 * math.floor(0.1 * sfreq / 2) + 1


def max_norm_(weight: torch.Tensor, max_norm: float) -> None:
    """Rescale each output filter of ``weight`` to an L2 norm of at most ``max_norm``.

    Applied to ``.data`` as in the reference (a constraint, not part of the gradient).
    """
    weight.data.copy_(torch.renorm(weight.data, p=2, dim=0, maxnorm=max_norm))


class _Attention(nn.Module):
    """Multi-head self-attention over the ``n_kernels`` tokens (token size ``dim``)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.to_qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (b, h, n, d)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Sequential):
    """LayerNorm, Linear, GELU, Dropout, Linear, Dropout (no residual of its own)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )


class _HCTLayer(nn.Module):
    """One layer of the hierarchical coarse-to-fine transformer; halves the token length."""

    def __init__(
        self, n_kernels: int, dim: int, heads: int, dim_head: int, mlp_dim: int, kernel: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.attn = _Attention(dim, heads, dim_head, dropout)
        self.ff = _FeedForward(dim, mlp_dim, dropout)
        self.fine = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv1d(n_kernels, n_kernels, kernel, padding=kernel // 2),
            nn.BatchNorm1d(n_kernels),
            nn.ELU(),
            nn.MaxPool1d(2),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coarse = F.max_pool1d(x, 2)
        coarse = self.attn(coarse) + coarse
        fine = self.fine(x)
        # Dense information purification: log power of each fine-grained token.
        info = torch.log(fine.pow(2).mean(dim=-1))
        return self.ff(coarse) + fine, info


class EEGDeformer(EEGModel):
    """EEG-Deformer (Ding et al., IEEE JBHI 2024) for raw EEG windows.

    Input ``(batch, n_chans, n_times)`` raw EEG (z-scored per channel); output
    ``(batch, n_outputs)`` logits (or regression values).

    Architecture: shallow CNN encoder (temporal conv 1 -> ``n_kernels`` with "same" padding,
    spatial conv over all channels, both max-norm ``max_norm``; batch norm, ELU, max-pool /2)
    giving ``n_kernels`` tokens of length ``n_times // 2`` plus a learnable position embedding;
    ``depth`` hierarchical coarse-to-fine transformer layers (coarse: max-pool /2 then multi-head
    self-attention with residual; fine: dropout, Conv1d kernel ``temporal_kernel``, batch norm,
    ELU, max-pool /2; output = FeedForward(coarse) + fine); dense information purification
    (``log(mean(fine**2))`` of every layer) concatenated with the flattened last output; one
    linear head of input size ``n_kernels * (n_times // 2**(depth+1) + depth)``.

    Parameters
    ----------
    n_chans, n_outputs, n_times, sfreq
        braindecode signature: channels, outputs, samples per window, sampling rate (Hz).
        Give any consistent subset of braindecode's signal arguments, ``chs_info`` and
        ``input_window_seconds`` included (see :class:`~physioaffect.models.EEGModel`).
    temporal_kernel : int or None
        Length (samples, odd) of the temporal and fine-grained kernels. Default: the odd integer
        nearest ``0.1 * sfreq`` (:func:`deformer_temporal_kernel`).
    n_kernels : int
        Number of CNN feature maps = number of transformer tokens (paper: 64).
    depth : int
        Number of coarse-to-fine transformer layers (paper: 4).
    heads, dim_head : int
        Attention heads and their size (paper: 16 / 16 or 32 / 32).
    mlp_dim : int
        Hidden size of the feed-forward block (paper: equal to ``heads``).
    dropout : float
        Dropout probability (paper: 0.5 or 0.25).
    max_norm : float
        Max-norm constraint of the two CNN-encoder kernels (paper: 2).

    Reference configurations with 2 outputs and their parameter counts: fatigue
    (30 ch, 128 Hz, 384 samples, heads 16) 542,930; mental workload (19 ch, 500 Hz, 2000
    samples, heads 16, dropout 0.25) 1,983,430; attention (28 ch, 200 Hz, 800 samples, heads 32)
    2,052,062.
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        sfreq: float | None,
        temporal_kernel: int | None = None,
        n_kernels: int = 64,
        depth: int = 4,
        heads: int = 16,
        dim_head: int = 16,
        mlp_dim: int = 16,
        dropout: float = 0.5,
        max_norm: float = 2.0,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq)
        if temporal_kernel is None:
            if sfreq is None:
                raise ModelConfigError(
                    "EEGDeformer: needs sfreq (Hz) for its temporal kernel (the odd integer "
                    "nearest 0.1 * sfreq); give sfreq, input_window_seconds or temporal_kernel")
            temporal_kernel = deformer_temporal_kernel(self.sfreq)
        self._remember_config(locals())
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ModelConfigError(
                f"EEGDeformer: temporal_kernel must be a positive odd integer, got {temporal_kernel}"
            )
        if depth < 1 or n_times // 2 ** (depth + 1) < 1:
            raise ModelConfigError(
                f"EEGDeformer: n_times={n_times} is too short for depth={depth}; "
                f"need at least {2 ** (depth + 1)} samples"
            )
        self.temporal_kernel = int(temporal_kernel)
        self.n_kernels = int(n_kernels)
        self.depth = int(depth)
        self.max_norm = float(max_norm)

        # CNN encoder. The two convolutions keep the reference's parameter shapes but are applied
        # as one contracted kernel in forward (see the module docstring).
        self.conv_time = nn.Conv2d(1, n_kernels, (1, temporal_kernel))
        self.conv_spat = nn.Conv2d(n_kernels, n_kernels, (n_chans, 1))
        self.bn = nn.BatchNorm1d(n_kernels)
        dim = n_times // 2
        self.pos_embedding = nn.Parameter(torch.randn(1, n_kernels, dim))

        layers = []
        for _ in range(depth):
            layers.append(
                _HCTLayer(n_kernels, dim // 2, heads, dim_head, mlp_dim, temporal_kernel, dropout)
            )
            dim //= 2
        self.layers = nn.ModuleList(layers)
        self.n_features = n_kernels * (dim + depth)
        self.head = nn.Linear(self.n_features, n_outputs)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """CNN encoder: ``(B, C, T)`` -> tokens ``(B, n_kernels, T // 2)``."""
        max_norm_(self.conv_time.weight, self.max_norm)
        max_norm_(self.conv_spat.weight, self.max_norm)
        w_t = self.conv_time.weight[:, 0, 0, :]  # (F, k)
        w_s = self.conv_spat.weight[..., 0]  # (F_out, F_in, C)
        weight = torch.einsum("oic,ik->ock", w_s, w_t)  # (F_out, C, k)
        bias = self.conv_spat.bias + w_s.sum(dim=2) @ self.conv_time.bias
        x = F.conv1d(x, weight, bias, padding=self.temporal_kernel // 2)
        x = F.max_pool1d(F.elu(self.bn(x)), 2)
        return x + self.pos_embedding

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Dense feature vector before the head, ``(B, n_kernels * (L_last + depth))``."""
        self._check_input(x, (None, self.n_chans, self.n_times), "(batch, n_chans, n_times)")
        x = self._encode(x)
        infos = []
        for layer in self.layers:
            x, info = layer(x)
            infos.append(info)
        return torch.cat([x.flatten(1), *infos], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` for raw EEG ``x`` of shape ``(B, n_chans, n_times)``."""
        return self.head(self.forward_features(x))
