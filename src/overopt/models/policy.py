"""Policies: build a small GPT-NeoX, train pi0, KV-cached sampling and log-probs for any HF causal LM.

`sample` and `response_logprobs` are the mechanism every optimizer reuses: best-of-n pools,
preference pairs, and (later) RL rollouts and DAA evaluation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import TrainingError
from .fastdecode import NeoXDecoder


def gpt_neox_config(vocab_size: int, hidden: int, layers: int, heads: int, max_len: int,
                    bos: int = 1, eos: int = 2, pad: int = 0):
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=4 * hidden,
                         max_position_embeddings=max_len, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=pad, tie_word_embeddings=False, use_parallel_residual=True,
                         hidden_dropout=0.0, attention_dropout=0.0, classifier_dropout=0.0)


def build_lm(vocab_size: int, hidden: int, layers: int, heads: int, max_len: int, seed: int):
    """A randomly initialised GPT-NeoX (the Pythia architecture) causal LM."""
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(gpt_neox_config(vocab_size, hidden, layers, heads, max_len))
    return model.eval()


def prompt_mask(prompt_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """1 on a prompt's real tokens, 0 on its left padding (the run of ``pad_id`` it starts with). Only the leading
    run is padding, so a prompt may contain the padding token itself (a chat template's end token, say)."""
    return ((prompt_ids != pad_id).long().cumsum(1) > 0).long()


def as_ids(a, device) -> torch.Tensor:
    """Token ids (any integer array) as a long tensor on ``device``."""
    return torch.tensor(np.asarray(a, dtype=np.int64), device=device)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 10%: the multiplier of the base learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def train_lm(model, prompts: torch.Tensor, responses: torch.Tensor, steps: int, batch_size: int,
             lr: float, seed: int, pad_id: int = 0, progress=None) -> list[float]:
    """Supervised next-token training on prompt+response, loss on response tokens only."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, steps, max(1, steps // 20)))
    model.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(len(responses), (batch_size,), generator=g)
        resp = responses[idx]
        T = int((resp != pad_id).sum(1).max())
        logits = response_logits(model, prompts[idx], resp[:, :T], pad_id)
        target = resp[:, :T].masked_fill(resp[:, :T] == pad_id, -100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        if not torch.isfinite(loss):
            raise TrainingError(f"step {step}: loss is not finite")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress is not None:
            progress.update(1)
            if step % 50 == 0:
                progress.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    check_weights(model, steps)
    return losses


def check_weights(model, step: int) -> None:
    """Raise `TrainingError` naming the first parameter that holds a NaN or infinity."""
    bad = next((n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())), None)
    if bad is not None:
        raise TrainingError(f"step {step}: weight {bad} is not finite")


def _cache(out):
    """The key/value cache of a forward's output: ``cache`` in recent transformers (reading ``past_key_values``
    there logs a deprecation), ``past_key_values`` before."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@dataclass
class Samples:
    tokens: torch.Tensor   # [B, T] sampled ids, [EOS] then pad after the end
    logprob: torch.Tensor  # [B] log pi(y | x) under the sampling distribution, summed over tokens
    lengths: torch.Tensor  # [B] tokens generated, [EOS] included
    token_logprob: torch.Tensor | None = None  # [B, T] the per-token terms of logprob, 0 on padding


def _filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose probability reaches top_p."""
    sorted_logits, order = logits.sort(-1, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop = cum - sorted_logits.softmax(-1) >= top_p  # tokens entirely beyond the nucleus
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row by inverse-CDF sampling (several times faster than torch.multinomial on CPU).

    The token is the first whose cumulative probability exceeds u (right side), so a token of
    probability 0 is never drawn: u = 0 (which torch.rand returns about once in 2^24 draws) would
    otherwise pick a leading zero-probability token such as padding, whose log-prob is -inf. u is
    kept below the total so that rounding cannot step past the last token of positive probability."""
    cdf = probs.cumsum(-1)
    total = cdf[:, -1:]
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(1)


def sample(model, prompt_ids: torch.Tensor, max_new_tokens: int, eos_id: int, pad_id: int,
           attention_mask: torch.Tensor | None = None, temperature: float = 1.0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> Samples:
    """Batched, KV-cached ancestral sampling from any HF causal LM.

    Prompts are left-padded (``attention_mask`` marks real tokens). Rows stop at ``eos_id``;
    ``pad_id`` is never sampled (it marks the end of a response) unless it is also ``eos_id``;
    the loop ends when every row has stopped. Finished rows are dropped from the batch and
    its KV cache as they accumulate, so late steps only pay for the rows still running.
    ``logprob`` is the log-probability under the distribution actually sampled from
    (temperature and top-p applied), so at temperature 1 without truncation it is
    log pi(y | x), as the KL estimators need.

    The loop runs in inference mode (no autograd bookkeeping on its many small ops, about a
    tenth of a small model's decoding time); the results are copied out as ordinary tensors,
    so they can index a training forward afterwards.
    """
    with torch.inference_mode():
        s = _sample(model, prompt_ids, max_new_tokens, eos_id, pad_id, attention_mask, temperature, top_p, generator)
    return Samples(s.tokens.clone(), s.logprob.clone(), s.lengths.clone(), s.token_logprob.clone())


def _sample(model, prompt_ids, max_new_tokens, eos_id, pad_id, attention_mask, temperature, top_p,
            generator) -> Samples:
    B = prompt_ids.shape[0]
    dev = prompt_ids.device
    if attention_mask is None:
        attention_mask = prompt_mask(prompt_ids, pad_id)
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    # Without left padding every key is visible to every later query: no mask is needed, and a
    # GPT-NeoX decodes through the lean `NeoXDecoder` (the model's own weights, a preallocated cache).
    unpadded = bool(attention_mask.all())
    dec = NeoXDecoder.maybe(model, B, prompt_ids.shape[1] + max_new_tokens) if unpadded else None
    if dec is not None:
        logits = dec.prefill(prompt_ids)
    else:
        out = model(input_ids=prompt_ids, attention_mask=None if unpadded else attention_mask,
                    position_ids=position_ids, use_cache=True, logits_to_keep=1)
        past, logits = _cache(out), out.logits[:, -1, :]
    next_pos = position_ids[:, -1] + 1
    tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=dev)
    token_logprob = torch.zeros((B, max_new_tokens), device=dev)
    rows = torch.arange(B, device=dev)           # original index of each row in the batch
    alive = torch.ones(B, dtype=torch.bool, device=dev)
    mask = attention_mask
    for t in range(max_new_tokens):
        logits = logits.float()
        if pad_id != eos_id:
            logits[:, pad_id] = float("-inf")
        if temperature != 1.0:
            logits = logits / temperature
        if top_p < 1.0:
            logits = _filter_top_p(logits, top_p)
        logp = logits.log_softmax(-1)
        tok = _draw(logp.exp(), generator)
        # Rows that ended before and wait to be compacted away write padding (and log-prob 0).
        tokens[rows, t] = tok.masked_fill(~alive, pad_id)
        token_logprob[rows, t] = logp.gather(1, tok[:, None]).squeeze(1) * alive
        alive &= tok != eos_id
        n_alive = int(alive.sum())
        if n_alive == 0 or t == max_new_tokens - 1:
            break
        if n_alive <= 0.75 * len(rows):  # compact: drop finished rows from the batch and the cache
            keep = alive.nonzero().squeeze(1)
            if dec is not None:
                dec.select(keep)
            else:
                past.batch_select_indices(keep)
            rows, mask, next_pos, tok, alive = rows[keep], mask[keep], next_pos[keep], tok[keep], alive[keep]
        if dec is not None:
            logits = dec.step(tok)
            continue
        if not unpadded:
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=dev)], 1)
        out = model(input_ids=tok[:, None], attention_mask=None if unpadded else mask,
                    position_ids=next_pos[:, None], past_key_values=past, use_cache=True)
        past, logits = _cache(out), out.logits[:, -1, :]
        next_pos = next_pos + 1
    is_eos = tokens == eos_id  # the first end token ends a row (also when padding is the end token)
    lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, max_new_tokens)
    T = int(lengths.max())
    return Samples(tokens[:, :T], token_logprob.sum(1), lengths, token_logprob[:, :T])


_prompt_mask = prompt_mask  # for functions whose argument has that name


def right_padded_lengths(responses: torch.Tensor, pad_id: int) -> torch.Tensor | None:
    """Tokens before the padding of each row, or None if some row has padding before a real token."""
    real = responses != pad_id
    n = real.sum(1)
    return n if bool((real == (torch.arange(real.shape[1], device=n.device) < n[:, None])).all()) else None


def response_logits(model, prompt_ids: torch.Tensor, responses: torch.Tensor, pad_id: int,
                    prompt_mask: torch.Tensor | None = None, eos_id: int | None = None) -> torch.Tensor:
    """Float logits predicting each response token, [B, T, V].

    Responses are right-padded with ``pad_id`` after their end token; prompts left-padded.
    With ``eos_id`` (distinct from ``pad_id``) the padding token is excluded from the
    distribution, exactly as `sample` excludes it, so the two agree.
    """
    seq = torch.cat([prompt_ids, responses], 1)
    P = prompt_ids.shape[1]
    if prompt_mask is None:
        prompt_mask = _prompt_mask(prompt_ids, pad_id)
    if bool(prompt_mask.all()):
        # Only right padding: a causal model's logits at real positions cannot see it, so no mask is
        # needed (and none is built, a large share of a small model's forward time); a GPT-NeoX runs
        # through the lean forward of `NeoXDecoder`, with or without autograd, and its layers run on
        # each row's prompt and response up to the response's end only (the last input predicts nothing).
        dec = NeoXDecoder.maybe(model, seq.shape[0], seq.shape[1])
        n = right_padded_lengths(responses, pad_id)
        n = None if n is None else (P + n).clamp(max=seq.shape[1] - 1)
        logits = (dec.logits(seq[:, :-1], P - 1, n) if dec is not None
                  else model(input_ids=seq).logits[:, P - 1:-1]).float()
    else:
        mask = torch.cat([prompt_mask, (responses != pad_id).long()], 1)
        position_ids = (mask.cumsum(1) - 1).clamp(min=0)
        logits = model(input_ids=seq, attention_mask=mask, position_ids=position_ids).logits[:, P - 1:-1].float()
    if eos_id is not None and pad_id != eos_id:
        logits[..., pad_id] = float("-inf")
    return logits


def response_logprobs(model, prompt_ids: torch.Tensor, responses: torch.Tensor, pad_id: int,
                      prompt_mask: torch.Tensor | None = None, eos_id: int | None = None) -> torch.Tensor:
    """Per-token log pi(y_t | x, y_<t) of given responses, [B, T]; 0 where the response is padding."""
    logits = response_logits(model, prompt_ids, responses, pad_id, prompt_mask, eos_id)
    logp = logits.log_softmax(-1).gather(-1, responses[..., None]).squeeze(-1)
    return logp.masked_fill(responses == pad_id, 0.0)


def sample_in_batches(model, prompt_ids: torch.Tensor, batch: int, max_new_tokens: int, eos_id: int,
                      pad_id: int, seed: int, progress=None, **kw) -> Samples:
    """`sample` over many prompts in fixed-size batches; returns one right-padded Samples. A batch that runs out
    of GPU memory is halved and sampled again from the same random state."""
    g = torch.Generator(device=prompt_ids.device).manual_seed(seed)
    parts, i = [], 0
    while i < len(prompt_ids):
        state = g.get_state()
        try:
            parts.append(sample(model, prompt_ids[i:i + batch], max_new_tokens, eos_id, pad_id, generator=g, **kw))
        except torch.OutOfMemoryError:  # too large for the GPU: halve the batch and sample these prompts again
            if batch == 1:
                raise
            torch.cuda.empty_cache()
            g.set_state(state)
            batch //= 2
            continue
        if progress is not None:
            progress.update(len(prompt_ids[i:i + batch]))
        i += batch
    T = max(p.tokens.shape[1] for p in parts)
    tokens = torch.cat([F.pad(p.tokens, (0, T - p.tokens.shape[1]), value=pad_id) for p in parts])
    token_lp = torch.cat([F.pad(p.token_logprob, (0, T - p.tokens.shape[1])) for p in parts])
    return Samples(tokens, torch.cat([p.logprob for p in parts]), torch.cat([p.lengths for p in parts]), token_lp)
