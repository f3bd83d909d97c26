"""What each side of a bench does per step, stated and compared, so that a change of defaults cannot change what a
ratio means.

Every script in bench/ defines ``parser()`` (its options) and ``work(args) -> {quantity: (overopt, baseline)}``,
built from the very settings objects its two sides run with. The script prints that table before it times
anything and refuses to time work that differs (`check`); `tests/test_bench.py` builds each script's table at its
default options and fails where the two sides disagree.
"""
from __future__ import annotations

from overopt.world.toy import EOS, PAD

# model.generate's sampling, named in full: temperature 1, no top-k or top-p truncation, stop at the end token
GENERATE = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, eos_token_id=EOS, pad_token_id=PAD)


def sampler_work(batch: int, new_tokens: int) -> dict[str, tuple]:
    """overopt's sampler (always temperature 1 from the full distribution, rows ending at the end token) against
    `model.generate` with `GENERATE` on the same batch."""
    return {"sequences": (batch, batch), "max new tokens": (new_tokens, new_tokens), "sampled": (True, GENERATE["do_sample"]),
            "temperature/top-k/top-p": ((1.0, 0, 1.0), tuple(GENERATE[k] for k in ("temperature", "top_k", "top_p"))),
            "end token stops a row": (EOS, GENERATE["eos_token_id"])}


def disagreements(pairs: dict[str, tuple]) -> list[str]:
    """The quantities on which the two sides differ."""
    return [name for name, (ours, peer) in pairs.items() if ours != peer]


def check(pairs: dict[str, tuple], peer: str) -> None:
    """Print the work each side does per step; exit with a one-line message if the sides differ."""
    w = max(len(k) for k in pairs)
    print(f"{'work per step':<{w}}  {'overopt':>12}  {peer:>12}")
    for name, (ours, theirs) in pairs.items():
        print(f"{name:<{w}}  {ours!s:>12}  {theirs!s:>12}")
    bad = disagreements(pairs)
    if bad:
        raise SystemExit(f"the two sides do different work: {', '.join(bad)}")
