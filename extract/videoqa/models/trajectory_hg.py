"""Trajectory-aware heterogeneous graphs with cycle attention (``trajectory_hg``).

Wang et al., "Rethinking Multi-Modal Alignment in Video Question Answering from Feature and Sample
Perspectives" (``shared/papers/trajectory-alignment-nextqa.txt``), sections 3.1-3.3; equation numbers
are the paper's. No public code exists; this follows the text. Per candidate query (question + answer):

    frames        F_v = ReLU(FC([F_a; F_m])),  V = GRU(F_v)                                        (1, 2)
    trajectories  tr_i = FC(t_v) + FC(t_l) + FC(t_p): mean region feature, label name (GloVe, mean
                  over its words), normalised [start, end];  T = MHSA(F_tr)                       (3)
    query         Q, F_q = GRU(F_q words)   (GloVe, or Linear(768->word_dim) on BERT-FT rows)      (4)
    cycle attention  Atten(Q~, K~, V~) = softmax((Q~ W_q)(K~ W_k)^T / sqrt d_h) V~ W_v             (5)
                  Q_tq, T_tq (6);  Q_vq, V_vq (7);  T_vt, V_vt (8): six alignments, each its own weights
    graphs        TQG X = [Q_tq; T_tq], VQG [Q_vq; V_vq], VTG [V_vt; T_vt]:
                  A = softmax(f(X) f(X)^T) + I (9),  X^(l) = ReLU(A X^(l-1) W^(l)) (10),
                  X_final = sum_i softmax_i(f_t(X_i^(L))) X_i^(L) (11)
    scores        s_* = MCB(X_final_*, F_q) (12);  s = s_vq + lambda_1 s_tq + lambda_2 s_vt (13)

trained with the hinge loss (14, ``losses``) and the sample augmentation of section 3.4 (``augment``).
Section 4.2: d = 256, dropout 0.3, Adam, lr 5e-5 (GloVe) or 1e-4 (BERT-FT), lambda = 0.5, the learning
rate reduced when validation accuracy stalls.

Where the paper is silent, chosen here (all in ``ModelConfig``):
- the trajectory encoder: ``mhsa_layers`` = 1 layer of ``mhsa_heads`` = 4 heads, each a post-norm
  Transformer block (attention and a 2d-wide feed-forward, each with a skip connection and LayerNorm);
- the attention of Eq. 5 is single-headed with d_h = d;
- f of Eq. 9 and f_t of Eq. 11 are Linear+ReLU and Linear(d -> 1) with a softmax over the nodes
  (Eq. 11's sigma read as the pooling softmax); ``gcn_layers`` = 2 graph convolutions;
- MCB (Fukui et al., 2016) sketches both inputs to ``mcb_dim`` = 1024 (the MCB paper used 16000) with
  fixed seeded count sketches, multiplies them in the Fourier domain, applies signed square root and L2
  normalisation, then a Linear(mcb_dim -> 1) gives the score; the sketches are buffers (in checkpoints);
- the reduce-on-plateau schedule of HGA's code (factor 0.5, patience 5).

Masks: padded trajectories (a video may have none: its trajectory mask is all False, the attentions
over trajectories then give zero vectors and the graph has only its other nodes), padded words and
padded clips are kept out of every softmax, adjacency and pooling.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from extract.videoqa.data import Batch, Head
from extract.videoqa.models.hga import CLIPS, TextEncoder, lengths_mask
from extract.videoqa.models.masn import masked_softmax
from extract.videoqa.registry import register_model

__all__ = ["ModelConfig", "TrajectoryHG", "CompactBilinearPooling"]


class ModelConfig(BaseModel):
    """trajectory_hg settings: the paper's (section 4.2) where it gives them, else chosen (module docstring)."""

    model_config = ConfigDict(extra="forbid")
    LR: ClassVar[dict[str, float]] = {"glove": 5e-5, "bert": 1e-4}  # Adam learning rate by text (section 4.2)
    BATCH_SIZE: ClassVar[int] = 64  # questions per batch (section 4.2)
    MAX_TOKENS: ClassVar[int] = 37  # words of question + candidate (NExT-QA's BERT-FT rows; section 4.2)
    PLATEAU_PATIENCE: ClassVar[int | None] = 5  # "reduce the learning rate when a metric has stopped improving"
    TRAJECTORIES: ClassVar[bool] = True  # the trainer refuses a feature dir without trajectory files

    hidden_size: int = Field(256, ge=2)  # d (paper: 256)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)  # dropout rate (paper: 0.3)
    mhsa_layers: int = Field(1, ge=1)  # trajectory-encoder blocks (paper: "several"; chosen: 1)
    mhsa_heads: int = Field(4, ge=1)  # heads per block (paper silent; chosen: 4); must divide hidden_size
    gcn_layers: int = Field(2, ge=1)  # graph convolutions per graph (paper silent; chosen: 2)
    mcb_dim: int = Field(1024, ge=2)  # MCB sketch width (paper silent; MCB paper 16000; chosen: 1024)
    lambda_tq: float = Field(0.5, ge=0.0)  # lambda_1 of Eq. 13 (paper: 0.5)
    lambda_vt: float = Field(0.5, ge=0.0)  # lambda_2 of Eq. 13 (paper: 0.5)
    freeze_word_vectors: bool = False  # keep GloVe rows fixed (paper silent; HGA's code trains them)


class Attention(nn.Module):
    """Eq. 5: ``Atten(q, k, v)`` with projections; keys where ``mask`` is False are left out (all out: zeros)."""

    def __init__(self, d: int):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(d, d, bias=False) for _ in range(3))

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
        """query ``[N, Lq, d]``, keys ``[N, Lk, d]``, mask ``[N, Lk]`` -> ``[N, Lq, d]``."""
        scores = self.q(query) @ self.k(keys).transpose(1, 2) / query.shape[-1] ** 0.5  # [N, Lq, Lk]
        return masked_softmax(scores, mask[:, None, :], dim=-1) @ self.v(keys)


class SelfAttentionBlock(nn.Module):
    """Eq. 3, one block: masked multi-head self-attention and a feed-forward, each with skip + LayerNorm."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"mhsa_heads={heads} must divide hidden_size={d}")
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * d, d))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x ``[N, K, d]``, mask ``[N, K]`` -> ``[N, K, d]``."""
        N, K, d = x.shape
        q, k, v = self.qkv(x).view(N, K, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # [N, h, K, d/h]
        scores = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5  # [N, h, K, K]
        mixed = (masked_softmax(scores, mask[:, None, None, :], dim=-1) @ v).transpose(1, 2).reshape(N, K, d)
        x = self.norm1(x + self.dropout(self.out(mixed)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class HeterogeneousGraph(nn.Module):
    """Eqs. 9-11 on the nodes ``X [N, K, d]`` (mask ``[N, K]``) -> ``X_final [N, d]``."""

    def __init__(self, d: int, layers: int, dropout: float):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(d, d), nn.ReLU())
        self.layers = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(layers))
        self.pool = nn.Linear(d, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.f(x)
        eye = torch.eye(x.shape[1], device=x.device, dtype=x.dtype)
        pair = mask[:, :, None] & mask[:, None, :]  # [N, K, K]
        adjacency = (masked_softmax(h @ h.transpose(1, 2), mask[:, None, :], dim=-1) + eye) * pair  # Eq. 9
        for layer in self.layers:
            x = self.dropout(F.relu(adjacency @ layer(x)))  # Eq. 10
        weights = masked_softmax(self.pool(x).squeeze(-1), mask, dim=-1)  # [N, K]
        return (weights[..., None] * x).sum(dim=1)  # Eq. 11


class CompactBilinearPooling(nn.Module):
    """MCB (Fukui et al., EMNLP 2016) of ``x [N, d_x]`` and ``y [N, d_y]`` -> ``[N, dim]``: count sketches
    ``Psi(x)``, ``Psi(y)`` convolved by FFT, then signed square root and L2 normalisation."""

    def __init__(self, x_dim: int, y_dim: int, dim: int, *, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.dim = dim
        for name, width in (("x", x_dim), ("y", y_dim)):
            self.register_buffer(f"hash_{name}", torch.randint(dim, (width,), generator=g))
            self.register_buffer(f"sign_{name}", torch.randint(2, (width,), generator=g).float() * 2 - 1)

    def _sketch(self, x: Tensor, index: Tensor, sign: Tensor) -> Tensor:
        out = x.new_zeros(x.shape[0], self.dim)
        return out.index_add_(1, index, x * sign)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx = torch.fft.rfft(self._sketch(x, self.hash_x, self.sign_x), dim=-1)
        fy = torch.fft.rfft(self._sketch(y, self.hash_y, self.sign_y), dim=-1)
        z = torch.fft.irfft(fx * fy, n=self.dim, dim=-1)
        z = torch.sign(z) * torch.sqrt(z.abs() + 1e-12)
        return F.normalize(z, dim=-1)


class TrajectoryHG(nn.Module):
    """``forward(batch)`` -> ``[B, C]``; reads clips, trajectories (``batch.traj_*``) and the query."""

    def __init__(self, config: ModelConfig, *, vocab_size: int, word_dim: int, appearance_dim: int, motion_dim: int,
                 head: Head, num_answers: int = 0, text_dim: int = 0, trajectory_dim: int = 2048):
        """text_dim: BERT-FT width (0: GloVe tokens); trajectory_dim: width of ``traj_feat``."""
        super().__init__()
        if head != "choice":
            raise ValueError(f"trajectory_hg scores multiple-choice candidates; head must be 'choice', got {head!r}")
        d, p = config.hidden_size, config.dropout
        self.head_kind = head
        self.lambdas = (config.lambda_tq, config.lambda_vt)
        self.frames = nn.Sequential(nn.Dropout(p), nn.Linear(appearance_dim + motion_dim, d), nn.ReLU())  # Eq. 1
        self.frame_gru = nn.GRU(d, d, batch_first=True)  # Eq. 2
        self.traj_visual = nn.Linear(trajectory_dim, d)
        self.traj_label = nn.Linear(word_dim, d)
        self.traj_span = nn.Linear(2, d)
        self.traj_dropout = nn.Dropout(p)
        self.mhsa = nn.ModuleList(SelfAttentionBlock(d, config.mhsa_heads, p) for _ in range(config.mhsa_layers))
        self.text = TextEncoder(vocab_size, word_dim, d, p, text_dim=text_dim, freeze=config.freeze_word_vectors)
        self.align = nn.ModuleDict({name: Attention(d) for name in ("q_t", "t_q", "q_v", "v_q", "t_v", "v_t")})
        self.graphs = nn.ModuleDict({name: HeterogeneousGraph(d, config.gcn_layers, p) for name in ("tq", "vq", "vt")})
        self.mcb = nn.ModuleDict({name: CompactBilinearPooling(d, d, config.mcb_dim, seed=i)
                                  for i, name in enumerate(("tq", "vq", "vt"))})
        self.scores = nn.ModuleDict({name: nn.Linear(config.mcb_dim, 1) for name in ("tq", "vq", "vt")})

    def set_word_vectors(self, vectors: Tensor) -> None:
        """Copy a ``[V, word_dim]`` matrix (GloVe rows in vocabulary order) into the embedding (query and labels)."""
        with torch.no_grad():
            self.text.embed.weight.copy_(vectors)

    def encode_video(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Eqs. 1-2: ``V [B, T, d]`` (zero beyond the clips)."""
        clips = self.frames(torch.cat([batch.app_global, batch.mot_global], dim=-1))  # [B, T, d]
        lengths = batch.video_mask.sum(dim=1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(clips, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = nn.utils.rnn.pad_packed_sequence(self.frame_gru(packed)[0], batch_first=True,
                                                     total_length=clips.shape[1])
        return output, batch.video_mask

    def encode_trajectories(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """tr_i = FC(t_v) + FC(t_l) + FC(t_p), then Eq. 3: ``T [B, N_t, d]``, mask ``[B, N_t]``."""
        if batch.traj_feat is None:
            raise ValueError("trajectory_hg needs trajectories: the feature dir has no traj_feat/traj_<split>.h5")
        mask = batch.traj_mask
        words = self.text.embed(batch.traj_label_tokens)  # [B, N_t, W, word_dim]
        word_mask = lengths_mask(batch.traj_label_lengths, words.shape[2])[..., None]  # [B, N_t, W, 1]
        label = (words * word_mask).sum(dim=2) / batch.traj_label_lengths.clamp(min=1)[..., None]  # [B, N_t, word_dim]
        tr = self.traj_visual(self.traj_dropout(batch.traj_feat)) + self.traj_label(label) + self.traj_span(batch.traj_span)
        tr = tr * mask[..., None]
        for block in self.mhsa:
            tr = block(tr, mask) * mask[..., None]
        return tr, mask

    def forward(self, batch: Batch) -> Tensor:
        B, C = batch.tokens.shape[:2]
        v, v_mask = self.encode_video(batch)
        t, t_mask = self.encode_trajectories(batch)
        text = None if batch.text_feat is None else batch.text_feat.flatten(0, 1)
        q, q_global = self.text(batch.tokens.flatten(0, 1), batch.lengths.flatten(), text)  # Eq. 4
        q_mask = lengths_mask(batch.lengths.flatten(), q.shape[1])  # [B*C, L]
        v, v_mask, t, t_mask = (x.repeat_interleave(C, dim=0) for x in (v, v_mask, t, t_mask))
        a = self.align
        nodes = {  # Eqs. 6-8, each graph's two node sets and their masks
            "tq": (a["q_t"](q, t, t_mask), q_mask, a["t_q"](t, q, q_mask), t_mask),
            "vq": (a["q_v"](q, v, v_mask), q_mask, a["v_q"](v, q, q_mask), v_mask),
            "vt": (a["v_t"](v, t, t_mask), v_mask, a["t_v"](t, v, v_mask), t_mask),
        }
        s = {}
        for name, (x1, m1, x2, m2) in nodes.items():
            final = self.graphs[name](torch.cat([x1, x2], dim=1), torch.cat([m1, m2], dim=1))  # Eqs. 9-11
            s[name] = self.scores[name](self.mcb[name](final, q_global)).squeeze(-1)  # Eq. 12
        return (s["vq"] + self.lambdas[0] * s["tq"] + self.lambdas[1] * s["vt"]).view(B, C)  # Eq. 13


@register_model("trajectory_hg", config=ModelConfig, source="nextqa", heads=("choice",),
                max_steps=lambda dataset: CLIPS,
                paper="Wang et al., Rethinking Multi-Modal Alignment in Video Question Answering from Feature "
                      "and Sample Perspectives (trajectories, cycle attention, heterogeneous graphs)")
def build_trajectory_hg(config: ModelConfig, **dims) -> TrajectoryHG:
    return TrajectoryHG(config, **dims)
