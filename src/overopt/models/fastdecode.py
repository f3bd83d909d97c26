"""A lean KV-cached decoder for GPT-NeoX (the Pythia architecture) when prompts carry no padding.

    dec = NeoXDecoder.maybe(model, batch=B, max_len=P + T)   # None: use the model's own forward
    logits = dec.prefill(prompt_ids)                          # [B, V], the last prompt position
    logits = dec.step(tokens)                                 # [B, V], one new token per row
    dec.select(keep)                                          # drop finished rows from the cache
    logits = dec.logits(seq)                                  # [B, L, V], a full forward (autograd works)

It runs the model's own weights with the same operations as `transformers`' GPTNeoX (layer norms,
fused QKV, partial rotary embedding, scaled dot-product attention, parallel or sequential residual),
but writes keys and values into a preallocated cache and skips the per-call mask building and module
dispatch that dominate a small model's decoding step. Every row shares one position (no left
padding), so no attention mask is needed. Tests hold its logits to the model's forward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class NeoXDecoder:
    @classmethod
    def maybe(cls, model, batch: int, max_len: int) -> "NeoXDecoder | None":
        """A decoder for ``model`` if it is a GPT-NeoX this class reproduces exactly, else None
        (in training mode only when its dropout probabilities are 0, so training changes nothing)."""
        cfg = getattr(model, "config", None)
        if getattr(cfg, "model_type", None) != "gpt_neox":
            return None
        if model.training and (cfg.attention_dropout or cfg.hidden_dropout):
            return None
        rope = getattr(cfg, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") != "default" or cfg.hidden_act not in ("gelu", "gelu_new", "relu"):
            return None
        if getattr(cfg, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
            return None
        return cls(model, batch, max_len)

    def __init__(self, model, batch: int, max_len: int):
        cfg = model.config
        base = model.gpt_neox
        p = next(model.parameters())
        self.C, self.H = cfg.hidden_size, cfg.num_attention_heads
        self.D = self.C // self.H
        self.eps = cfg.layer_norm_eps
        self.parallel = cfg.use_parallel_residual
        self.act = {"gelu": F.gelu, "relu": F.relu, "gelu_new": lambda x: F.gelu(x, approximate="tanh")}[cfg.hidden_act]
        self.embed = base.embed_in.weight
        self.layers = [(l.input_layernorm.weight, l.input_layernorm.bias, l.attention.query_key_value.weight,
                        l.attention.query_key_value.bias, l.attention.dense.weight, l.attention.dense.bias,
                        l.post_attention_layernorm.weight, l.post_attention_layernorm.bias,
                        l.mlp.dense_h_to_4h.weight, l.mlp.dense_h_to_4h.bias, l.mlp.dense_4h_to_h.weight,
                        l.mlp.dense_4h_to_h.bias) for l in base.layers]
        self.final = (base.final_layer_norm.weight, base.final_layer_norm.bias)
        self.head = model.get_output_embeddings().weight
        with torch.no_grad():
            positions = torch.arange(max_len, device=p.device)[None]
            cos, sin = base.rotary_emb(self.embed[:1][None], positions)  # [1, max_len, rotary dims]
        self.cos, sin = cos[0].to(p.dtype), sin[0].to(p.dtype)
        self.rot = self.cos.shape[-1]
        self.sin = torch.cat((-sin[:, : self.rot // 2], sin[:, self.rot // 2:]), -1)  # signs of rotate_half
        self.shape = (batch, self.H, max_len, self.D)
        self.k, self.v = [], []  # the cache, allocated by the first prefill
        self.pos = 0

    def _qkv(self, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """q, k, v as [B, H, T, D] from the fused projection [B, T, H * 3D], with the rotary embedding
        applied in place to the first `rot` dims of q and k together: x cos + rotate_half(x) sin, where
        rotate_half(x) = (-x2, x1) is roll(x) times a sine whose first half is negated."""
        B, T = qkv.shape[:2]
        x = qkv.view(B, T, self.H, 3, self.D)
        r = self.rot
        qk = x[:, :, :, :2, :r]
        qk.copy_(torch.addcmul(qk * cos, qk.roll(r // 2, -1), sin))
        q, k, v = x.transpose(1, 2).unbind(3)
        return q, k, v

    def _forward(self, ids: torch.Tensor, cache: bool, last_only: bool = True) -> torch.Tensor:
        """The model on ``ids`` at positions pos.. ; with ``cache`` keys and values go to (and attention
        reads from) the cache, without it the block attends within ``ids`` alone (and autograd can run)."""
        B, T = ids.shape
        s, e = self.pos, self.pos + T
        cos, sin = self.cos[s:e, None, None], self.sin[s:e, None, None]  # [T, 1, 1, rot] against [B, T, H, 2, rot]
        x = F.embedding(ids, self.embed)
        C = (self.C,)
        for i, (w1, b1, wqkv, bqkv, wd, bd, w2, b2, wu, bu, wo, bo) in enumerate(self.layers):
            q, k, v = self._qkv(F.linear(F.layer_norm(x, C, w1, b1, self.eps), wqkv, bqkv), cos, sin)
            if cache:
                self.k[i][:B, :, s:e] = k
                self.v[i][:B, :, s:e] = v
                k, v = self.k[i][:B, :, :e], self.v[i][:B, :, :e]
            a = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
            a = F.linear(a.transpose(1, 2).reshape(B, T, self.C), wd, bd)
            if self.parallel:
                x = x + a + F.linear(self.act(F.linear(F.layer_norm(x, C, w2, b2, self.eps), wu, bu)), wo, bo)
            else:
                h = x + a
                x = h + F.linear(self.act(F.linear(F.layer_norm(h, C, w2, b2, self.eps), wu, bu)), wo, bo)
        self.pos = e
        x = F.layer_norm(x[:, -1] if last_only else x, C, *self.final, self.eps)
        return F.linear(x, self.head)

    def logits(self, seq: torch.Tensor) -> torch.Tensor:
        """Logits at every position of unpadded (or only right-padded) sequences, [B, L, V]; no cache,
        so it also runs under autograd (a training forward with fewer ops than the model's own)."""
        self.pos = 0
        return self._forward(seq, cache=False, last_only=False)

    @torch.no_grad()
    def prefill(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Logits after the prompts (positions 0..P-1, no padding), [B, V]."""
        if not self.k:
            p = self.embed
            self.k = [torch.empty(self.shape, dtype=p.dtype, device=p.device) for _ in self.layers]
            self.v = [torch.empty(self.shape, dtype=p.dtype, device=p.device) for _ in self.layers]
        self.pos = 0
        return self._forward(prompt_ids, cache=True)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits after one more token per row, [B, V]."""
        return self._forward(tokens[:, None], cache=True)

    def select(self, keep: torch.Tensor) -> None:
        """Keep only rows ``keep`` (in that order) of the cache."""
        n = len(keep)
        for i in range(len(self.layers)):
            self.k[i][:n] = self.k[i][keep]
            self.v[i][:n] = self.v[i][keep]
