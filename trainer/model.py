"""DeepSeek-V3-style Multi-head Latent Attention decoder on packed documents.

Attention compresses queries through a low-rank latent (``q_lora_rank``) and
keys/values jointly through another (``kv_lora_rank``), each latent
RMS-normalised. Every head's q/k is ``qk_nope`` content dims plus ``qk_rope``
rotary dims; the rotary key is computed once from the hidden state and shared by
all heads. MLP is SwiGLU; norms are RMSNorm (pre-norm); embeddings are tied.

Inputs are packed as in flash-attn varlen: ``input_ids`` (total,),
``position_ids`` restarting at 0 per document, int32 ``cu_seqlens`` and
``max_seqlen``; attention never crosses a document boundary.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.config import ModelConfig
from trainer.kernels import mla_attention


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32: bf16 sums of squares lose too much at hidden 2048.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def rope_cos_sin(position_ids: torch.Tensor, dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin (total, dim) for rotate-half rotary embedding, in fp32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, device=position_ids.device, dtype=torch.float32) / dim))
    freqs = position_ids.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (total, heads, dim); cos/sin: (total, dim)."""
    half = x.shape[-1] // 2
    xf = x.float()
    rotated = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
    return (xf * cos[:, None, :] + rotated * sin[:, None, :]).to(x.dtype)


@torch.compiler.disable
def _attention(q, k, v, cu_seqlens, max_seqlen, scale):
    # Kept out of torch.compile graphs: the kernel is already fused, and inductor fails to re-compile
    # its user-defined Triton kernels (CompilationError in _fwd_inner, torch 2.11 on H100).
    return mla_attention(q, k, v, cu_seqlens, max_seqlen, softmax_scale=scale, causal=True)


class MLA(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.n_heads
        self.q_a = nn.Linear(cfg.hidden, cfg.q_lora_rank, bias=False)
        self.q_a_norm = RMSNorm(cfg.q_lora_rank, cfg.norm_eps)
        self.q_b = nn.Linear(cfg.q_lora_rank, h * cfg.qk_dim, bias=False)
        # One projection gives the kv latent and the shared rotary key.
        self.kv_a = nn.Linear(cfg.hidden, cfg.kv_lora_rank + cfg.qk_rope_dim, bias=False)
        self.kv_a_norm = RMSNorm(cfg.kv_lora_rank, cfg.norm_eps)
        self.kv_b = nn.Linear(cfg.kv_lora_rank, h * (cfg.qk_nope_dim + cfg.v_dim), bias=False)
        self.o = nn.Linear(h * cfg.v_dim, cfg.hidden, bias=False)
        self.scale = cfg.qk_dim ** -0.5

    def forward(self, x, cos, sin, cu_seqlens, max_seqlen):
        cfg, t = self.cfg, x.shape[0]
        h, nope, rope = cfg.n_heads, cfg.qk_nope_dim, cfg.qk_rope_dim
        q = self.q_b(self.q_a_norm(self.q_a(x))).view(t, h, cfg.qk_dim)
        q_nope, q_pe = q.split([nope, rope], dim=-1)
        c_kv, k_pe = self.kv_a(x).split([cfg.kv_lora_rank, rope], dim=-1)
        kv = self.kv_b(self.kv_a_norm(c_kv)).view(t, h, nope + cfg.v_dim)
        k_nope, v = kv.split([nope, cfg.v_dim], dim=-1)
        q_pe = apply_rope(q_pe, cos, sin)
        k_pe = apply_rope(k_pe.view(t, 1, rope), cos, sin).expand(t, h, rope)
        q = torch.cat([q_nope, q_pe], dim=-1)
        k = torch.cat([k_nope, k_pe], dim=-1)
        out = _attention(q, k, v.contiguous(), cu_seqlens, max_seqlen, self.scale)
        return self.o(out.reshape(t, h * cfg.v_dim))


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, mlp_hidden: int):
        super().__init__()
        self.gate = nn.Linear(hidden, mlp_hidden, bias=False)
        self.up = nn.Linear(hidden, mlp_hidden, bias=False)
        self.down = nn.Linear(mlp_hidden, hidden, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.attn = MLA(cfg)
        self.mlp_norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.hidden, cfg.mlp_hidden)

    def forward(self, x, cos, sin, cu_seqlens, max_seqlen):
        x = x + self.attn(self.attn_norm(x), cos, sin, cu_seqlens, max_seqlen)
        return x + self.mlp(self.mlp_norm(x))


class MLATransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # An explicit weight skips nn.Embedding's own init: reset_parameters below does it anyway,
        # and that init is oddly slow (seconds) on the meta device used by count_parameters.
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden, _weight=torch.empty(cfg.vocab_size, cfg.hidden))
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        # GPT-2 style: residual-branch outputs shrink with depth so the stream's variance stays ~constant.
        out_std = std / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if p.device.type == "meta":
                continue
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("attn.o.weight", "mlp.down.weight")):
                nn.init.normal_(p, std=out_std)
            else:
                nn.init.normal_(p, std=std)

    def hidden_states(self, input_ids, position_ids, cu_seqlens, max_seqlen):
        cos, sin = rope_cos_sin(position_ids, self.cfg.qk_rope_dim, self.cfg.rope_theta)
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x, cos, sin, cu_seqlens, max_seqlen)
        return self.norm(x)

    def forward(self, input_ids, position_ids, cu_seqlens, max_seqlen, labels=None, reduction: str = "mean",
                weights=None):
        """Logits (total, vocab) without ``labels``; with them the cross-entropy over labels != -100.

        ``reduction="sum"`` lets the trainer normalise by the loss tokens of the whole optimizer step
        (all micro-batches, all ranks) instead of per micro-batch. ``weights`` (total,) scale each
        label's loss; the mean is then over the weights' sum.
        """
        x = self.hidden_states(input_ids, position_ids, cu_seqlens, int(max_seqlen))
        if labels is None:
            return F.linear(x, self.embed.weight)
        keep = labels != -100
        # Project only loss positions: masked tokens (system/user/tool) are often most of a window
        # and the vocab projection is the largest matmul of a small model.
        logits = F.linear(x[keep], self.embed.weight)
        if weights is None:
            loss = F.cross_entropy(logits.float(), labels[keep], reduction="sum")
            total = keep.sum().clamp(min=1)
        else:
            w = weights[keep].float()
            loss = (F.cross_entropy(logits.float(), labels[keep], reduction="none") * w).sum()
            total = w.sum().clamp(min=1e-12)
        if reduction == "sum":
            return loss
        return loss / total


def count_parameters(cfg: ModelConfig) -> int:
    """Parameters of ``cfg`` (tied embedding counted once), built on the meta device — no allocation."""
    with torch.device("meta"):
        model = MLATransformer(cfg)
    return sum(p.numel() for p in model.parameters())


def training_flops(cfg: ModelConfig, n_params: int, tokens: int, attended_pairs: int) -> float:
    """Training FLOPs of a step: 6·N·tokens (weights, forward + backward) plus causal attention.

    Attention per attended (query, key) pair and head: q·k over ``qk_dim`` and p·v over ``v_dim``,
    2 FLOPs per multiply-add, ×3 for forward + backward. ``attended_pairs`` is Σ len·(len+1)/2 over
    the packed documents — the real work, not the window's. N includes the tied output projection.
    """
    attn = 6 * cfg.n_layers * cfg.n_heads * (cfg.qk_dim + cfg.v_dim) * attended_pairs
    return 6.0 * n_params * tokens + attn
