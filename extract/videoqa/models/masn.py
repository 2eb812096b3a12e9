"""MASN: Motion-Appearance Synergistic Networks for Video Question Answering.

Seo, Kang, Park and Zhang, ACL 2021 (arXiv:2106.10446), section 3; equation numbers below are the
paper's. Two streams (appearance: ResNet, motion: I3D) share one architecture:

    location encoding   v_local = FFN([o; d_s; d_t]), d_s = FFN(b), d_t = sinusoid(frame index)   (1)
                        v = FFN([v_local; v_global + d_t])  -> K = T x N graph nodes                 (2)
    object graph        A = softmax((X W1)(X W2)^T);  F = LayerNorm(X + ReLU(A ReLU(A X W3) W4))      (3, 4)
    VQ interaction      H_i = 1 . BAN_i(H_{i-1}, F; A_i)^T + H_{i-1},  H_0 = F^q, i = 1..g               (5)

then the motion-appearance fusion: U = [H^a; H^m], appearance-centred, motion-centred and all-mixed
attention Z = LayerNorm(Attention(U, ., .) + U) (6-8), question-guided weights alpha over the three
(9), O = LayerNorm(S + FFN(S)) (10), attention pooling f = sum_i beta_i O_i (11), and the answer head
(section 3.4). The question is a BiLSTM over 300-d GloVe vectors (section 3.1).

Differences from the public code (github.com/ahjeongseo/MASN-pytorch), all deliberate:
- the 2048-to-hidden input projections use DropConnect that keeps the weight a trained parameter
  (the reference re-creates the weight as a new leaf Parameter each forward, so it never learns);
- every position encoding has the width it is added to (the reference hard-codes 512);
- no ``squeeze()`` without a dimension, so a batch of one question works;
- the padding steps of shorter videos (all their objects) and padding words are masked out of the
  adjacency, BAN, attention and pooling softmaxes;
- for multiple choice, the visual graph is computed once per video and shared by the candidates.

``ModelConfig(question_only=True)`` is a question-only baseline with the same question encoder,
BAN, fusion, head and training: the two visual streams are not built, and each is replaced by one
learned constant graph node, so the features of a video cannot influence its answer. The gap
between MASN and this baseline is what the video contributes (language priors sit in both).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from extract.videoqa.data import Batch, Head
from extract.videoqa.losses import check_head, head_output
from extract.videoqa.registry import register_model

__all__ = ["ModelConfig", "MASN", "WeightDropLinear", "masked_softmax", "sinusoid_encoding"]


class ModelConfig(BaseModel):
    """Architecture settings; defaults are the paper's (section 4.2) or, where it is silent, the public code's."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(512, ge=2)  # d, width of every representation after the input projections (code: 512)
    glimpses: int = Field(4, ge=1)  # g, BAN glimpses (paper: 4)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)  # dropout and input-projection DropConnect rate (code: 0.3)
    location_dim: int = Field(64, ge=2)  # width of the box code d_s and the frame code d_t of eq. 1 (code: 64)
    ban_rank: int = Field(3, ge=1)  # k, rank multiplier of BAN's low-rank bilinear attention (BAN: 3)
    lstm_layers: int = Field(1, ge=1)  # BiLSTM layers of the question encoder (code: 1)
    freeze_word_vectors: bool = True  # keep the GloVe rows fixed while training (code: frozen)
    standardize_features: bool = False  # z-score every input feature channel with training-split statistics
    #                                     (buffers in the checkpoint); for features whose videos share a large
    #                                     per-channel offset, as random-weight extractors produce
    question_only: bool = False  # baseline: no visual stream is built; one learned constant node per stream
    #                              stands in for the video graph, so only the question informs the answer

    @field_validator("hidden_size", "location_dim")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (sinusoidal codes pair sin and cos), got {value}")
        return value


def masked_softmax(scores: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Softmax of ``scores`` over ``dim`` where ``mask`` (bool, broadcastable) is True; zeros elsewhere.

    A slice with no True entry gives all zeros rather than NaN.
    """
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=dim) * mask


def sinusoid_encoding(positions: Tensor, dim: int) -> Tensor:
    """Transformer position code of ``positions`` ``[...]`` (any real values) -> ``[..., dim]``, dim even.

    Channels ``2i`` and ``2i + 1`` are ``sin`` and ``cos`` of ``position / 10000^(2i / dim)``.
    """
    frequencies = torch.exp(
        torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )  # [dim/2]
    angles = positions.float()[..., None] * frequencies  # [..., dim/2]
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # [..., dim]


def _ffn(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Dropout(dropout))


class WeightDropLinear(nn.Linear):
    """Linear layer with DropConnect on its weight (the public code's input projections), written so
    that ``weight`` stays the trained parameter and receives gradients."""

    def __init__(self, in_features: int, out_features: int, *, weight_dropout: float, bias: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        self.weight_dropout = weight_dropout

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, F.dropout(self.weight, self.weight_dropout, self.training), self.bias)


class ObjectGraph(nn.Module):
    """Eqs. 3-4: learned softmax adjacency over the K nodes and a two-layer GCN with a residual LayerNorm.

    The adjacency scores are scaled by 1/sqrt(d) (as in eq. 7) so the softmax does not saturate at d = 512.
    """

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.w1 = nn.Linear(dim, dim, bias=False)
        self.w2 = nn.Linear(dim, dim, bias=False)
        self.w3 = nn.Linear(dim, dim, bias=False)
        self.w4 = nn.Linear(dim, dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x ``[B, K, d]``, mask ``[B, K]`` bool -> relation-aware nodes ``[B, K, d]``."""
        scores = self.w1(x) @ self.w2(x).transpose(1, 2) / math.sqrt(x.shape[-1])  # [B, K, K]
        adjacency = masked_softmax(scores, mask[:, None, :], dim=-1)  # [B, K, K]
        h = self.dropout(F.relu(adjacency @ self.w3(x)))  # [B, K, d]
        h = F.relu(adjacency @ self.w4(h))  # [B, K, d]
        return self.norm(x + self.dropout(h))


class VisualStream(nn.Module):
    """Eqs. 1-4 for one stream: project, encode locations, build the K = T x N nodes, run the graph."""

    def __init__(self, feature_dim: int, config: ModelConfig):
        super().__init__()
        d, loc = config.hidden_size, config.location_dim
        self.location_dim = loc
        self.object_proj = WeightDropLinear(feature_dim, d, weight_dropout=config.dropout)
        self.global_proj = WeightDropLinear(feature_dim, d, weight_dropout=config.dropout)
        self.box_ffn = _ffn(6, loc, config.dropout)  # d_s = FFN(b)
        self.local_ffn = _ffn(d + 2 * loc, d, config.dropout)  # eq. 1
        self.node_ffn = _ffn(2 * d, d, config.dropout)  # eq. 2
        self.graph = ObjectGraph(d, config.dropout)
        self.standardize = config.standardize_features
        if self.standardize:  # identity until set_statistics; saved with the state_dict
            for name in ("object_mean", "global_mean"):
                self.register_buffer(name, torch.zeros(feature_dim))
            for name in ("object_std", "global_std"):
                self.register_buffer(name, torch.ones(feature_dim))

    def set_statistics(self, objects: tuple[Tensor, Tensor], global_: tuple[Tensor, Tensor]) -> None:
        """Per-channel (mean ``[D]``, std ``[D]``) of the object and the global features."""
        if not self.standardize:
            raise ValueError("feature statistics given to a model built with standardize_features=False")
        with torch.no_grad():
            for (mean, std), prefix in ((objects, "object"), (global_, "global")):
                getattr(self, f"{prefix}_mean").copy_(mean)
                getattr(self, f"{prefix}_std").copy_(std)

    def forward(self, objects: Tensor, global_: Tensor, boxes: Tensor, steps: Tensor, node_mask: Tensor) -> Tensor:
        """objects ``[B, T, N, D]``, global_ ``[B, T, D]``, boxes ``[B, T, N, 6]``, steps ``[B, T]``,
        node_mask ``[B, T*N]`` -> graph nodes ``[B, T*N, d]``."""
        B, T, N, _ = objects.shape
        if self.standardize:
            objects = (objects - self.object_mean) / self.object_std
            global_ = (global_ - self.global_mean) / self.global_std
        d_s = self.box_ffn(boxes)  # [B, T, N, loc]
        d_t = sinusoid_encoding(steps, self.location_dim)[:, :, None, :].expand(B, T, N, -1)  # [B, T, N, loc]
        local = self.local_ffn(torch.cat([self.object_proj(objects), d_s, d_t], dim=-1))  # [B, T, N, d]
        frame = self.global_proj(global_)  # [B, T, d]
        frame = frame + sinusoid_encoding(steps, frame.shape[-1])  # [B, T, d]
        nodes = self.node_ffn(torch.cat([local, frame[:, :, None, :].expand(-1, -1, N, -1)], dim=-1))  # [B, T, N, d]
        return self.graph(nodes.reshape(B, T * N, -1), node_mask)  # [B, K, d]


class BilinearAttentionNetwork(nn.Module):
    """Eq. 5: BAN (Kim et al., NeurIPS 2018) with g glimpses and residual learning in the question space.

    The g bilinear attention maps ``A_i [K, L]`` come from a low-rank bilinear model of (V, H_0); glimpse
    i pools ``sum_{k,l} A_i[k,l] (ReLU(V U_i))_k * (ReLU(H_{i-1} W_i))_l`` and adds its projection to every
    word of H_{i-1}.
    """

    def __init__(self, dim: int, glimpses: int, rank: int, dropout: float):
        super().__init__()
        self.att_v = nn.Linear(dim, dim * rank)
        self.att_q = nn.Linear(dim, dim * rank)
        self.att_p = nn.Parameter(torch.randn(glimpses, dim * rank) / math.sqrt(dim * rank))  # p_i
        self.att_bias = nn.Parameter(torch.zeros(glimpses))
        self.join_v = nn.ModuleList(nn.Linear(dim, dim) for _ in range(glimpses))
        self.join_q = nn.ModuleList(nn.Linear(dim, dim) for _ in range(glimpses))
        self.project = nn.ModuleList(nn.Linear(dim, dim) for _ in range(glimpses))
        self.dropout = nn.Dropout(dropout)

    def attention(self, v: Tensor, q: Tensor, v_mask: Tensor, q_mask: Tensor) -> Tensor:
        """v ``[B, K, d]``, q ``[B, L, d]`` -> maps ``[B, g, K, L]``, each summing to 1 over (K, L)."""
        v_ = self.dropout(F.relu(self.att_v(v)))  # [B, K, kd]
        q_ = F.relu(self.att_q(q))  # [B, L, kd]
        logits = (v_[:, None] * self.att_p[None, :, None, :]) @ q_[:, None].transpose(2, 3)  # [B, g, K, L]
        logits = logits + self.att_bias[None, :, None, None]
        mask = (v_mask[:, None, :, None] & q_mask[:, None, None, :]).expand_as(logits)  # [B, g, K, L]
        return masked_softmax(logits.flatten(2), mask.flatten(2), dim=-1).view_as(logits)

    def forward(self, v: Tensor, q: Tensor, v_mask: Tensor, q_mask: Tensor) -> Tensor:
        """v ``[B, K, d]`` visual nodes, q ``[B, L, d]`` words -> H_g ``[B, L, d]``."""
        maps = self.attention(v, q, v_mask, q_mask)  # [B, g, K, L]
        h = q
        for i, (join_v, join_q, project) in enumerate(zip(self.join_v, self.join_q, self.project)):
            v_ = F.relu(join_v(v))  # [B, K, d]
            q_ = F.relu(join_q(h))  # [B, L, d]
            joint = ((maps[:, i].transpose(1, 2) @ v_) * q_).sum(dim=1)  # [B, d]
            h = h + project(self.dropout(joint))[:, None, :]  # [B, L, d], eq. 5
        return h


class Attention(nn.Module):
    """Eq. 7, scaled dot-product attention, with learned query, key and value projections."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, key: Tensor, key_mask: Tensor) -> Tensor:
        """query ``[B, Lq, d]``, key = value ``[B, Lk, d]``, key_mask ``[B, Lk]`` -> ``[B, Lq, d]``."""
        scores = self.query(query) @ self.key(key).transpose(1, 2) / math.sqrt(query.shape[-1])  # [B, Lq, Lk]
        return self.dropout(masked_softmax(scores, key_mask[:, None, :], dim=-1)) @ self.value(key)


class MotionAppearanceFusion(nn.Module):
    """Eqs. 6-11: motion/appearance-centred attention, question-guided fusion, attention pooling."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.attend = nn.ModuleList(Attention(dim, dropout) for _ in range(3))  # appearance, motion, all
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.guide_q = nn.Linear(dim, dim)
        self.guide_z = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.pool = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, 1))

    def forward(self, h_app: Tensor, h_mot: Tensor, q_mask: Tensor, q: Tensor) -> Tensor:
        """H^a, H^m ``[B, L, d]``, q_mask ``[B, L]``, q ``[B, d]`` -> f ``[B, d]``."""
        u = torch.cat([h_app, h_mot], dim=1)  # [B, 2L, d], eq. 6
        u_mask = torch.cat([q_mask, q_mask], dim=1)  # [B, 2L]
        keys = ((h_app, q_mask), (h_mot, q_mask), (u, u_mask))
        z = torch.stack(
            [norm(attend(u, key, mask) + u) for attend, norm, (key, mask) in zip(self.attend, self.norms, keys)],
            dim=1,
        )  # [B, 3, 2L, d], eq. 8
        z_sum = (z * u_mask[:, None, :, None]).sum(dim=2)  # [B, 3, d]
        scores = (self.guide_z(z_sum) * self.guide_q(q)[:, None, :]).sum(-1) / math.sqrt(q.shape[-1])  # [B, 3]
        alpha = torch.softmax(scores, dim=1)  # [B, 3], eq. 9
        s = (alpha[:, :, None, None] * z).sum(dim=1)  # [B, 2L, d]
        o = self.norm(s + self.ffn(s))  # [B, 2L, d], eq. 10
        beta = masked_softmax(self.pool(o).squeeze(-1), u_mask, dim=-1)  # [B, 2L]
        return (beta[:, :, None] * o).sum(dim=1)  # [B, d], eq. 11


class QuestionEncoder(nn.Module):
    """Section 3.1: word vectors -> BiLSTM; word-level features F^q and the last hidden units q."""

    def __init__(self, vocab_size: int, word_dim: int, config: ModelConfig):
        super().__init__()
        d = config.hidden_size
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.embed.weight.requires_grad_(not config.freeze_word_vectors)
        self.input = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(word_dim, d, bias=False), nn.ReLU())
        self.lstm = nn.LSTM(d, d, config.lstm_layers, batch_first=True, bidirectional=True,
                            dropout=config.dropout if config.lstm_layers > 1 else 0.0)
        self.words = _ffn(2 * d, d, config.dropout)
        self.last = _ffn(2 * d, d, config.dropout)

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """tokens ``[B, L]``, lengths ``[B]`` (>= 1) -> F^q ``[B, L, d]``, q ``[B, d]``."""
        x = self.input(self.embed(tokens))  # [B, L, d]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, (h_n, _) = self.lstm(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=tokens.shape[1])
        last = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # [B, 2d]: last layer, forward and backward
        return self.words(output), self.last(last)


class MASN(nn.Module):
    """The full model. ``forward(batch)`` returns, per head:

    - ``count``: ``[B]`` regressed counts;
    - ``choice``: ``[B, C]`` one score per candidate (question and candidate encoded together);
    - ``open``: ``[B, num_answers]`` class logits.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        vocab_size: int,
        word_dim: int,
        appearance_dim: int,
        motion_dim: int,
        head: Head,
        num_answers: int = 0,
    ):
        super().__init__()
        check_head(head, num_answers)
        d = config.hidden_size
        self.head_kind = head
        self.question_only = config.question_only
        self.question = QuestionEncoder(vocab_size, word_dim, config)
        if config.question_only:  # no module reads the features: nothing of the video can reach the answer
            self.appearance = self.motion = None
            self.video_constant = nn.Parameter(torch.randn(2, 1, d))  # [stream, K=1, d], LayerNorm-like scale
        else:
            self.appearance = VisualStream(appearance_dim, config)
            self.motion = VisualStream(motion_dim, config)
        self.ban_appearance = BilinearAttentionNetwork(d, config.glimpses, config.ban_rank, config.dropout)
        self.ban_motion = BilinearAttentionNetwork(d, config.glimpses, config.ban_rank, config.dropout)
        self.fusion = MotionAppearanceFusion(d, config.dropout)
        self.head = nn.Linear(d, num_answers if head == "open" else 1)

    def set_feature_statistics(self, stats: dict[str, tuple[Tensor, Tensor]]) -> None:
        """Per-channel (mean, std) of ``app_objects``, ``app_global``, ``mot_objects``, ``mot_global``
        (``data.feature_statistics``) for ``standardize_features``; ignored by the question-only baseline."""
        if self.question_only:
            return
        self.appearance.set_statistics(stats["app_objects"], stats["app_global"])
        self.motion.set_statistics(stats["mot_objects"], stats["mot_global"])

    def set_word_vectors(self, vectors: Tensor) -> None:
        """Copy a ``[V, word_dim]`` matrix (GloVe rows in vocabulary order) into the embedding."""
        with torch.no_grad():
            self.question.embed.weight.copy_(vectors)

    def video_graphs(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Appearance and motion graph nodes ``[B, K, d]`` and their mask ``[B, K]``; for the question-only
        baseline, the learned constant nodes (K = 1), which read nothing of ``batch`` but its size."""
        if self.question_only:
            B = batch.tokens.shape[0]
            v_app, v_mot = (self.video_constant[i].expand(B, -1, -1) for i in range(2))  # [B, 1, d] each
            return v_app, v_mot, torch.ones(B, 1, dtype=torch.bool, device=batch.tokens.device)
        B, T, N, _ = batch.app_objects.shape
        node_mask = batch.video_mask[:, :, None].expand(B, T, N).reshape(B, T * N)  # [B, K]
        v_app = self.appearance(batch.app_objects, batch.app_global, batch.boxes, batch.steps, node_mask)  # [B, K, d]
        v_mot = self.motion(batch.mot_objects, batch.mot_global, batch.boxes, batch.steps, node_mask)  # [B, K, d]
        return v_app, v_mot, node_mask

    def forward(self, batch: Batch) -> Tensor:
        B, C = batch.tokens.shape[:2]
        v_app, v_mot, node_mask = self.video_graphs(batch)  # [B, K, d], [B, K, d], [B, K]

        tokens = batch.tokens.flatten(0, 1)  # [B*C, L]
        lengths = batch.lengths.flatten()  # [B*C]
        f_q, q = self.question(tokens, lengths)  # [B*C, L, d], [B*C, d]
        q_mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]  # [B*C, L]
        if C > 1:  # every candidate meets the same video graph
            v_app, v_mot, node_mask = (x.repeat_interleave(C, dim=0) for x in (v_app, v_mot, node_mask))
        h_app = self.ban_appearance(v_app, f_q, node_mask, q_mask)  # [B*C, L, d]
        h_mot = self.ban_motion(v_mot, f_q, node_mask, q_mask)  # [B*C, L, d]
        out = self.head(self.fusion(h_app, h_mot, q_mask, q))  # [B*C, A or 1]
        return head_output(self.head_kind, out, B, C)  # [B] count, [B, C] choice, [B, A] open


@register_model("masn", config=ModelConfig, paper="Seo et al., Attend What You Need: Motion-Appearance "
                "Synergistic Networks for Video Question Answering, ACL 2021")
def build_masn(config: ModelConfig, **dims) -> MASN:
    return MASN(config, **dims)
