"""Which columns of a training log hold the KL, the reward, the step and the run: the ones named, else the usual
names of other trainers, and in words which were used and why.

    cols = recognise(df, "log.jsonl")       # {"kl": "objective/kl", "reward": "objective/scores", "step": "step", ...}
    cols["notes"]                            # ["columns: reward 'objective/scores', KL 'objective/kl', step 'step'"]

Names are recognised under the prefixes trainers add ("train/", "eval/", "eval_", "train_"). Where several columns
carry one name (train_reward and eval_reward), the unprefixed one is taken, then a train column, then the one with
the most values, and the choice is said. A column named as a reference or a proxy (``exclude``) is never taken as
the reward. No KL column is no error: ``cols["kl"]`` is None and the curve is judged on its steps (TRL's GRPO logs
no KL with ``beta = 0``, its default), unless a KL column was named and is missing.

TRL's GRPO and RLOO trainers log a per-token "kl": beside a mean completion length ("completions/mean_length", ...,
same prefix) it is multiplied by that length (``cols["kl_length"]``), so every curve's KL is the sequence KL.
"""
from __future__ import annotations

import pandas as pd

from ..errors import LogError

# Names other trainers use, most specific first (TRL PPO/RLOO: objective/kl, objective/scores; TRL GRPO and
# OpenRLHF: kl, reward; overopt's own tables: kl, kl_bound, gold).
KL_NAMES = ("kl", "objective/kl", "train/objective/kl", "train/kl", "kl_bound", "kl_est", "policy/kl", "env/kl")
REWARD_NAMES = ("gold", "reward", "reward_mean", "objective/scores", "train/objective/scores", "train/reward",
                "objective/rlhf_reward", "rewards/mean", "env/reward_mean", "score", "gain")
STEP_NAMES = ("step", "global_step", "train/global_step", "Step", "_step", "n")
LENGTH_NAMES = ("completions/mean_length", "mean_completion_len", "mean_completion_length", "completion_length",
                "completions/mean_length_tokens", "response_length", "mean_length")
PREFIXES = ("train/", "eval/", "eval_", "train_")
# TRL's GRPO and RLOO trainers log "kl" as a mean over completion tokens (beside a length of LENGTH_NAMES); the
# laws need the sequence KL
TRL_TOKEN_KL = "kl"
NO_KL = ("no KL column (a run without a KL penalty, such as TRL GRPO with beta = 0, logs none): judged on the steps; "
         "the scaling laws are functions of the KL, so no peak-KL forecast is given (--kl-col names one)")


def show(name) -> str:
    """A column name as one line of text, whatever it holds."""
    return str(name).encode("unicode_escape").decode("ascii")


def base(name: str) -> str:
    """A column name without the prefix a trainer adds (train/, eval/, eval_, train_)."""
    return next((name[len(p):] for p in PREFIXES if name.startswith(p)), name)


def _rank(df: pd.DataFrame, col: str) -> tuple:
    """Preference among columns of one name: unprefixed, then train, then eval; then the most values."""
    prefix = col[: len(col) - len(base(col))]
    return (0 if not prefix else 1 if prefix.startswith("train") else 2, -int(df[col].notna().sum()))


def _find(df: pd.DataFrame, given: str | None, names: tuple, what: str, flag: str, path: str,
          required: bool = True, exclude: tuple = ()) -> tuple[str | None, str]:
    """(the column, a note on the choice where there was one) for ``what``."""
    cols = [c for c in map(str, df.columns) if c not in exclude]
    if given:
        under = [c for c in cols if base(c) == given]  # named without the prefix a TensorBoard export adds
        if given not in map(str, df.columns) and len(under) == 1:
            return under[0], ""
        if given not in map(str, df.columns):
            raise LogError(f"{path} has no column '{show(given)}' ({flag}); columns: "
                           f"{', '.join(map(show, df.columns))}")
        return given, ""
    for n in names:
        if n in cols:
            return n, ""
    for n in names:  # under a trainer's prefix: train/kl, eval_reward
        hits = sorted((c for c in cols if base(c) == n), key=lambda c: _rank(df, c))
        if hits:
            left = [f"'{show(c)}' ({int(df[c].notna().sum())} values)" for c in hits[1:]]
            why = f" (over {', '.join(left)}: an unprefixed or train column is preferred, then the fullest; " \
                  f"{flag} names another)" if left else ""
            return hits[0], why
    if what == "reward":  # TRL GRPO logs one column per reward function: rewards/<name>/mean
        per_func = [c for c in cols if c.startswith("rewards/") and c.endswith("/mean")]
        if len(per_func) == 1:
            return per_func[0], ""
    if required:
        raise LogError(f"{path}: no {what} column found; name it with {flag} "
                       f"(columns: {', '.join(map(show, df.columns))})")
    return None, ""


def recognise(df: pd.DataFrame, path: str = "log", kl: str | None = None, reward: str | None = None,
              step: str | None = None, group: str | None = None, kl_per_token: bool = False,
              length: str | None = None, exclude: dict | None = None, role: str = "reward") -> dict:
    """Which columns hold KL, reward, step and group (``kl`` None where the log has none), and ``notes``: which were
    used, in words (the reward named as ``role``: "proxy" in a monitor). ``exclude`` maps a role to its column
    ({"reference": "eval_reward"}): never the reward.

    ``kl_length`` names a mean-length column the KL is multiplied by: when ``kl_per_token`` (or a length column is
    named), or when the KL is a bare "kl" (TRL's GRPO/RLOO, under any prefix) beside a mean completion length, so
    the curve's KL is per sequence, as everywhere here."""
    others = {role: c for role, c in (exclude or {}).items() if c}
    if reward and reward in others.values():
        role = next(r for r, c in others.items() if c == reward)
        raise LogError(f"{path}: the reward column '{show(reward)}' (--reward-col) is also the {role} column: the "
                       "monitor would judge a column against itself; name another")
    cols, why = {}, {}
    for key, given, names, what, flag, required in (
            ("kl", kl, KL_NAMES, "KL", "--kl-col", bool(kl)),
            ("reward", reward, REWARD_NAMES, "reward", "--reward-col", True),
            ("step", step, STEP_NAMES, "step", "--step-col", False),
            ("group", group, ("run",), "group", "--group-col", group is not None)):
        cols[key], why[key] = _find(df, given, names, what, flag, path, required,
                                    tuple(others.values()) if key == "reward" else ())
    if cols["kl"] is None or not (length or kl_per_token or base(cols["kl"]) == TRL_TOKEN_KL):
        cols["kl_length"] = None
    elif length:
        cols["kl_length"] = _find(df, length, (), "length", "--length-col", path)[0]
    else:
        prefix = cols["kl"][: len(cols["kl"]) - len(base(cols["kl"]))]
        found = [c for c in map(str, df.columns) if base(c) in LENGTH_NAMES]
        same = [c for c in found if c.startswith(prefix) and base(c) == c[len(prefix):]] if prefix else \
            [c for c in found if c in LENGTH_NAMES]
        cols["kl_length"] = (same or found or [None])[0]
    if kl_per_token and cols["kl"] is not None and cols["kl_length"] is None:
        raise LogError(f"{path}: --kl-per-token needs a mean completion length column; name it with --length-col")
    cols["kl_per_token"] = bool(cols["kl_length"])
    used = [f"{role} '{show(cols['reward'])}'{why['reward']}"] + \
        [f"{role} '{show(c)}'" for role, c in others.items()] + \
        ([f"KL '{show(cols['kl'])}'{why['kl']}"] if cols["kl"] else []) + \
        [f"step '{show(cols['step'])}'" if cols["step"] else "step: the order of the lines"]
    cols["notes"] = ["columns: " + ", ".join(used), kl_note(cols)]
    return cols


def kl_note(cols: dict) -> str:
    """Which KL a curve uses, in words."""
    if cols.get("kl") is None:
        return NO_KL
    if cols.get("kl_length"):
        return (f"KL: '{show(cols['kl'])}' x '{show(cols['kl_length'])}' (a per-token KL times the mean "
                "completion length: the sequence KL)")
    bare = base(cols["kl"]) == TRL_TOKEN_KL
    return f"KL: '{show(cols['kl'])}' read as per sequence" + \
        (" (if it is per token, as TRL GRPO's, pass --kl-per-token --length-col COLUMN)" if bare else "")
