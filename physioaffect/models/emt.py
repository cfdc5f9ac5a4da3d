"""EmT: emotion transformer over a temporal sequence of EEG graphs.

Reference
---------
Y. Ding et al., "EmT: A Novel Transformer for Generalized Cross-subject EEG Emotion
Recognition", IEEE Transactions on Neural Networks and Learning Systems, 2025.
Public code: github.com/yi-ding-cs/EmT.

Input is not raw EEG but a *sequence of graphs*: a segment (reference: 20 s) is cut into
sub-windows (reference: 2 s, overlap 0.75 for SEED; 4 s for FACED); every sub-window is one
graph with one node per channel and ``n_features`` node features (relative band power in seven
bands, Welch with 1 s windows). The tensor is ``(batch, n_sub_windows, n_chans, n_features)``.
Computing those features is the job of :mod:`physioaffect.features.graphs`, not of the model.

Weights saved by the official code load with :func:`physioaffect.models.io.import_official`
(:func:`official_key_map` names every official tensor's counterpart here).

Graph Laplacian without an eigendecomposition
---------------------------------------------
Chebyshev graph convolutions need the Laplacian rescaled to ``[-1, 1]``:
``L~ = 2 L / lambda_max - I``. For the symmetric normalised Laplacian
``L = I - D^-1/2 A D^-1/2`` of a non-negative adjacency ``lambda_max <= 2``, and with
``lambda_max = 2`` the rescaled operator is ``L~ = -D^-1/2 A D^-1/2``. That is what is computed
here (as in the public reference code, whose unused ``rescale_L`` helper is the only place an
``eigh`` appears), so no eigendecomposition runs in any forward pass. The Chebyshev terms
``T_k(L~)`` are formed once per forward as ``n_chans x n_chans`` matrices and applied to all
graphs of the batch in one matrix product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from physioaffect.models._base import EEGModel, ModelConfigError

__all__ = ["EmT", "EmTRegressor", "emt_n_sub_windows", "chebyshev_basis", "scaled_laplacian",
           "official_key_map"]


def emt_n_sub_windows(
    n_times: int, sfreq: float, sub_window_s: float = 2.0, sub_overlap: float = 0.75
) -> int:
    """Number of sub-windows (graphs) a segment of ``n_times`` samples is cut into.

    The official sliding window (:func:`physioaffect.features.graphs.emt_sub_window_starts`,
    the one formula the features use too): step ``int(win * (1 - sub_overlap))``, windows while
    ``start + win < n_times``. 36 for a 20 s segment at 200 Hz with 2 s sub-windows at 75 %
    overlap, 16 for FACED's 20 s at 250 Hz with 4 s sub-windows.

    Parameters
    ----------
    n_times : int
        Segment length in samples.
    sfreq : float
        Sampling rate in Hz.
    sub_window_s : float
        Sub-window length in seconds (reference: 2 s; FACED: 4 s).
    sub_overlap : float
        Fractional overlap of consecutive sub-windows in ``[0, 1)`` (reference: 0.75).
    """
    from physioaffect.features.graphs import emt_sub_window_starts
    from physioaffect.preprocessing.quality import SignalInputError

    try:
        starts, _ = emt_sub_window_starts(n_times, sfreq, sub_window_s, sub_overlap)
    except SignalInputError as err:
        raise ModelConfigError(f"EmT: {err}") from None
    return len(starts)


def scaled_laplacian(adj: torch.Tensor) -> torch.Tensor:
    """Rescaled normalised Laplacian ``-D^-1/2 A D^-1/2`` (``lambda_max = 2``), ``(C, C)``.

    ``1e-5`` is added to ``sqrt(degree)`` as in the reference, so isolated nodes give zero rows.
    """
    d = 1.0 / (torch.sqrt(adj.sum(dim=1)) + 1.0e-5)
    return -(d[:, None] * adj * d[None, :])


def chebyshev_basis(lap: torch.Tensor, order: int) -> torch.Tensor:
    """Chebyshev polynomials ``T_1 .. T_{order-1}`` of ``lap`` stacked to ``(order-1, C, C)``.

    ``T_0 = I`` is left out because applying it is free.
    """
    terms = [lap]
    if order > 2:
        eye = torch.eye(lap.shape[0], dtype=lap.dtype, device=lap.device)
        prev, cur = eye, lap
        for _ in range(2, order):
            prev, cur = cur, 2.0 * lap @ cur - prev
            terms.append(cur)
    return torch.stack(terms)


class _ChebConv(nn.Module):
    """Chebyshev graph convolution of order ``K`` with ReLU: ``relu(sum_k T_k(L~) X W_k + b)``."""

    def __init__(self, order: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.order = order
        # Shapes and initialisation as the reference (K, 1, F_in, F_out) and (1, 1, F_out).
        self.weight = nn.Parameter(torch.empty(order, 1, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(1, 1, out_features))
        nn.init.normal_(self.weight, 0.0, 0.1)
        nn.init.normal_(self.bias, 0.0, 0.1)

    def forward(self, x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        # x: (N, C, F_in); basis: (K-1, C, C). Put the node axis first so that all Chebyshev
        # terms of all graphs come from one GEMM, then one GEMM with the stacked weights.
        n, c, f = x.shape
        xt = x.transpose(0, 1).reshape(c, n * f)
        allt = torch.cat([xt, basis.reshape(-1, c) @ xt], dim=0)  # (K * C, N * F_in)
        terms = allt.reshape(self.order, c, n, f).permute(2, 1, 0, 3).reshape(n, c, -1)
        out = terms @ self.weight.reshape(-1, self.weight.shape[-1])
        return F.relu(out + self.bias)


class _GraphEncoder(nn.Module):
    """Stack of Chebyshev convolutions followed by a linear graph-to-token map."""

    def __init__(self, n_layers: int, n_chans: int, in_features: int, hidden: int, order: int):
        super().__init__()
        self.convs = nn.ModuleList(
            _ChebConv(order, in_features if i == 0 else hidden, hidden) for i in range(n_layers)
        )
        self.tokenizer = nn.Linear(n_chans * hidden, hidden)

    def forward(self, x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x, basis)
        return self.tokenizer(x.flatten(1))


class _FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )


class _TCTAttention(nn.Module):
    """Multi-head attention with the per-head short-time token mixer (STA) of EmT."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, alpha: float):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        # Token mixer: weight-normalised Conv2d over (neighbouring tokens x 1) across heads.
        self.mixer = nn.Sequential(
            nn.Dropout(alpha * dropout),
            weight_norm(nn.Conv2d(heads, heads, (3, 1), padding=(1, 0))),
        )
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.to_qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (b, h, n, d)
        out = self.mixer(out)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _GRUMixer(nn.Module):
    """Regression-variant token mixer: Linear -> 2-layer bidirectional GRU -> Linear."""

    def __init__(self, dim: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        self.to_in = nn.Linear(dim, dim_head, bias=False)
        self.gru = nn.GRU(
            dim_head, dim_head, num_layers=2, batch_first=True, bidirectional=True,
            dropout=0.5 * dropout,
        )
        self.to_out = nn.Sequential(nn.Linear(2 * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.to_in(x))
        return self.to_out(out)


class _TCTLayer(nn.Module):
    """Pre-norm temporal contextual transformer layer: mixer + feed-forward, both residual."""

    def __init__(self, dim: int, mixer: nn.Module, dim_head: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(dim)
        self.ff = _FeedForward(dim, dim_head, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(self.norm1(x)) + x
        return self.ff(self.norm2(x)) + x


class EmT(EEGModel):
    """EmT classifier (Ding et al., IEEE TNNLS 2025) over a sequence of EEG graphs.

    Input ``(batch, n_sub_windows, n_chans, n_features)``: band-power features of every channel
    (node) in every sub-window (graph) of a segment of ``n_times`` samples at ``sfreq`` Hz.
    Output ``(batch, n_outputs)`` logits. Any sequence length is accepted (tokens are
    mean-pooled); ``n_sub_windows`` records the one the model is meant for.

    Architecture: residual multi-view pyramid GCN (RMPG) per graph, averaging three tokens:
    ``Linear(n_chans * n_features -> graph_hidden)`` without bias, ``graph_layers[0]`` and
    ``graph_layers[1]`` Chebyshev convolutions of order ``K`` on two learnable adjacencies
    ``ReLU(W + W^T)`` (Xavier-initialised) each followed by a linear tokeniser; then a
    temporal contextual transformer (TCT) of ``n_layers`` pre-norm layers (attention + per-head
    token mixer with dropout ``alpha * dropout``, feed-forward of hidden size ``dim_head``);
    mean over tokens; linear head.

    Parameters
    ----------
    n_chans, n_outputs, n_times, sfreq
        braindecode signature: channels (graph nodes), outputs, samples of one segment, Hz.
        Give any consistent subset of braindecode's signal arguments, ``chs_info`` and
        ``input_window_seconds`` included (see :class:`~physioaffect.models.EEGModel`).
    n_sub_windows : int or None
        Graphs per segment. Default: derived from ``n_times``, ``sfreq``, ``sub_window_s`` and
        ``sub_overlap`` (:func:`emt_n_sub_windows`).
    sub_window_s, sub_overlap : float
        Sub-window length (s) and overlap used to derive ``n_sub_windows``.
    n_features : int
        Node features per channel (paper: 7 relative band powers).
    graph_layers : tuple of int
        Chebyshev layers of the two graph branches (paper: (1, 2)).
    graph_hidden : int
        Graph hidden size = token size (paper: 32).
    K : int
        Chebyshev order, >= 2 (SEED: 4; THU-EP/FACED: 3).
    n_layers : int
        TCT layers (SEED: 8; THU-EP/FACED: 4).
    heads, dim_head : int
        Attention heads and head size (paper: 16 and 32).
    alpha : float
        Token-mixer dropout factor (SEED 0.25, THU-EP 0.1, FACED 0.4).
    dropout : float
        Dropout (paper: 0.25).

    Reference configurations with 2 outputs: SEED (62 ch, K 4, 8 layers) 703,530 parameters;
    THU-EP / FACED (32 ch, K 3, 4 layers) 353,826.
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        sfreq: float | None,
        n_sub_windows: int | None = None,
        sub_window_s: float = 2.0,
        sub_overlap: float = 0.75,
        n_features: int = 7,
        graph_layers: tuple[int, int] = (1, 2),
        graph_hidden: int = 32,
        K: int = 4,
        n_layers: int = 8,
        heads: int = 16,
        dim_head: int = 32,
        alpha: float = 0.25,
        dropout: float = 0.25,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq)
        if n_sub_windows is None:
            if sfreq is None:
                raise ModelConfigError(
                    f"{type(self).__name__}: needs sfreq (Hz) to count its sub-windows of "
                    f"{sub_window_s:g} s; give sfreq, input_window_seconds or n_sub_windows")
            n_sub_windows = emt_n_sub_windows(n_times, self.sfreq, sub_window_s, sub_overlap)
        self._remember_config(locals())
        if K < 2:
            raise ModelConfigError(f"{type(self).__name__}: K (Chebyshev order) must be >= 2, got {K}")
        if len(graph_layers) != 2 or min(graph_layers) < 1:
            raise ModelConfigError(
                f"{type(self).__name__}: graph_layers must be two positive integers, got {graph_layers}"
            )
        self.n_sub_windows = int(n_sub_windows)
        self.n_features = int(n_features)
        self.K = int(K)
        self.graph_hidden = int(graph_hidden)

        self.branch1 = _GraphEncoder(graph_layers[0], n_chans, n_features, graph_hidden, K)
        self.branch2 = _GraphEncoder(graph_layers[1], n_chans, n_features, graph_hidden, K)
        self.adjs = nn.Parameter(torch.empty(2, n_chans, n_chans))
        nn.init.xavier_uniform_(self.adjs)
        self.layers = nn.ModuleList(
            _TCTLayer(graph_hidden, self._make_mixer(heads, dim_head, dropout, alpha), dim_head,
                      dropout)
            for _ in range(n_layers)
        )
        self.residual = nn.Linear(n_chans * n_features, graph_hidden, bias=False)
        self.head = nn.Linear(graph_hidden, n_outputs)

    def _make_mixer(self, heads: int, dim_head: int, dropout: float, alpha: float) -> nn.Module:
        return _TCTAttention(self.graph_hidden, heads, dim_head, dropout, alpha)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Contextual tokens ``(B, S, graph_hidden)`` for graphs ``(B, S, n_chans, n_features)``."""
        self._check_input(
            x, (None, None, self.n_chans, self.n_features),
            "(batch, n_sub_windows, n_chans, n_features)",
        )
        b, s, c, f = x.shape
        g = x.reshape(b * s, c, f)
        adj = F.relu(self.adjs + self.adjs.transpose(1, 2))
        basis1 = chebyshev_basis(scaled_laplacian(adj[0]), self.K)
        basis2 = chebyshev_basis(scaled_laplacian(adj[1]), self.K)
        tokens = (
            self.residual(g.reshape(b * s, c * f)) + self.branch1(g, basis1)
            + self.branch2(g, basis2)
        ) / 3.0
        tokens = tokens.reshape(b, s, -1)
        for layer in self.layers:
            tokens = layer(tokens)
        return tokens

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Mean-pooled token ``(B, graph_hidden)`` before the head."""
        return self.forward_tokens(x).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` for graphs ``x`` of shape ``(B, S, n_chans, n_features)``."""
        return self.head(self.forward_features(x))


class EmTRegressor(EmT):
    """EmT regression variant: one continuous prediction per sub-window (token).

    Same graph front end as :class:`EmT`; in the TCT the attention is replaced by
    ``Linear(dim -> dim_head)``, a 2-layer bidirectional GRU (dropout ``0.5 * dropout``) and
    ``Linear(2 * dim_head -> dim)``. Input ``(batch, n_sub_windows, n_chans, n_features)``,
    output ``(batch, n_sub_windows, n_outputs)`` (e.g. continuous valence/arousal, trained with
    a concordance correlation loss). ``alpha`` is unused. Defaults follow the MAHNOB-HCI
    configuration (K 3, 2 layers, 32 heads, dim_head 32).
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        sfreq: float | None,
        n_sub_windows: int | None = None,
        sub_window_s: float = 2.0,
        sub_overlap: float = 0.75,
        n_features: int = 7,
        graph_layers: tuple[int, int] = (1, 2),
        graph_hidden: int = 32,
        K: int = 3,
        n_layers: int = 2,
        heads: int = 32,
        dim_head: int = 32,
        alpha: float = 0.0,
        dropout: float = 0.25,
    ) -> None:
        super().__init__(
            n_chans, n_outputs, n_times, sfreq, n_sub_windows, sub_window_s, sub_overlap,
            n_features, graph_layers, graph_hidden, K, n_layers, heads, dim_head, alpha, dropout,
        )

    def _make_mixer(self, heads: int, dim_head: int, dropout: float, alpha: float) -> nn.Module:
        return _GRUMixer(self.graph_hidden, dim_head, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token predictions ``(B, S, n_outputs)``."""
        return self.head(self.forward_tokens(x))




def official_key_map(model: EmT) -> dict[str, str]:
    """State-dict key of the official EmT code -> key of ``model``, for every tensor of ``model``.

    The official classifier (``classification/model/EmT.py``) and regressor
    (``regression/model/EmT.py``) name their parts ``GE1``/``GE2`` (``encoder.<i>.filter_weight``,
    ``filter_bias``, ``tokenizer``), ``adjs``, ``transformer.layers.<i>.0`` (``PreNorm``:
    ``norm``, ``fn.to_qkv``, ``fn.STA.1`` with the old ``torch.nn.utils.weight_norm`` keys
    ``weight_g``/``weight_v``, ``fn.to_out.0``; the regressor: ``fn.to_qkv``, the GRU
    ``fn.lstm`` in ``regression/model/EmT.py``, ``fn.token_mixer`` in ``EmT_Reg.py`` (read as
    ``fn.lstm``), ``fn.to_out.0``), ``transformer.layers.<i>.1`` (``norm``, ``fn.net.0``, ``fn.net.3``),
    ``to_GNN_out`` and ``MLP.0``. Ours keep the weight norm as a parametrization
    (``parametrizations.weight.original0`` = g, ``original1`` = v).
    """
    ours = set(model.state_dict())
    out: dict[str, str] = {"adjs": "adjs", "to_GNN_out.weight": "residual.weight"}
    for p in ("weight", "bias"):
        out[f"MLP.0.{p}"] = f"head.{p}"
    for ge, branch in (("GE1", model.branch1), ("GE2", model.branch2)):
        name = "branch1" if ge == "GE1" else "branch2"
        for j in range(len(branch.convs)):
            out[f"{ge}.encoder.{j}.filter_weight"] = f"{name}.convs.{j}.weight"
            out[f"{ge}.encoder.{j}.filter_bias"] = f"{name}.convs.{j}.bias"
        for p in ("weight", "bias"):
            out[f"{ge}.tokenizer.{p}"] = f"{name}.tokenizer.{p}"
    for i, layer in enumerate(model.layers):
        a, f, o = f"transformer.layers.{i}.0", f"transformer.layers.{i}.1", f"layers.{i}"
        for p in ("weight", "bias"):
            out[f"{a}.norm.{p}"] = f"{o}.norm1.{p}"
            out[f"{f}.norm.{p}"] = f"{o}.norm2.{p}"
            out[f"{a}.fn.to_out.0.{p}"] = f"{o}.mixer.to_out.0.{p}"
            out[f"{f}.fn.net.0.{p}"] = f"{o}.ff.0.{p}"
            out[f"{f}.fn.net.3.{p}"] = f"{o}.ff.3.{p}"
        if isinstance(layer.mixer, _GRUMixer):
            out[f"{a}.fn.to_qkv.weight"] = f"{o}.mixer.to_in.weight"
            for k in dict(layer.mixer.gru.named_parameters()):
                out[f"{a}.fn.lstm.{k}"] = f"{o}.mixer.gru.{k}"
        else:
            out[f"{a}.fn.to_qkv.weight"] = f"{o}.mixer.to_qkv.weight"
            out[f"{a}.fn.STA.1.bias"] = f"{o}.mixer.mixer.1.bias"
            out[f"{a}.fn.STA.1.weight_g"] = f"{o}.mixer.mixer.1.parametrizations.weight.original0"
            out[f"{a}.fn.STA.1.weight_v"] = f"{o}.mixer.mixer.1.parametrizations.weight.original1"
    unmapped = ours - set(out.values())
    if unmapped:  # a structural change here must be mirrored in this map
        raise ModelConfigError(f"EmT: no official name for {sorted(unmapped)}")
    return out
