"""Minimal re-implementations of the *reference* forward passes, for timing and equivalence only.

Written from the public repositories (github.com/yi-ding-cs/EEG-Deformer ``models/EEGDeformer.py``
and github.com/yi-ding-cs/EmT ``EmT_Cls.py``), with ``einops.rearrange`` replaced by
reshape/permute and nothing else changed: two separate encoder convolutions with max-norm
applied to ``.data`` in every forward, explicit ``softmax(QK^T)V`` attention, Chebyshev terms
built by repeated ``torch.cat``, ``torch.diag`` degree matrices. Module registration order
follows the package models so that :func:`copy_weights` can pair parameters one by one.
The EmT re-implementations keep the official module names, so their ``state_dict()`` has the
official keys (``GE1.encoder.0.filter_weight``, ``transformer.layers.0.0.fn.STA.1.weight_g``
from the old ``torch.nn.utils.weight_norm``, ``MLP.0.weight`` ...): the tests load it with
``physioaffect.models.io.load_official_state_dict``. Not part of the package.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- EEG-Deformer
class _RefConv2dWithConstraint(nn.Conv2d):
    def __init__(self, *args, max_norm=1, **kwargs):
        self.max_norm = max_norm
        super().__init__(*args, **kwargs)

    def forward(self, x):
        self.weight.data = torch.renorm(self.weight.data, p=2, dim=0, maxnorm=self.max_norm)
        return super().forward(x)


class _RefAttention(nn.Module):
    def __init__(self, dim, heads, dim_head, dropout):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2)
                   for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class RefDeformer(nn.Module):
    """Reference EEG-Deformer forward (``Deformer`` of the public code)."""

    def __init__(self, num_chan, num_time, temporal_kernel, num_kernel=64, num_classes=2,
                 depth=4, heads=16, mlp_dim=16, dim_head=16, dropout=0.0):
        super().__init__()
        pad = int(0.5 * (temporal_kernel - 1))
        self.cnn_encoder = nn.Sequential(
            _RefConv2dWithConstraint(1, num_kernel, (1, temporal_kernel), padding=(0, pad),
                                     max_norm=2),
            _RefConv2dWithConstraint(num_kernel, num_kernel, (num_chan, 1), max_norm=2),
            nn.BatchNorm2d(num_kernel), nn.ELU(), nn.MaxPool2d((1, 2), stride=(1, 2)),
        )
        dim = int(0.5 * num_time)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_kernel, dim))
        self.layers = nn.ModuleList()
        for _ in range(depth):
            dim = int(dim * 0.5)
            self.layers.append(nn.ModuleList([
                _RefAttention(dim, heads, dim_head, dropout),
                nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp_dim), nn.GELU(),
                              nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout)),
                nn.Sequential(nn.Dropout(dropout),
                              nn.Conv1d(num_kernel, num_kernel, temporal_kernel, padding=pad),
                              nn.BatchNorm1d(num_kernel), nn.ELU(),
                              nn.MaxPool2d((1, 2), stride=(1, 2))),
            ]))
        self.pool = nn.MaxPool1d(2, 2)
        self.mlp_head = nn.Sequential(nn.Linear(num_kernel * dim + num_kernel * depth,
                                                num_classes))

    def forward(self, eeg):
        x = self.cnn_encoder(eeg.unsqueeze(1))
        x = x.reshape(x.shape[0], x.shape[1], -1)
        x = x + self.pos_embedding
        dense = []
        for attn, ff, cnn in self.layers:
            x_cg = self.pool(x)
            x_cg = attn(x_cg) + x_cg
            x_fg = cnn(x)
            dense.append(torch.log(torch.mean(x_fg.pow(2), dim=-1)))
            x = ff(x_cg) + x_fg
        emd = torch.cat((x.reshape(x.shape[0], -1), torch.cat(dense, dim=-1)), dim=-1)
        return self.mlp_head(emd)


# ----------------------------------------------------------------------------------- EmT
class _RefChebyNet(nn.Module):
    def __init__(self, K, fin, fout):
        super().__init__()
        self.K = K
        self.filter_weight = nn.Parameter(torch.empty(K, 1, fin, fout).normal_(0, 0.1))
        self.filter_bias = nn.Parameter(torch.empty(1, 1, fout).normal_(0, 0.1))

    def forward(self, x, adj):
        degree = torch.sum(adj, dim=1)
        dm = torch.diag(torch.div(1.0, torch.sqrt(degree) + 1.0e-5))
        L = -torch.matmul(torch.matmul(dm, adj), dm)
        x_ = torch.stack((x, torch.matmul(L, x)), dim=1)
        for _ in range(2, self.K):
            cur = 2 * torch.matmul(L, x_[:, -1]) - x_[:, -2]
            x_ = torch.cat((x_, cur.unsqueeze(1)), dim=1)
        out = torch.matmul(x_.permute(1, 0, 2, 3), self.filter_weight).sum(dim=0)
        return F.relu(out + self.filter_bias)


class _RefGraphEncoder(nn.Module):
    def __init__(self, n_layers, n_node, fin, fout, K):
        super().__init__()
        self.encoder = nn.ModuleList(
            _RefChebyNet(K, fin if i == 0 else fout, fout) for i in range(n_layers))
        self.tokenizer = nn.Linear(n_node * fout, fout)

    def forward(self, x, adj):
        for layer in self.encoder:
            x = layer(x, adj)
        return self.tokenizer(x.reshape(x.shape[0], -1))


def _old_weight_norm(module: nn.Module) -> nn.Module:
    # The official EmT uses the deprecated torch.nn.utils.weight_norm (keys weight_g, weight_v).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(module)


class _RefSTAAttention(nn.Module):
    def __init__(self, dim, heads, dim_head, dropout, alpha):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.STA = nn.Sequential(nn.Dropout(alpha * dropout),
                                 _old_weight_norm(nn.Conv2d(heads, heads, (3, 1), padding=(1, 0))))
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2)
                   for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)
        out = self.STA(torch.matmul(attn, v))
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _RefGRUAttention(nn.Module):
    """The regression code's ``Attention``: Linear -> 2-layer bidirectional GRU -> Linear."""

    def __init__(self, dim, dim_head, dropout):
        super().__init__()
        self.to_qkv = nn.Linear(dim, dim_head, bias=False)
        self.lstm = nn.GRU(dim_head, dim_head, num_layers=2, batch_first=True,
                           bidirectional=True, dropout=0.5 * dropout)
        self.to_out = nn.Sequential(nn.Linear(2 * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x):
        out, _ = self.lstm(self.to_qkv(x))
        return self.to_out(out)


class _RefPreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class _RefFeedForward(nn.Module):
    def __init__(self, dim, hidden, dropout):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class _RefTTransformer(nn.Module):
    def __init__(self, dim, depth, make_attention, dim_head, dropout):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([_RefPreNorm(dim, make_attention()),
                           _RefPreNorm(dim, _RefFeedForward(dim, dim_head, dropout))])
            for _ in range(depth))

    def forward(self, x):
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x


class RefEmT(nn.Module):
    """Reference EmT classifier forward (``EmT`` of ``EmT_Cls.py``, encoder 'Cheby')."""

    def __init__(self, layers_graph=(1, 2), layers_transformer=8, num_chan=62, num_feature=7,
                 hidden_graph=32, K=4, num_head=16, dim_head=32, dropout=0.25, num_class=2,
                 alpha=0.25):
        super().__init__()
        self.GE1 = _RefGraphEncoder(layers_graph[0], num_chan, num_feature, hidden_graph, K)
        self.GE2 = _RefGraphEncoder(layers_graph[1], num_chan, num_feature, hidden_graph, K)
        self.adjs = nn.Parameter(torch.empty(2, num_chan, num_chan))
        nn.init.xavier_uniform_(self.adjs)
        self.transformer = _RefTTransformer(
            hidden_graph, layers_transformer, self._attention(hidden_graph, num_head, dim_head,
                                                              dropout, alpha), dim_head, dropout)
        self.to_GNN_out = nn.Linear(num_chan * num_feature, hidden_graph, bias=False)
        self.MLP = nn.Sequential(nn.Linear(hidden_graph, num_class))

    @staticmethod
    def _attention(dim, heads, dim_head, dropout, alpha):
        return lambda: _RefSTAAttention(dim, heads, dim_head, dropout, alpha)

    def tokens(self, x):
        b, s, c, f = x.shape
        x = x.reshape(b * s, c, f)
        adjs = F.relu(self.adjs + self.adjs.transpose(2, 1))
        x_ = self.to_GNN_out(x.reshape(x.shape[0], -1))
        x1 = self.GE1(x, adjs[0])
        x2 = self.GE2(x, adjs[1])
        x = torch.mean(torch.stack((x_, x1, x2), dim=1), dim=1).reshape(b, s, -1)
        return self.transformer(x)

    def forward(self, x):
        return self.MLP(torch.mean(self.tokens(x), dim=-2))


class RefEmTRegressor(RefEmT):
    """Reference EmT regressor (``regression/model/EmT.py``): one prediction per token.

    Takes ``(b, s, c, f)`` like the classifier (the official forward takes a dict holding
    ``(b, f, s, c)`` and rearranges it to the same ``(b s) c f``).
    """

    def __init__(self, layers_graph=(1, 2), layers_transformer=2, num_chan=32, num_feature=6,
                 hidden_graph=32, K=3, num_head=32, dim_head=32, dropout=0.5, num_class=1):
        super().__init__(layers_graph, layers_transformer, num_chan, num_feature, hidden_graph,
                         K, num_head, dim_head, dropout, num_class, alpha=0.0)

    @staticmethod
    def _attention(dim, heads, dim_head, dropout, alpha):
        return lambda: _RefGRUAttention(dim, dim_head, dropout)

    def forward(self, x):
        return self.MLP(self.tokens(x))


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy ``src``'s state into ``dst`` pairing entries in registration order (shapes checked)."""
    s_items = list(src.state_dict().items())
    d_state = dst.state_dict()
    d_keys = list(d_state)
    if len(s_items) != len(d_keys):
        raise ValueError(f"state sizes differ: {len(s_items)} vs {len(d_keys)}")
    new = {}
    for (sk, sv), dk in zip(s_items, d_keys, strict=True):
        if sv.shape != d_state[dk].shape:
            raise ValueError(f"{sk} {tuple(sv.shape)} does not pair with {dk} "
                             f"{tuple(d_state[dk].shape)}")
        new[dk] = sv.clone()
    dst.load_state_dict(new)
