"""Multimodal fusion of EEG, peripheral physiology and facial features with missing modalities.

Each modality has its own encoder that turns one sample into one ``d_model`` token:

* ``eeg``: EEG-Deformer on raw EEG ``(batch, n_chans, n_times)`` or EmT on band-power graphs
  ``(batch, n_sub_windows, n_chans, n_features)`` (the backbone's head is removed and its
  feature vector projected to ``d_model``);
* ``peripheral``: feature sequences ``(batch, T_p, F_p)`` (ECG/HRV, EDA, PPG, respiration,
  temperature features per step);
* ``face``: feature sequences ``(batch, T_f, F_f)`` (action units, landmarks, expression
  scores per frame or step).

The tokens (plus a learned modality embedding) go through one self-attention block in which
absent modalities are masked out as keys, are mean-pooled over the *present* modalities and
classified by a linear head. An absent modality is given by ``None`` or by a ``False`` entry of
the modality mask; its encoder is not run on those samples at all, so the output does not
depend on whatever values the tensor holds there (no zeros that mean something). In training,
modality dropout hides each present modality of a sample with probability ``modality_dropout``,
always keeping at least one, so the model learns to decode from any subset: the same trained
model is evaluated EEG-only, peripheral-only, face-only and fused by choosing the mask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from physioaffect.models._base import EEGModel, ModelConfigError, ModelInputError
from physioaffect.models.deformer import EEGDeformer
from physioaffect.models.emt import EmT

__all__ = ["MultimodalFusion", "MODALITIES"]

MODALITIES: tuple[str, str, str] = ("eeg", "peripheral", "face")


class _SequenceEncoder(nn.Module):
    """Feature sequence ``(B, T, F)`` -> token ``(B, d)``: projection, two temporal convs, mean."""

    def __init__(self, n_features: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(n_features), nn.Linear(n_features, d_model))
        self.conv1 = nn.Conv1d(d_model, d_model, 3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, 3, padding=1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.proj(x)).transpose(1, 2)  # (B, d, T)
        h = h + F.gelu(self.conv1(self.drop(h)))
        h = h + F.gelu(self.conv2(self.drop(h)))
        return h.mean(dim=2)


class MultimodalFusion(EEGModel):
    """Token-level fusion of EEG, peripheral and face features with a modality mask.

    Parameters
    ----------
    n_chans, n_outputs, n_times, sfreq
        braindecode signature for the EEG branch (channels, outputs, samples, Hz).
        Give any consistent subset of braindecode's signal arguments, ``chs_info`` and
        ``input_window_seconds`` included (see :class:`~physioaffect.models.EEGModel`).
    eeg_encoder : {"deformer", "emt", "none"}
        EEG backbone: EEG-Deformer on raw EEG ``(B, n_chans, n_times)``, EmT on band-power graphs
        ``(B, n_sub_windows, n_chans, n_features)``, or no EEG branch.
    eeg_kwargs : dict or None
        Extra hyper-parameters for the EEG backbone (e.g. ``{"depth": 2}``).
    n_peripheral_features, n_face_features : int
        Features per step of the peripheral and face sequences ``(B, T, F)``; 0 = no branch.
    d_model : int
        Token size of the fusion block.
    heads : int
        Attention heads of the fusion block (must divide ``d_model``).
    dropout : float
        Dropout in the sequence encoders and the fusion block.
    modality_dropout : float
        Probability, in training only, of hiding each present modality of a sample (at least one
        modality of every sample is kept).

    Notes
    -----
    ``forward(eeg=None, peripheral=None, face=None, mask=None)`` returns ``(B, n_outputs)``.
    ``mask`` is a ``(B, 3)`` boolean tensor in the order of :data:`MODALITIES`, or a mapping from
    modality name to a ``(B,)`` boolean tensor; a modality given as ``None`` is absent. Every
    sample needs at least one present modality.
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        sfreq: float | None,
        eeg_encoder: str = "deformer",
        eeg_kwargs: dict[str, Any] | None = None,
        n_peripheral_features: int = 0,
        n_face_features: int = 0,
        d_model: int = 64,
        heads: int = 4,
        dropout: float = 0.25,
        modality_dropout: float = 0.25,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq)
        self._remember_config(locals())
        eeg_kwargs = dict(eeg_kwargs or {})
        if eeg_encoder not in ("deformer", "emt", "none"):
            raise ModelConfigError(
                f"MultimodalFusion: eeg_encoder must be 'deformer', 'emt' or 'none', got {eeg_encoder!r}"
            )
        if d_model % heads:
            raise ModelConfigError(f"MultimodalFusion: heads={heads} must divide d_model={d_model}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ModelConfigError(
                f"MultimodalFusion: modality_dropout must be in [0, 1), got {modality_dropout}"
            )
        self.eeg_encoder_kind = eeg_encoder
        self.modality_dropout = float(modality_dropout)
        self.heads = heads
        self.encoders = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        if eeg_encoder != "none":
            backbone_cls = EEGDeformer if eeg_encoder == "deformer" else EmT
            backbone = backbone_cls(n_chans, 1, n_times, sfreq, **eeg_kwargs)
            n_eeg = backbone.head.in_features
            backbone.head = nn.Identity()  # fusion has its own head
            self.encoders["eeg"] = backbone
            self.projections["eeg"] = nn.Sequential(nn.LayerNorm(n_eeg), nn.Linear(n_eeg, d_model))
        if n_peripheral_features > 0:
            self.encoders["peripheral"] = _SequenceEncoder(n_peripheral_features, d_model, dropout)
        if n_face_features > 0:
            self.encoders["face"] = _SequenceEncoder(n_face_features, d_model, dropout)
        if not self.encoders:
            raise ModelConfigError("MultimodalFusion: at least one modality branch is needed")
        self.n_features_of = {"peripheral": n_peripheral_features, "face": n_face_features}
        self.modality_embedding = nn.Parameter(torch.zeros(len(MODALITIES), d_model))
        nn.init.normal_(self.modality_embedding, std=0.02)
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(2 * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)
        self.norm_out = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_outputs)
        self.d_model = d_model

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities this model has a branch for."""
        return tuple(m for m in MODALITIES if m in self.encoders)

    def _resolve_mask(
        self, inputs: dict[str, torch.Tensor | None],
        mask: torch.Tensor | Mapping[str, torch.Tensor] | None,
    ) -> tuple[int, torch.Tensor]:
        given = {k: v for k, v in inputs.items() if v is not None}
        if not given:
            raise ModelInputError("MultimodalFusion: no modality given (eeg, peripheral, face)")
        for name in given:
            if name not in self.encoders:
                raise ModelInputError(f"MultimodalFusion: this model has no {name!r} branch")
        sizes = {v.shape[0] for v in given.values()}
        if len(sizes) != 1:
            raise ModelInputError(f"MultimodalFusion: modalities disagree on batch size: {sizes}")
        batch = sizes.pop()
        device = next(iter(given.values())).device
        if mask is None:
            full = torch.ones(batch, len(MODALITIES), dtype=torch.bool, device=device)
        elif isinstance(mask, Mapping):
            full = torch.ones(batch, len(MODALITIES), dtype=torch.bool, device=device)
            for name, m in mask.items():
                if name not in MODALITIES:
                    raise ModelInputError(f"MultimodalFusion: unknown modality {name!r} in mask")
                full[:, MODALITIES.index(name)] = torch.as_tensor(m, device=device).bool()
        else:
            full = torch.as_tensor(mask, device=device).bool().clone()
            if full.shape != (batch, len(MODALITIES)):
                raise ModelInputError(
                    f"MultimodalFusion: mask must have shape ({batch}, {len(MODALITIES)}), "
                    f"got {tuple(full.shape)}"
                )
        for i, name in enumerate(MODALITIES):
            if inputs.get(name) is None:
                full[:, i] = False
        if not bool(full.any(dim=1).all()):
            raise ModelInputError("MultimodalFusion: a sample has no present modality")
        return batch, full

    def _drop_modalities(self, mask: torch.Tensor) -> torch.Tensor:
        keep = mask & (torch.rand(mask.shape, device=mask.device) >= self.modality_dropout)
        # Samples that would lose every modality keep all they had.
        empty = ~keep.any(dim=1, keepdim=True)
        return torch.where(empty, mask, keep)

    def _check_modality(self, name: str, x: torch.Tensor) -> None:
        if name == "eeg":
            return  # the backbone checks its own input
        n_feat = self.n_features_of[name]
        if x.ndim != 3 or x.shape[2] != n_feat:
            raise ModelInputError(
                f"MultimodalFusion: {name} must have shape (batch, T, {n_feat}), got {tuple(x.shape)}"
            )

    def _encode(self, name: str, x: torch.Tensor) -> torch.Tensor:
        emb = self.encoders[name](x)
        return self.projections["eeg"](emb) if name == "eeg" else emb

    def forward(
        self,
        eeg: torch.Tensor | None = None,
        peripheral: torch.Tensor | None = None,
        face: torch.Tensor | None = None,
        mask: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` from whichever modalities are present (see class notes)."""
        inputs = {"eeg": eeg, "peripheral": peripheral, "face": face}
        batch, present = self._resolve_mask(inputs, mask)
        if self.training and self.modality_dropout > 0:
            present = self._drop_modalities(present)
        tokens = []
        for i, name in enumerate(MODALITIES):
            x = inputs[name]
            token = self.modality_embedding.new_zeros(batch, self.d_model)
            if x is not None:
                self._check_modality(name, x)
                idx = present[:, i].nonzero().squeeze(1)
                if idx.numel() == batch:  # all present: no gather/scatter needed
                    token = self._encode(name, x).to(token.dtype)
                elif idx.numel() > 0:
                    # Only present samples go through the encoder: masked values never enter.
                    emb = self._encode(name, x.index_select(0, idx))
                    token = token.index_copy(0, idx, emb.to(token.dtype))
            tokens.append(token)
        h = torch.stack(tokens, dim=1) + self.modality_embedding  # (B, M, d)
        b, m, d = h.shape
        qkv = self.qkv(self.norm1(h)).view(b, m, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn_mask = present[:, None, None, :]  # keys of absent modalities are never attended
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        h = h + self.drop(self.attn_out(a.transpose(1, 2).reshape(b, m, d)))
        h = h + self.drop(self.ff(self.norm2(h)))
        w = present.to(h.dtype).unsqueeze(2)
        pooled = (torch.where(present.unsqueeze(2), h, 0.0) * w).sum(1) / w.sum(1)
        return self.head(self.norm_out(pooled))

    @staticmethod
    def make_mask(
        batch: int, present: Sequence[str], device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``(batch, 3)`` mask with the named modalities present in every sample."""
        unknown = set(present) - set(MODALITIES)
        if unknown:
            raise ModelInputError(f"MultimodalFusion: unknown modalities {sorted(unknown)}")
        row = torch.tensor([m in present for m in MODALITIES], dtype=torch.bool, device=device)
        return row.expand(batch, -1).clone()
