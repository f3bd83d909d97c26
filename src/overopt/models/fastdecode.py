"""A lean KV-cached decoder for GPT-NeoX (the Pythia architecture) when prompts carry no padding.

    dec = NeoXDecoder.maybe(model, batch=B, max_len=P + T)   # None: use the model's own forward
    logits = dec.prefill(prompt_ids)                          # [B, V], the last prompt position
    logits = dec.step(tokens)                                 # [B, V], one new token per row
    dec.select(keep)                                          # drop finished rows from the cache
    logits = dec.logits(seq)                                  # [B, L, V], a full forward (autograd works)
    logits = dec.logits(seq, start, n)                        # only the first n[b] tokens of row b are real
    h = NeoXDecoder.maybe(rm.backbone, B, L).last_hidden(seq, last)   # [B, C] at one position per row

It takes a causal LM or a bare GPT-NeoX trunk (a reward model's backbone, which has no LM head). On
right-padded rows (`logits` with n, `last_hidden`) the layers run on the real tokens only, packed
together, and only attention sees the rows padded; `prefix` computes keys and values of prompts many
rows share, once.

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
        base = getattr(model, "gpt_neox", model)  # a causal LM's trunk, or the trunk itself
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
        head = model.get_output_embeddings() if base is not model else None
        self.head = head.weight if head is not None else None
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

    def _project(self, x: torch.Tensor, layer, cos: torch.Tensor, sin: torch.Tensor):
        """A layer's q, k, v of its input ``x`` [B, T, C]: layer norm, fused projection, rotary embedding."""
        w1, b1, wqkv, bqkv = layer[:4]
        return self._qkv(F.linear(F.layer_norm(x, (self.C,), w1, b1, self.eps), wqkv, bqkv), cos, sin)

    def _residual(self, x: torch.Tensor, a: torch.Tensor, layer) -> torch.Tensor:
        """A layer's output from its input ``x`` and its attention heads ``a`` joined per token ([..., C], the
        layout of ``x``): the dense projection, then the MLP in parallel with attention (Pythia) or after it."""
        wd, bd, w2, b2, wu, bu, wo, bo = layer[4:]
        a = F.linear(a, wd, bd)

        def mlp(h):
            return F.linear(self.act(F.linear(F.layer_norm(h, (self.C,), w2, b2, self.eps), wu, bu)), wo, bo)
        if self.parallel:
            return x + a + mlp(x)
        h = x + a
        return h + mlp(h)

    def _heads(self, a: torch.Tensor) -> torch.Tensor:
        """Attention output [B, H, T, D] as [B, T, C]."""
        return a.transpose(1, 2).reshape(a.shape[0], a.shape[2], self.C)

    def _rotary(self, start: int, T: int):
        return self.cos[start:start + T, None, None], self.sin[start:start + T, None, None]  # against [B, T, H, 2, rot]

    def _forward(self, ids: torch.Tensor, cache: bool, start: int = -1) -> torch.Tensor:
        """The model on ``ids`` at positions pos.. ; with ``cache`` keys and values go to (and attention
        reads from) the cache, without it the block attends within ``ids`` alone (and autograd can run).
        Logits at positions ``start``.. of the block (default: the last only)."""
        B, T = ids.shape
        s, e = self.pos, self.pos + T
        cos, sin = self._rotary(s, T)
        x = F.embedding(ids, self.embed)
        for i, layer in enumerate(self.layers):
            q, k, v = self._project(x, layer, cos, sin)
            if cache:
                self.k[i][:B, :, s:e] = k
                self.v[i][:B, :, s:e] = v
                k, v = self.k[i][:B, :, :e], self.v[i][:B, :, :e]
            x = self._residual(x, self._heads(F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)), layer)
        self.pos = e
        x = F.layer_norm(x[:, -1] if start == -1 else x[:, start:], (self.C,), *self.final, self.eps)
        return F.linear(x, self.head)

    def prefix(self, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of every layer on unpadded prefixes ``ids`` [U, P] (prompts that many rows share),
        each [U, H, P, D]: `last_hidden` then runs only the tokens after them."""
        P = ids.shape[1]
        cos, sin = self._rotary(0, P)
        x = F.embedding(ids, self.embed)
        kv = []
        for i, layer in enumerate(self.layers):
            q, k, v = self._project(x, layer, cos, sin)
            kv.append((k, v))
            if i < len(self.layers) - 1:
                x = self._residual(x, self._heads(F.scaled_dot_product_attention(q, k, v, is_causal=P > 1)), layer)
        return kv

    def _trunk(self, ids: torch.Tensor, n: torch.Tensor, prefix=None, rows=None, last_only: bool = False):
        """The layers on the first ``n[b]`` tokens of each row of ``ids`` [B, T] (the rest is padding) and on
        those alone: every projection and MLP runs on the real tokens packed together ([N, C], no padding), and
        only attention sees the rows padded. Returns (the packed hidden states, the packed tokens' indices in
        the flattened [B, T]); with ``last_only`` the last layer runs at each row's last real token only and
        the states are [B, C]. With ``prefix`` (from `prefix`) row b continues prefix ``rows[b]``. Autograd
        works through it."""
        B, T = ids.shape
        P = 0 if prefix is None else prefix[0][0].shape[2]
        cos, sin = self._rotary(P, T)
        pos = torch.arange(P + T, device=ids.device)
        flat = (pos[None, :T] < n[:, None]).flatten().nonzero().squeeze(1)
        x = F.embedding(ids.flatten()[flat], self.embed)
        causal = None if prefix is None else pos[None, :] <= P + pos[:T, None]  # [T, P + T]: prefix and causal
        for i, layer in enumerate(self.layers):
            w1, b1, wqkv, bqkv = layer[:4]
            qkv = F.linear(F.layer_norm(x, (self.C,), w1, b1, self.eps), wqkv, bqkv)
            padded = qkv.new_zeros(B * T, qkv.shape[1]).index_copy(0, flat, qkv).view(B, T, -1)
            q, k, v = self._qkv(padded, cos, sin)
            if prefix is not None:
                k = torch.cat([prefix[i][0][rows], k], 2)
                v = torch.cat([prefix[i][1][rows], v], 2)
            if last_only and i == len(self.layers) - 1:
                b = torch.arange(B, device=ids.device)
                seen = (pos[None, :] <= P + n[:, None] - 1)[:, None, None]  # [B, 1, 1, P + T]
                a = F.scaled_dot_product_attention(q[b, :, n - 1][:, :, None], k, v, attn_mask=seen)
                return self._residual(x[n.cumsum(0) - 1], a.reshape(B, self.C), layer), flat
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, is_causal=causal is None and T > 1)
            x = self._residual(x, self._heads(a).reshape(B * T, self.C)[flat], layer)
        return x, flat

    def last_hidden(self, ids: torch.Tensor, last: torch.Tensor, prefix=None, rows=None) -> torch.Tensor:
        """The trunk's final hidden state (after the final layer norm) at position ``last[b]`` of each row
        of ``ids`` [B, T] (positions after it are padding: a causal model's earlier states never see them),
        [B, C]. With ``prefix`` (from `prefix`) the rows continue prefix ``rows[b]``: ``ids`` are the tokens
        after it and ``last`` counts from its end. The last layer runs attention and the MLP at the one
        position read, which a reward model's head needs, not at all T (autograd works)."""
        x, _ = self._trunk(ids, last + 1, prefix, rows, last_only=True)
        return F.layer_norm(x, (self.C,), *self.final, self.eps)

    def logits(self, seq: torch.Tensor, start: int = 0, n: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at positions ``start``.. of sequences, [B, L - start, V]; no cache, so it also runs under
        autograd (a training forward with fewer ops than the model's own). With ``n`` only the first ``n[b]``
        tokens of row b are real (right padding after them): the layers run on real tokens only and the
        logits at padding positions are 0."""
        B, L = seq.shape
        if n is None:
            self.pos = 0
            return self._forward(seq, cache=False, start=start)
        x, flat = self._trunk(seq, n)
        pos = torch.arange(L, device=seq.device)
        real = pos[None, :] < n[:, None]
        x = x[(pos >= start).expand(B, L)[real]]  # the packed tokens at positions start..
        out = F.linear(F.layer_norm(x, (self.C,), *self.final, self.eps), self.head)
        kept = real[:, start:].flatten().nonzero().squeeze(1)
        return out.new_zeros(B * (L - start), out.shape[1]).index_copy(0, kept, out).view(B, L - start, -1)

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
