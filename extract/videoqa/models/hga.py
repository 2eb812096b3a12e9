"""HGA: Reasoning with Heterogeneous Graph Alignment for Video Question Answering.

Jiang and Han, AAAI 2020, as NExT-QA's baseline (Xiao et al., CVPR 2021; the architecture read from
github.com/doc-doc/NExT-QA ``networks/VQAModel/HGA.py``, ``gcn.py``, ``q_v_transformer.py``,
``EncoderRNN.py``; nothing copied). For each candidate, question + answer is one query:

    video       V = GRU(Dropout(ReLU(Linear_4096->d([F_a; F_m]))))                  [T, d], v_last
    query       Q = GRU(Dropout(E(words)))   E: GloVe 300-d, or Linear(768->300) on BERT-FT rows; q_last
    co-attention   Q, V <- LayerNorm(Q), LayerNorm(V);  Q' = LN(Q + W_f softmax(Q W_q (V W_k)^T / sqrt d) V W_v),
                   V' = LN(V + W_f' softmax(V W_k (Q W_q)^T / sqrt d) Q W_v')       (DropConnect projections)
    graph       X = [Q'; V'];  h = ReLU(W2 ReLU(W1 X));  A = h h^T;  X <- Dropout(ReLU(LN(A X W))) per GCN layer
    pooling     local = sum_i softmax_i(w^T tanh(W X_i)) X_i
    score       s = Fuse(Fuse(q_last, v_last), local)                                 (a scalar)

and the hinge loss with margin 1 over the wrong candidates (``losses``); Adam, batch 64,
ReduceLROnPlateau(max, factor 0.5, patience 5) on validation accuracy, learning rate 1e-4 with GloVe
and 5e-5 with BERT-FT (NExT-QA's ``main_qa.py`` and ``videoqa.py``).

Deliberate differences from the released code:
- padding (words beyond a query's length, clips beyond a video's) is masked out of the co-attention
  softmaxes, the adjacency (rows and columns of padded nodes are zero) and the pooling; the code masks
  only all-zero rows, and a LayerNorm'd padded word is not zero, so it enters its graph;
- the pooling softmax runs over the nodes: the code's ``Softmax(dim=-1)`` acts on a size-1 axis, which
  makes it a plain sum (its comment says so); the issue and the paper describe attention pooling;
- ``Fuse`` is a low-rank bilinear fusion ``Linear((W_x x) * (W_y y))`` of width ``fusion_dim`` standing in
  for the ``block`` library's BLOCK fusion, which is not a dependency of this project;
- the GCN has ``gcn_layers`` graph convolutions: the code's ``GCN(num_layers=2)`` stacks three
  (input, one hidden, output), which is the default here;
- the adjacency layers are plain linear layers (the code wraps them in weight normalisation).

``ModelConfig(question_only=True)`` is a question-only baseline with the same text encoder, co-attention,
graph and scorer: the video is one learned constant node, so its accuracy is what the words alone give.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from extract.videoqa.data import Batch, Head
from extract.videoqa.models.masn import WeightDropLinear, masked_softmax
from extract.videoqa.registry import register_model

__all__ = ["ModelConfig", "HGA", "TextEncoder", "BilinearFusion", "lengths_mask", "CLIPS"]

CLIPS = 16  # clips per NExT-QA video (the export's app_mot files)


class ModelConfig(BaseModel):
    """HGA settings; defaults are NExT-QA's code (``main_qa.py``: hidden 256, dropout 0.3)."""

    model_config = ConfigDict(extra="forbid")
    LR: ClassVar[dict[str, float]] = {"glove": 1e-4, "bert": 5e-5}  # Adam learning rate by text (main_qa.py)
    BATCH_SIZE: ClassVar[int] = 64  # questions per batch (code: 64)
    MAX_TOKENS: ClassVar[int] = 37  # words of question + candidate (NExT-QA's BERT-FT rows; section 4.2)
    PLATEAU_PATIENCE: ClassVar[int | None] = 5  # ReduceLROnPlateau(max, 0.5) patience (code: 5)

    hidden_size: int = Field(256, ge=2)  # d (code: 256)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)  # input dropout, DropConnect and GCN dropout (code: 0.3)
    coattention_layers: int = Field(1, ge=1)  # stacked co-attention layers (code: vid_encoder.n_layers = 1)
    gcn_layers: int = Field(3, ge=1)  # graph convolutions (code: GCN(num_layers=2), which stacks 3)
    fusion_dim: int = Field(1600, ge=1)  # width of the bilinear fusion (BLOCK's default mm_dim: 1600)
    freeze_word_vectors: bool = False  # keep GloVe rows fixed (code: from_pretrained(freeze=False))
    question_only: bool = False  # baseline: the clips are one learned constant node (as MASN's question_only);
    #                              no module reads the features, so nothing of the video reaches the score


def lengths_mask(lengths: Tensor, width: int) -> Tensor:
    """``[...]`` lengths -> ``[..., width]`` bool, True on the first ``length`` positions."""
    return torch.arange(width, device=lengths.device) < lengths[..., None]


class TextEncoder(nn.Module):
    """Query words -> GRU states. GloVe: embedding of ``tokens``; BERT-FT: Linear(text_dim -> word_dim) of
    ``text_feat``. ``forward`` gives ``[N, L, d]`` outputs (zero beyond each length) and the last state ``[N, d]``."""

    def __init__(self, vocab_size: int, word_dim: int, hidden: int, dropout: float, *, text_dim: int = 0,
                 freeze: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.embed.weight.requires_grad_(not freeze)
        self.bert = nn.Linear(text_dim, word_dim) if text_dim else None
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True)

    def forward(self, tokens: Tensor, lengths: Tensor, text: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """tokens ``[N, L]`` or text ``[N, L, text_dim]``; lengths ``[N]`` (>= 1)."""
        if self.bert is not None:
            if text is None:
                raise ValueError("this model reads BERT-FT features: the batch has no text_feat")
            x = self.bert(text)
        else:
            x = self.embed(tokens)
        x = self.dropout(x)  # [N, L, word_dim]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, h_n = self.gru(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])
        return output, h_n[-1]


class BilinearFusion(nn.Module):
    """Low-rank bilinear fusion of ``x [N, d_x]`` and ``y [N, d_y]`` -> ``[N, out]``: ``W_o((W_x x) * (W_y y))``."""

    def __init__(self, x_dim: int, y_dim: int, out: int, dim: int, dropout: float = 0.0):
        super().__init__()
        self.x = nn.Linear(x_dim, dim)
        self.y = nn.Linear(y_dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, out)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.out(self.dropout(self.x(self.dropout(x)) * self.y(self.dropout(y))))


class CoAttention(nn.Module):
    """One co-attention layer: each query word attends to the clips and each clip to the words."""

    def __init__(self, d: int, dropout: float):
        super().__init__()
        self.q_key, self.v_key, self.q_value, self.v_value, self.q_out, self.v_out = (
            WeightDropLinear(d, d, weight_dropout=dropout) for _ in range(6))
        self.norm = nn.LayerNorm(d, elementwise_affine=False)

    def forward(self, q: Tensor, v: Tensor, q_mask: Tensor, v_mask: Tensor) -> tuple[Tensor, Tensor]:
        """q ``[N, L, d]``, v ``[N, T, d]``, masks ``[N, L]``, ``[N, T]`` -> same shapes."""
        qk, vk = self.q_key(q), self.v_key(v)
        scale = q.shape[-1] ** -0.5
        qv = masked_softmax(qk @ vk.transpose(1, 2) * scale, v_mask[:, None, :], dim=-1)  # [N, L, T]
        vq = masked_softmax(vk @ qk.transpose(1, 2) * scale, q_mask[:, None, :], dim=-1)  # [N, T, L]
        q_new = self.norm(q + self.q_out(qv @ self.v_value(v)))
        v_new = self.norm(v + self.v_out(vq @ self.q_value(q)))
        return q_new, v_new


class GraphReasoning(nn.Module):
    """Learned adjacency ``A = h h^T``, ``h = ReLU(W2 ReLU(W1 X))``, GCN layers and attention pooling."""

    def __init__(self, d: int, layers: int, dropout: float):
        super().__init__()
        self.edge = nn.Sequential(nn.Linear(d, d, bias=False), nn.ReLU(), nn.Linear(d, d, bias=False), nn.ReLU())
        self.layers = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(layers))
        self.norm = nn.LayerNorm(d, elementwise_affine=False)
        self.dropout = nn.Dropout(dropout)
        self.pool = nn.Sequential(nn.Linear(d, d // 2), nn.Tanh(), nn.Linear(d // 2, 1))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x ``[N, K, d]`` nodes, mask ``[N, K]`` -> pooled ``[N, d]``."""
        h = self.edge(x)  # [N, K, d]
        pair = mask[:, :, None] & mask[:, None, :]  # [N, K, K]
        adjacency = (h @ h.transpose(1, 2)) * pair
        for layer in self.layers:
            x = self.dropout(F.relu(self.norm(adjacency @ layer(x))))
        weights = masked_softmax(self.pool(x).squeeze(-1), mask, dim=-1)  # [N, K]
        return (weights[..., None] * x).sum(dim=1)


class VideoEncoder(nn.Module):
    """Clips ``[N, T, D_a + D_m]`` -> GRU outputs ``[N, T, d]`` (zero beyond the clips) and last state ``[N, d]``."""

    def __init__(self, in_dim: int, d: int, dropout: float):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(in_dim, d), nn.ReLU(), nn.Dropout(dropout))
        nn.init.xavier_normal_(self.project[0].weight)
        self.gru = nn.GRU(d, d, batch_first=True)

    def forward(self, clips: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        lengths = mask.sum(dim=1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.project(clips), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        output, h_n = self.gru(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=clips.shape[1])
        return output, h_n[-1]


class HGA(nn.Module):
    """``forward(batch)`` -> ``[B, C]``, one score per candidate (any C: augmented training adds some)."""

    def __init__(self, config: ModelConfig, *, vocab_size: int, word_dim: int, appearance_dim: int, motion_dim: int,
                 head: Head, num_answers: int = 0, text_dim: int = 0, trajectory_dim: int = 0):
        """text_dim: BERT-FT width (0: GloVe tokens); trajectory_dim: unused (HGA reads no trajectories),
        taken so that every nextqa-source model is built from the same arguments."""
        super().__init__()
        if head != "choice":
            raise ValueError(f"HGA scores multiple-choice candidates; head must be 'choice', got {head!r}")
        d = config.hidden_size
        self.head_kind = head
        self.video = None if config.question_only else VideoEncoder(appearance_dim + motion_dim, d, config.dropout)
        self.constant = nn.Parameter(torch.randn(1, 1, d) * 0.1) if config.question_only else None  # [1, 1, d]
        self.text = TextEncoder(vocab_size, word_dim, d, config.dropout, text_dim=text_dim,
                                freeze=config.freeze_word_vectors)
        self.norm = nn.LayerNorm(d, elementwise_affine=False)
        self.coattention = nn.ModuleList(CoAttention(d, config.dropout) for _ in range(config.coattention_layers))
        self.graph = GraphReasoning(d, config.gcn_layers, config.dropout)
        self.global_fusion = BilinearFusion(d, d, d, config.fusion_dim, config.dropout)
        self.score = BilinearFusion(d, d, 1, config.fusion_dim)

    def set_word_vectors(self, vectors: Tensor) -> None:
        """Copy a ``[V, word_dim]`` matrix (GloVe rows in vocabulary order) into the embedding."""
        with torch.no_grad():
            self.text.embed.weight.copy_(vectors)

    def forward(self, batch: Batch) -> Tensor:
        B, C, L = batch.tokens.shape
        if self.video is None:  # question only: one constant "clip" per video
            v = self.constant.expand(B, 1, -1)
            v_last, video_mask = v[:, 0], torch.ones(B, 1, dtype=torch.bool, device=v.device)
        else:
            v, v_last = self.video(torch.cat([batch.app_global, batch.mot_global], dim=-1), batch.video_mask)
            video_mask = batch.video_mask
        text = None if batch.text_feat is None else batch.text_feat.flatten(0, 1)  # [B*C, L', D_w]
        q, q_last = self.text(batch.tokens.flatten(0, 1), batch.lengths.flatten(), text)  # [B*C, L', d], [B*C, d]
        q_mask = lengths_mask(batch.lengths.flatten(), q.shape[1])  # [B*C, L']
        v, v_last, v_mask = (x.repeat_interleave(C, dim=0) for x in (v, v_last, video_mask))
        q, v = self.norm(q), self.norm(v)
        for layer in self.coattention:
            q, v = layer(q, v, q_mask, v_mask)
        local = self.graph(torch.cat([q, v], dim=1), torch.cat([q_mask, v_mask], dim=1))  # [B*C, d]
        return self.score(self.global_fusion(q_last, v_last), local).view(B, C)


@register_model("hga", config=ModelConfig, source="nextqa", heads=("choice",), max_steps=lambda dataset: CLIPS,
                paper="Jiang and Han, Reasoning with Heterogeneous Graph Alignment for Video Question Answering, "
                      "AAAI 2020 (as in NExT-QA, Xiao et al., CVPR 2021)")
def build_hga(config: ModelConfig, **dims) -> HGA:
    return HGA(config, **dims)
