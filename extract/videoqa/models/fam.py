"""FAM: Feature Augmented Memory with Global Attention Network for VideoQA.

Cai et al., IJCAI 2020, section 3; equation numbers below are the paper's. No
public code; the memories follow HME-VideoQA's ``memory_rand.py`` (Fan et al., CVPR 2019) where the
paper leaves a choice open. d = 512.

    encoders            I^a = LSTM_a(F^a), I^m = LSTM_m(F^m) over the N steps; I^q = LSTM_q(GloVe words)   (3.1)
    visual memory       S slots M, hidden states h^a, h^m, h^v; per step: read r (1, 2), update h^{m/a} and
                        h^v with the question (3, 4), write contents c^{a/m} (5, 6) with slot weights
                        alpha (7) and keep/write gates mu over 3 choices (8, 9): M_t (10)       -> Vid [N, d]
    text memory         S_q slots, one hidden h^q, per word: read (11, 12), update with the video (13),
                        content (14), write weights (15), M^q_t = alpha c + (1 - alpha) M^q (16) -> Tex [L, d]
    non-local block     T0 = SelfAttention(Tex) (18), V0 = SelfAttention(Vid) (19), video-to-text A (20),
                        text-to-video B (21), O = [V0; A; V0 * A; V0 * B] (22)
    answer              mean of O over the steps -> Linear (section 3.4)

Readings where the equations do not type-check or are silent (HME-consistent where HME has the part):
- steps: every video is resampled to N = 35 slots (``registry.fixed_sample``; Co-Mem's fixed 35
  frames): segment centres when T >= 35, each step repeated in order when T < 35, so the memory
  recurrence never sees padding; the fixed count is the paper's, masking variable T is not;
- eq. 7 takes a softmax over S slots of the d-dim content c: a Linear d -> S gives the S scores (as
  HME), and alpha c in eq. 10 is the outer product [S] x [d] (the same for eq. 15's v_a: d -> S);
- i^q (eq. 3, 4) is W_q times the question LSTM's final state; i^a and i^m (eq. 13) are W_a and W_m
  times the appearance and motion LSTMs' final states: single vectors, as the equations need;
- sigma reads as tanh for the hidden states (3, 4, 13) and sigmoid for the contents (5, 6, 14);
  "FC" has a tanh (section 3.2); the FC of a concatenation is written as a sum of Linears of its
  parts, so the input parts run once over all steps; the initial memories are learned, hidden
  states start at zero;
- eqs. 20-21 multiply the score matrix S (M x N, N = question words) by W^q, which needs a fixed
  word count. They read as QANet's context-query attention, whose form eq. 22 is: with
  S = (V0 W_q)(T0 W_k)^T / sqrt(d), A = softmax_words(S) T0 W_v^A and
  B = softmax_words(S) softmax_steps(S)^T V0 W_v^B; the self-attended T0 and V0 are used (eq. 18's
  T0 would otherwise feed nothing);
- the pooling of O [N, 4d] before the answer layer is a mean over the N steps;
- multiple choice: each row (question + candidate, one LSTM) is a question for the whole model and
  one Linear scores it (eq. 23's hinge); the visual LSTMs run once per video;
- the loops over time and words are batched over questions (HME loops per sample as well).
Training settings of the paper not in the generic trainer: batch 32 (``batch_size``), 30 epochs,
gradient clipping and weight normalisation (neither is applied here).
Reported (Tables 2-4): TGIF Count 3.79 MSE, Action 75.4%, Trans 79.2%, FrameQA 56.9%; MSVD-QA 34.5%;
MSRVTT-QA 33.2%.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from extract.videoqa.data import Batch, Head
from extract.videoqa.losses import check_head, head_output
from extract.videoqa.models.masn import masked_softmax
from extract.videoqa.registry import fixed_sample, register_model

__all__ = ["ModelConfig", "FAM", "STEPS"]

STEPS = 35  # N, steps per video (section 3.1, following Co-Mem)


class ModelConfig(BaseModel):
    """Architecture settings; defaults are the paper's (sections 3 and 4.2) or, where it is silent, HME's."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(512, ge=1)  # d, every LSTM, memory slot and attention width (paper: 512)
    video_slots: int = Field(50, ge=1)  # S, text-augmented visual memory slots (paper, Fig. 5a: 50)
    text_slots: int = Field(30, ge=1)  # S_q, video-augmented text memory slots (paper, Fig. 5b: 30)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)  # on the encoders' outputs and before the answer layer (HME: 0.2)
    freeze_word_vectors: bool = False  # keep the GloVe rows fixed (paper silent; HME fine-tunes them)
    standardize_features: bool = False  # z-score every input channel with training-split statistics (buffers
    #                                     in the checkpoint); for random-weight features with large offsets


class VisualMemory(nn.Module):
    """Eqs. 1-10: the text-augmented visual memory, run over the N steps; returns every h^v_t."""

    def __init__(self, d: int, slots: int):
        super().__init__()
        self.initial = nn.Parameter(torch.randn(slots, d) / math.sqrt(d))  # M_0
        self.read_fc = nn.Linear(3 * d, 3 * d)  # eq. 2: FC[h^v, h^m, h^a] with tanh
        self.read_we = nn.Linear(3 * d, slots, bias=False)  # W_e
        self.hidden_x = nn.ModuleDict({s: nn.Linear(2 * d, d) for s in ("a", "m")})  # eq. 3 on [i_t, i^q]
        self.hidden_h = nn.ModuleDict({s: nn.Linear(2 * d, d, bias=False) for s in ("a", "m")})  # on [r_t, h_t-1]
        self.global_fc = nn.Linear(3 * d, d)  # eq. 4: FC[r_t, h^v, i^q]
        self.content_x = nn.ModuleDict({s: nn.Linear(d, d) for s in ("a", "m")})  # eqs. 5-6 on i_t
        self.content_h = nn.ModuleDict({s: nn.Linear(d, d, bias=False) for s in ("a", "m")})  # on h_t-1
        self.slot_scores = nn.ModuleDict({s: nn.Linear(d, slots) for s in ("a", "m")})  # eq. 7: d -> S
        self.gate_fc = nn.Linear(3 * d, d)  # eq. 9: FC[h^v, c^m, c^a] with tanh
        self.gate_wg = nn.Linear(d, 3, bias=False)  # W_g

    def forward(self, i_a: Tensor, i_m: Tensor, i_q: Tensor) -> Tensor:
        """i_a, i_m ``[B, N, d]`` encoded streams, i_q ``[B, d]`` -> Vid ``[B, N, d]``."""
        B, N, d = i_a.shape
        inputs = {"a": i_a, "m": i_m}
        with_q = {s: self.hidden_x[s](torch.cat([x, i_q[:, None].expand(-1, N, -1)], -1)) for s, x in inputs.items()}
        content_in = {s: self.content_x[s](x) for s, x in inputs.items()}  # [B, N, d] each
        memory = self.initial.expand(B, -1, -1)  # [B, S, d]
        h = {s: i_q.new_zeros(B, d) for s in ("v", "a", "m")}
        outputs = []
        for t in range(N):
            beta = torch.softmax(self.read_we(torch.tanh(self.read_fc(torch.cat([h["v"], h["m"], h["a"]], -1)))), -1)
            read = (beta[:, None, :] @ memory).squeeze(1)  # [B, d], eqs. 1-2
            content = {s: torch.sigmoid(content_in[s][:, t] + self.content_h[s](h[s])) for s in ("a", "m")}  # 5-6
            alpha = {s: torch.softmax(self.slot_scores[s](content[s]), -1) for s in ("a", "m")}  # [B, S], eq. 7
            mu = torch.softmax(self.gate_wg(torch.tanh(self.gate_fc(
                torch.cat([h["v"], content["m"], content["a"]], -1)))), -1)  # [B, 3], eqs. 8-9
            for s in ("a", "m"):  # eq. 3
                h[s] = torch.tanh(with_q[s][:, t] + self.hidden_h[s](torch.cat([read, h[s]], -1)))
            h["v"] = torch.tanh(self.global_fc(torch.cat([read, h["v"], i_q], -1)))  # eq. 4
            memory = (mu[:, 0, None, None] * memory
                      + mu[:, 1, None, None] * alpha["a"][:, :, None] * content["a"][:, None, :]
                      + mu[:, 2, None, None] * alpha["m"][:, :, None] * content["m"][:, None, :])  # eq. 10
            outputs.append(h["v"])
        return torch.stack(outputs, dim=1)


class TextMemory(nn.Module):
    """Eqs. 11-16: the video-augmented text memory, run over the words; returns every h^q_t."""

    def __init__(self, d: int, slots: int):
        super().__init__()
        self.initial = nn.Parameter(torch.randn(slots, d) / math.sqrt(d))  # M^q_0
        self.read_x = nn.Linear(d, 2 * d)  # eq. 12: FC[h^q, i^q_t] with tanh, word part
        self.read_h = nn.Linear(d, 2 * d, bias=False)  # hidden part
        self.read_ve = nn.Linear(2 * d, slots, bias=False)  # V_e
        self.hidden_x = nn.Linear(d, d)  # eq. 13: FC[i^q_t, r, h^q, i^a, i^m], word part
        self.hidden_rest = nn.Linear(2 * d, d, bias=False)  # [r, h^q]
        self.video = nn.Linear(2 * d, d, bias=False)  # [i^a, i^m] (the W_a, W_m of the video vectors folded in)
        self.content_x = nn.Linear(d, d)  # eq. 14
        self.content_h = nn.Linear(d, d, bias=False)
        self.write_fc = nn.Linear(2 * d, d)  # eq. 15: FC[c^q, h^q] with tanh
        self.write_va = nn.Linear(d, slots, bias=False)  # v_a: d -> S

    def forward(self, words: Tensor, i_a: Tensor, i_m: Tensor) -> Tensor:
        """words ``[B, L, d]`` encoded question, i_a, i_m ``[B, d]`` -> Tex ``[B, L, d]``. The padding words
        come after the real ones, so they change no real row; the attention blocks mask their rows."""
        B, L, d = words.shape
        read_in, hidden_in, content_in = self.read_x(words), self.hidden_x(words), self.content_x(words)
        video = self.video(torch.cat([i_a, i_m], -1))  # [B, d]
        memory = self.initial.expand(B, -1, -1)  # [B, S, d]
        h = words.new_zeros(B, d)
        outputs = []
        for t in range(L):
            beta = torch.softmax(self.read_ve(torch.tanh(read_in[:, t] + self.read_h(h))), -1)  # [B, S], eq. 12
            read = (beta[:, None, :] @ memory).squeeze(1)  # [B, d], eq. 11
            h_new = torch.tanh(hidden_in[:, t] + self.hidden_rest(torch.cat([read, h], -1)) + video)  # eq. 13
            content = torch.sigmoid(content_in[:, t] + self.content_h(h))  # [B, d], eq. 14
            alpha = torch.softmax(self.write_va(torch.tanh(self.write_fc(torch.cat([content, h], -1)))), -1)  # eq. 15
            memory = alpha[:, :, None] * content[:, None, :] + (1 - alpha[:, :, None]) * memory  # eq. 16
            h = h_new
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class SelfAttention(nn.Module):
    """Eqs. 17-19: ``softmax(X W_q (X W_k)^T / sqrt(d)) X W_v`` over the unmasked rows."""

    def __init__(self, d: int):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(d, d) for _ in range(3))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x ``[B, L, d]``, mask ``[B, L]`` bool -> ``[B, L, d]``."""
        scores = self.query(x) @ self.key(x).transpose(1, 2) / math.sqrt(x.shape[-1])  # [B, L, L]
        return masked_softmax(scores, mask[:, None, :], dim=-1) @ self.value(x)


class CoAttention(nn.Module):
    """Eqs. 20-22 (QANet's context-query form): video-to-text A, text-to-video B, O = [V0; A; V0*A; V0*B]."""

    def __init__(self, d: int):
        super().__init__()
        self.query, self.key, self.text_value, self.video_value = (nn.Linear(d, d) for _ in range(4))

    def forward(self, video: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        """video V0 ``[B, N, d]``, text T0 ``[B, L, d]``, text_mask ``[B, L]`` -> O ``[B, N, 4d]``."""
        scores = self.query(video) @ self.key(text).transpose(1, 2) / math.sqrt(video.shape[-1])  # S, [B, N, L]
        over_words = masked_softmax(scores, text_mask[:, None, :], dim=2)  # [B, N, L]
        over_steps = masked_softmax(scores, text_mask[:, None, :], dim=1)  # [B, N, L]
        a = over_words @ self.text_value(text)  # [B, N, d], eq. 20
        b = over_words @ (over_steps.transpose(1, 2) @ self.video_value(video))  # [B, N, d], eq. 21
        return torch.cat([video, a, video * a, video * b], dim=-1)  # eq. 22


class FAM(nn.Module):
    """The full model. ``forward(batch)`` returns ``[B]`` counts, ``[B, C]`` candidate scores or
    ``[B, num_answers]`` logits; every video of the batch has the same N steps, unpadded."""

    def __init__(self, config: ModelConfig, *, vocab_size: int, word_dim: int, appearance_dim: int, motion_dim: int,
                 head: Head, num_answers: int = 0):
        super().__init__()
        check_head(head, num_answers)
        d = config.hidden_size
        self.head_kind = head
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.embed.weight.requires_grad_(not config.freeze_word_vectors)
        self.appearance_lstm = nn.LSTM(appearance_dim, d, batch_first=True)
        self.motion_lstm = nn.LSTM(motion_dim, d, batch_first=True)
        self.question_lstm = nn.LSTM(word_dim, d, batch_first=True)
        self.question_proj = nn.Linear(d, d, bias=False)  # W_q of i^q = W_q I^q
        self.appearance_proj = nn.Linear(d, d, bias=False)  # W_a of i^a (eq. 13)
        self.motion_proj = nn.Linear(d, d, bias=False)  # W_m of i^m
        self.visual_memory = VisualMemory(d, config.video_slots)
        self.text_memory = TextMemory(d, config.text_slots)
        self.text_attention = SelfAttention(d)
        self.video_attention = SelfAttention(d)
        self.co_attention = CoAttention(d)
        self.dropout = nn.Dropout(config.dropout)
        self.answer = nn.Linear(4 * d, num_answers if head == "open" else 1)
        self.standardize = config.standardize_features
        if self.standardize:  # identity until set_feature_statistics; saved with the state_dict
            for name, dim in (("app", appearance_dim), ("mot", motion_dim)):
                self.register_buffer(f"{name}_mean", torch.zeros(dim))
                self.register_buffer(f"{name}_std", torch.ones(dim))

    def set_feature_statistics(self, stats: dict[str, tuple[Tensor, Tensor]]) -> None:
        """Per-channel (mean, std) of ``app_global`` and ``mot_global`` (``data.feature_statistics``)."""
        if not self.standardize:
            raise ValueError("feature statistics given to a model built with standardize_features=False")
        with torch.no_grad():
            for name in ("app", "mot"):
                mean, std = stats[f"{name}_global"]
                getattr(self, f"{name}_mean").copy_(mean)
                getattr(self, f"{name}_std").copy_(std)

    def set_word_vectors(self, vectors: Tensor) -> None:
        """Copy a ``[V, word_dim]`` matrix (GloVe rows in vocabulary order) into the embedding."""
        with torch.no_grad():
            self.embed.weight.copy_(vectors)

    def encode_video(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Section 3.1: I^a, I^m ``[B, N, d]`` and the final states ``[B, d]`` of both LSTMs."""
        if not bool(batch.video_mask.all()):
            raise ValueError("FAM reads exactly N steps per video, unpadded (registry.fixed_sample); got a "
                             "padded batch")
        app, mot = batch.app_global, batch.mot_global
        if self.standardize:
            app, mot = (app - self.app_mean) / self.app_std, (mot - self.mot_mean) / self.mot_std
        i_a, (last_a, _) = self.appearance_lstm(app)
        i_m, (last_m, _) = self.motion_lstm(mot)
        return self.dropout(i_a), self.dropout(i_m), last_a[-1], last_m[-1]

    def encode_question(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """tokens ``[B, L]``, lengths ``[B]`` -> I^q ``[B, L, d]`` and the final state ``[B, d]``."""
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        output, (last, _) = self.question_lstm(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=tokens.shape[1])
        return self.dropout(output), last[-1]

    def forward(self, batch: Batch) -> Tensor:
        B, C = batch.tokens.shape[:2]
        i_a, i_m, last_a, last_m = self.encode_video(batch)  # [B, N, d] x 2, [B, d] x 2
        tokens, lengths = batch.tokens.flatten(0, 1), batch.lengths.flatten()  # [B*C, L], [B*C]
        words, last_q = self.encode_question(tokens, lengths)  # [B*C, L, d], [B*C, d]
        word_mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]  # [B*C, L]
        if C > 1:  # every candidate row meets the same encoded video
            i_a, i_m, last_a, last_m = (x.repeat_interleave(C, dim=0) for x in (i_a, i_m, last_a, last_m))
        vid = self.visual_memory(i_a, i_m, self.question_proj(last_q))  # [B*C, N, d]
        tex = self.text_memory(words, self.appearance_proj(last_a), self.motion_proj(last_m))  # [B*C, L, d]
        t0 = self.text_attention(tex, word_mask)  # eq. 18
        v0 = self.video_attention(vid, torch.ones(vid.shape[:2], dtype=torch.bool, device=vid.device))  # eq. 19
        o = self.co_attention(v0, t0, word_mask)  # [B*C, N, 4d]
        out = self.answer(self.dropout(o.mean(dim=1)))  # [B*C, A or 1]
        return head_output(self.head_kind, out, B, C)  # [B] count, [B, C] choice, [B, A] open


@register_model("fam", config=ModelConfig, paper="Cai et al., Feature Augmented Memory with Global Attention "
                "Network for VideoQA, IJCAI 2020", sample=fixed_sample, max_steps=lambda dataset: STEPS)
def build_fam(config: ModelConfig, **dims) -> FAM:
    return FAM(config, **dims)
