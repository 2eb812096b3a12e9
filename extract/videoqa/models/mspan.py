"""MSPAN: Multi-Scale Progressive Attention Network for Video Question Answering.

Guo et al., ACL 2021 (short paper), section 2; equation numbers below are the
paper's. N = 16 frames, each the concatenated appearance and motion features through one Linear
(section 2.1); then

    scales              V_i = MaxPool1d(kernel i, stride 1)(v_1..v_N), M_i = N - i + 1 nodes, i = 1..K   (1-3)
    intra-scale graphs  E_i = {(x, y): x - i <= y <= x + i}; two-layer GCN, D^-1/2 A D^-1/2, shared     (4, 5)
    top-down            G_i -> G_{i+1}, i = 1..K-1: question-gated messages along cross-scale edges      (6-10)
    bottom-up           G_{i+1} -> G_i, i = K-1..1, the same equations with a second set of weights
    readout             attention over G_1's nodes, ELU fusion with the question                      (11-13)

repeated for ``iterations`` (the paper's T = 3) rounds of GCN -> top-down -> bottom-up. A cross-scale
edge joins clip x of scale i (frames [x, x+i-1]) and clip y of scale i+1 (frames [y, y+i]) when the
two share a frame. The question is the last layer's final states of a 3-layer BiLSTM over GloVe.

Choices where the paper is silent, and how the frames are sampled:
- every video gives exactly N slots (``registry.fixed_sample``): segment centres when T >= N,
  each step repeated in order when T < N (the public code's ``average_sample``), so no padding;
- the two GCN layers have an ELU (and dropout) between them, as the public code; each round of
  interaction has its own GCN and message weights, shared across scales (public code);
- the answer classifier is two Linear layers with an ELU between them (no BatchNorm: the code's
  BatchNorm1d fails on a final training batch of one question);
- multiple choice: each candidate row (question + candidate, one BiLSTM; this package's batches)
  conditions the whole interaction and readout, and one Linear scores it (hinge loss). The paper
  fuses the question with the graph once and each candidate at the readout; the rows here do not
  keep the question apart, so the graph reasoning runs once per candidate (C times the compute).

Differences from the public code (github.com/gzcsudo/MSPAN-VideoQA), following the paper:
- the cross-scale softmax (eq. 7) is over the neighbours only; the code multiplies the scores by
  the 0/1 mask before the softmax, so non-neighbours still get weight exp(0);
- the cross-scale neighbours are every clip sharing a frame; the code's mask omits the last such
  clip (for scale 1 -> 2, node y of scale 2 hears frame y but not frame y+1);
- the question vector is the last BiLSTM layer's final states; the code takes the first layer's;
- eqs. 6-10 have no activations and the messages of eq. 8 are node-wide (R^2048, eq. 9); the code
  adds ELUs and 512-wide messages; the residual of eq. 10 adds the pooled nodes V^o in every
  cross-scale update, where the code adds them once per round;
- eq. 11 scores nodes by W7((W8 v) * (W9 q)) without the code's ELU inside;
- ``extract train`` selects checkpoints on validation; the code selects TGIF ones on the test set.
Training settings of the paper/code not in the generic trainer: batch 64 (TGIF) / 128 (MSVD,
MSRVTT), weight decay 5e-6 (``weight_decay``), StepLR(5, 0.5), dropout 0.1-0.3 per task.
Reported (section 3.3, pretrained features): TGIF Count 3.57 MSE, FrameQA 59.7%; MSRVTT-QA 37.8%.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from extract.videoqa.data import Batch, Head
from extract.videoqa.losses import check_head, head_output
from extract.videoqa.models.masn import masked_softmax
from extract.videoqa.registry import fixed_sample, register_model

__all__ = ["ModelConfig", "MSPAN", "FRAMES", "intra_scale_adjacency", "cross_scale_neighbours", "scale_graphs"]

FRAMES = 16  # N, frames per video (section 3.2)


class ModelConfig(BaseModel):
    """Architecture settings; defaults are the paper's (sections 2 and 3.2) or, where it is silent, the code's."""

    model_config = ConfigDict(extra="forbid")

    node_dim: int = Field(2048, ge=1)  # width of a frame/clip node after the 4096 -> 2048 Linear (paper: 2048)
    hidden_size: int = Field(512, ge=2)  # question embedding and fusion width (paper: 512), even (BiLSTM halves)
    scales: int = Field(8, ge=1)  # K, clip lengths 1..K (paper: 8); at most the frames per video
    iterations: int = Field(3, ge=1)  # T, rounds of GCN -> top-down -> bottom-up (paper: 3)
    lstm_layers: int = Field(3, ge=1)  # question BiLSTM layers (paper: 3)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)  # code: 0.2 Count, 0.1 Action, 0.3 Trans/FrameQA/MSVD/MSRVTT
    freeze_word_vectors: bool = False  # keep the GloVe rows fixed (code: fine-tuned)
    standardize_features: bool = False  # z-score every input channel with training-split statistics (buffers
    #                                     in the checkpoint); for random-weight features with large offsets

    @field_validator("hidden_size")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (the BiLSTM's two directions each give half), got {value}")
        return value


def intra_scale_adjacency(frames: int, scale: int) -> Tensor:
    """Eqs. 4-5: ``D^-1/2 A D^-1/2`` of scale ``scale``'s graph, ``[M, M]`` with M = frames - scale + 1
    nodes and A[x, y] = 1 when |x - y| <= scale (self-loops included)."""
    if not 1 <= scale <= frames:
        raise ValueError(f"scale must be in 1..{frames} for {frames} frames, got {scale}")
    index = torch.arange(frames - scale + 1)
    adjacency = ((index[:, None] - index[None, :]).abs() <= scale).float()  # [M, M]
    inv_sqrt = adjacency.sum(1).rsqrt()  # [M]
    return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


def cross_scale_neighbours(frames: int, scale: int) -> Tensor:
    """Eq. 7's N_y: ``[M_{i+1}, M_i]`` bool, True where clip y of scale i+1 (frames [y, y+i]) and clip x of
    scale i = ``scale`` (frames [x, x+i-1]) share a frame. Its transpose gives the bottom-up neighbours."""
    if not 1 <= scale < frames:
        raise ValueError(f"scale must be in 1..{frames - 1} for {frames} frames, got {scale}")
    x = torch.arange(frames - scale + 1)  # starts of the scale-i clips
    y = torch.arange(frames - scale)  # starts of the scale-(i+1) clips
    return (x[None, :] <= y[:, None] + scale) & (y[:, None] <= x[None, :] + scale - 1)


@lru_cache(maxsize=8)
def scale_graphs(frames: int, scales: int) -> tuple[Tensor, tuple[Tensor, ...]]:
    """All K intra-scale adjacencies as one block-diagonal ``[sum M_i, sum M_i]`` (one GCN call for every
    scale) and the K-1 cross-scale neighbourhoods ``[M_{i+1}, M_i]``."""
    block = torch.block_diag(*(intra_scale_adjacency(frames, i) for i in range(1, scales + 1)))
    return block, tuple(cross_scale_neighbours(frames, i) for i in range(1, scales))


class GCN(nn.Module):
    """Eq. 5, two layers ``X' = Â X W`` with an ELU and dropout between them (public code)."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(2))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """x ``[B, M, D]`` nodes of every scale, adjacency ``[M, M]`` block-diagonal -> ``[B, M, D]``."""
        x = self.dropout(F.elu(adjacency @ self.layers[0](x)))
        return adjacency @ self.layers[1](x)


class CrossScaleMessage(nn.Module):
    """Eqs. 6-10: graph G_src updates graph G_dst along the cross-scale edges, gated by the question.

    m_xy = (W1 v_y) . ((W2 v_x) * (W3 q)),  w_xy = softmax over x in N_y,
    v^_y = sum_x w_xy (W4 v_x) * (W5 q),    V_dst = W6 [V_dst; V^] + V^o_dst
    """

    def __init__(self, node_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.w1 = nn.Linear(node_dim, hidden, bias=False)
        self.w2 = nn.Linear(node_dim, hidden, bias=False)
        self.w3 = nn.Linear(hidden, hidden, bias=False)
        self.w4 = nn.Linear(node_dim, node_dim, bias=False)
        self.w5 = nn.Linear(hidden, node_dim, bias=False)
        self.w6 = nn.Linear(2 * node_dim, node_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, dst: Tensor, original: Tensor, q: Tensor, neighbours: Tensor) -> Tensor:
        """src ``[B, Ms, D]``, dst and original ``[B, Md, D]``, q ``[B, d]``, neighbours ``[Md, Ms]`` bool
        -> updated dst ``[B, Md, D]``."""
        scores = self.w1(dst) @ (self.w2(src) * self.w3(q)[:, None, :]).transpose(1, 2)  # [B, Md, Ms], eq. 6
        weights = masked_softmax(scores, neighbours, dim=-1)  # [B, Md, Ms], eq. 7
        update = weights @ (self.w4(src) * self.w5(q)[:, None, :])  # [B, Md, D], eq. 8
        return self.w6(torch.cat([dst, self.dropout(update)], dim=-1)) + original  # eq. 10


class Readout(nn.Module):
    """Eqs. 11-13: question attention over the nodes of G_1, then ``ELU(W10 F * W11 q + b)``."""

    def __init__(self, node_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.w7 = nn.Linear(hidden, 1, bias=False)
        self.w8 = nn.Linear(node_dim, hidden, bias=False)
        self.w9 = nn.Linear(hidden, hidden, bias=False)
        self.w10 = nn.Linear(node_dim, hidden, bias=False)
        self.w11 = nn.Linear(hidden, hidden)  # its bias is eq. 13's b
        self.dropout = nn.Dropout(dropout)

    def forward(self, nodes: Tensor, q: Tensor) -> Tensor:
        """nodes ``[B, M, D]``, q ``[B, d]`` -> F ``[B, d]``."""
        weights = torch.softmax(self.w7(self.w8(nodes) * self.w9(q)[:, None, :]).squeeze(-1), dim=1)  # [B, M], eq. 11
        pooled = (weights[:, :, None] * nodes).sum(dim=1)  # [B, D], eq. 12
        return self.dropout(F.elu(self.w10(pooled) * self.w11(q)))  # [B, d], eq. 13


class QuestionEncoder(nn.Module):
    """Section 2.1: GloVe vectors -> BiLSTM; the last layer's final forward and backward states."""

    def __init__(self, vocab_size: int, word_dim: int, config: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.embed.weight.requires_grad_(not config.freeze_word_vectors)
        self.lstm = nn.LSTM(word_dim, config.hidden_size // 2, config.lstm_layers, batch_first=True,
                            bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """tokens ``[B, L]``, lengths ``[B]`` (>= 1) -> q ``[B, d]``."""
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n [layers * 2, B, d/2]
        return self.dropout(torch.cat([h_n[-2], h_n[-1]], dim=-1))


class MSPAN(nn.Module):
    """The full model. ``forward(batch)`` returns ``[B]`` counts, ``[B, C]`` candidate scores or
    ``[B, num_answers]`` logits; every video of the batch has the same N >= K steps, unpadded."""

    def __init__(self, config: ModelConfig, *, vocab_size: int, word_dim: int, appearance_dim: int, motion_dim: int,
                 head: Head, num_answers: int = 0):
        super().__init__()
        check_head(head, num_answers)
        D, d = config.node_dim, config.hidden_size
        self.head_kind = head
        self.scales = config.scales
        self.question = QuestionEncoder(vocab_size, word_dim, config)
        self.frame_proj = nn.Linear(appearance_dim + motion_dim, D)  # section 2.1, 4096 -> 2048
        self.gcn = nn.ModuleList(GCN(D, config.dropout) for _ in range(config.iterations))
        self.top_down = nn.ModuleList(CrossScaleMessage(D, d, config.dropout) for _ in range(config.iterations))
        self.bottom_up = nn.ModuleList(CrossScaleMessage(D, d, config.dropout) for _ in range(config.iterations))
        self.readout = Readout(D, d, config.dropout)
        self.classifier = nn.Sequential(nn.Linear(d, d), nn.ELU(), nn.Dropout(config.dropout),
                                        nn.Linear(d, num_answers if head == "open" else 1))
        self.standardize = config.standardize_features
        if self.standardize:  # identity until set_feature_statistics; saved with the state_dict
            self.register_buffer("feature_mean", torch.zeros(appearance_dim + motion_dim))
            self.register_buffer("feature_std", torch.ones(appearance_dim + motion_dim))

    def set_feature_statistics(self, stats: dict[str, tuple[Tensor, Tensor]]) -> None:
        """Per-channel (mean, std) of ``app_global`` and ``mot_global`` (``data.feature_statistics``)."""
        if not self.standardize:
            raise ValueError("feature statistics given to a model built with standardize_features=False")
        with torch.no_grad():
            self.feature_mean.copy_(torch.cat([stats["app_global"][0], stats["mot_global"][0]]))
            self.feature_std.copy_(torch.cat([stats["app_global"][1], stats["mot_global"][1]]))

    def set_word_vectors(self, vectors: Tensor) -> None:
        """Copy a ``[V, word_dim]`` matrix (GloVe rows in vocabulary order) into the embedding."""
        with torch.no_grad():
            self.question.embed.weight.copy_(vectors)

    def frames(self, batch: Batch) -> Tensor:
        """Section 2.1: ``[B, N, D]`` frame nodes from the appearance and motion globals."""
        if not bool(batch.video_mask.all()):
            raise ValueError("MSPAN reads exactly N steps per video, unpadded (registry.fixed_sample); got a "
                             "padded batch")
        N = batch.app_global.shape[1]
        if N < self.scales:
            raise ValueError(f"MSPAN with {self.scales} scales needs at least {self.scales} steps per video, got {N}")
        features = torch.cat([batch.app_global, batch.mot_global], dim=-1)  # [B, N, Da + Dm]
        if self.standardize:
            features = (features - self.feature_mean) / self.feature_std
        return self.frame_proj(features)

    def forward(self, batch: Batch) -> Tensor:
        B, C = batch.tokens.shape[:2]
        frames = self.frames(batch)  # [B, N, D]
        q = self.question(batch.tokens.flatten(0, 1), batch.lengths.flatten())  # [B*C, d]
        if C > 1:  # every candidate row reasons over the same frames
            frames = frames.repeat_interleave(C, dim=0)  # [B*C, N, D]
        N = frames.shape[1]
        block, neighbours = scale_graphs(N, self.scales)
        block, neighbours = block.to(frames.device), [n.to(frames.device) for n in neighbours]
        original = [F.max_pool1d(frames.transpose(1, 2), i, stride=1).transpose(1, 2)
                    for i in range(1, self.scales + 1)]  # K x [B*C, N-i+1, D], eqs. 1-3
        sizes = [x.shape[1] for x in original]
        nodes = list(original)
        for gcn, top_down, bottom_up in zip(self.gcn, self.top_down, self.bottom_up):
            nodes = list(gcn(torch.cat(nodes, dim=1), block).split(sizes, dim=1))  # eq. 5, all scales at once
            for i in range(self.scales - 1):  # top-down: G_i -> G_{i+1}
                nodes[i + 1] = top_down(nodes[i], nodes[i + 1], original[i + 1], q, neighbours[i])
            for i in reversed(range(self.scales - 1)):  # bottom-up: G_{i+1} -> G_i
                nodes[i] = bottom_up(nodes[i + 1], nodes[i], original[i], q, neighbours[i].T)
        out = self.classifier(self.readout(nodes[0], q))  # [B*C, A or 1]
        return head_output(self.head_kind, out, B, C)  # [B] count, [B, C] choice, [B, A] open


@register_model("mspan", config=ModelConfig, paper="Guo et al., Multi-Scale Progressive Attention Network for "
                "Video Question Answering, ACL 2021", sample=fixed_sample, max_steps=lambda dataset: FRAMES)
def build_mspan(config: ModelConfig, **dims) -> MSPAN:
    return MSPAN(config, **dims)
