"""Training logs of other trainers as one tidy curve: (group, step, kl, reward).

    df = read_log("out/checkpoint-100/trainer_state.json")   # or a run folder, CSV, JSONL, TensorBoard, W&B
    cols = recognise(df)             # {"kl": "objective/kl", "reward": "objective/scores", "step": "step", ...}
    curve = tidy(df, cols)           # columns group, step, kl, reward; curve.attrs["notes"]: how it was read

Formats: CSV; JSONL (one object per line); JSON, either a list of objects or the `trainer_state.json` that
`transformers.Trainer` (and so TRL) writes, whose `log_history` is read; a run folder (its own trainer_state.json,
else every checkpoint-*/trainer_state.json merged by step, else the TensorBoard events under it); TensorBoard
event files or folders of them (read with the optional `tensorboard` package; a column named without the train/
or eval/ prefix they add is found under it); a Weights & Biases CSV export, whose columns "<run> - <metric>" become one
group per run (the "__MIN"/"__MAX" columns are dropped). A curve is named after its run folder, else its file.

Names are recognised under the prefixes trainers add ("train/", "eval/", "eval_", "train_"). TRL's GRPO and RLOO
trainers log a per-token "kl": beside a mean completion length ("completions/mean_length", "mean_completion_len",
..., same prefix) it is multiplied by that length, so every curve's KL is the sequence KL in nats; --kl-per-token
and --length-col say so outright. Every read says which KL it used and how.

Documented handling: rows without a KL or a reward (a log line of another kind, as `log_history` mixes training
and evaluation lines) are dropped; unsorted steps are sorted; repeated steps are averaged; a negative KL (a sampled
estimate such as the k1 that TRL's RLOO logs dips below zero) is read as 0, and the count is kept in
``curve.attrs["negative_kl"]``. Everything else that
is wrong raises `LogError` with one line naming the file and the column or line.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
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
WANDB_COL = re.compile(r"^(?P<run>.+?) - (?P<metric>.+)$")
TB_MARK = "tfevents"


def _show(name) -> str:
    """A column name as one line of text, whatever it holds."""
    return str(name).encode("unicode_escape").decode("ascii")


def _json_rows(path: str, text: str) -> list[dict]:
    stripped = text.lstrip()
    if stripped.startswith("[") or (stripped.startswith("{") and "\n{" not in text.strip()):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            if stripped.startswith("["):
                raise LogError(f"{path} is not valid JSON: {e.msg} (line {e.lineno})")
            obj = None
        if isinstance(obj, dict):
            if "log_history" in obj:
                if not isinstance(obj["log_history"], list):
                    raise LogError(f"{path}: 'log_history' is not a list")
                obj = obj["log_history"]
            else:
                obj = [obj]
        if isinstance(obj, list):
            bad = next((i for i, r in enumerate(obj) if not isinstance(r, dict)), None)
            if bad is not None:
                raise LogError(f"{path}: entry {bad + 1} is not a JSON object")
            return obj
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LogError(f"{path} line {i} is not valid JSON: {e.msg}")
        if not isinstance(obj, dict):
            raise LogError(f"{path} line {i} is not a JSON object")
        rows.append(obj)
    return rows


def _wandb_long(df: pd.DataFrame) -> pd.DataFrame:
    """A W&B export ("<run> - <metric>" columns) as one row per (run, step)."""
    step = next((c for c in df.columns if c in STEP_NAMES), None)
    parts = {}
    for c in df.columns:
        m = WANDB_COL.match(str(c))
        if m and not c.endswith(("__MIN", "__MAX")):
            parts.setdefault(m["run"], {})[m["metric"]] = df[c]
    frames = []
    for run, cols in parts.items():
        f = pd.DataFrame(cols)
        if step is not None:
            f.insert(0, "step", df[step])
        f.insert(0, "run", run)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _whole_json(text: str) -> bool:
    """Whether text is one complete JSON document (a trainer_state.json need not end with a newline)."""
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def read_log(path: str, complete_lines: bool = False) -> pd.DataFrame:
    """Any supported log as a DataFrame (one row per logged line). ``complete_lines``: ignore a last line that
    has no newline yet (a file another process is still writing)."""
    p = Path(path)
    if not p.exists():
        raise LogError(f"file not found: {path}")
    if p.is_dir():
        return _read_folder(p)
    if TB_MARK in p.name:
        return _read_tensorboard([p], path)
    text = p.read_text(encoding="utf-8-sig", errors="replace")  # a byte-order mark some editors write is dropped
    if complete_lines and not text.endswith("\n") and not _whole_json(text):
        text = text[: text.rfind("\n") + 1]
    if complete_lines and not text.strip():  # nothing whole written yet
        return pd.DataFrame()
    return _parse(path, text)


def _is_json(path: str, text: str) -> bool:
    return Path(path).suffix in (".json", ".jsonl", ".ndjson") or text.lstrip()[:1] in ("{", "[")


def _parse(path: str, text: str) -> pd.DataFrame:
    """The text of a log file (whole lines) as a DataFrame."""
    if not text.strip():
        raise LogError(f"{path} is empty")
    if _is_json(path, text):
        rows = _json_rows(path, text)
        if not rows:
            raise LogError(f"{path} holds no log lines")
        return pd.json_normalize(rows, sep="/") if any(isinstance(v, dict) for r in rows for v in r.values()) \
            else pd.DataFrame(rows)
    try:
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise LogError(f"{path} is not a readable CSV file: {str(e).splitlines()[0]}")
    except pd.errors.EmptyDataError:
        raise LogError(f"{path} is empty")
    if len(df.columns) and sum(bool(WANDB_COL.match(str(c))) for c in df.columns) >= 1 and \
            not any(c in df.columns for c in KL_NAMES):
        df = _wandb_long(df)
    return df


class LogTail:
    """What a growing log gained since the last read: the new whole lines of a CSV (under its header) or JSONL
    file, so following a long log costs its new lines only. A JSON document (trainer_state.json, rewritten whole
    at each save), a folder or TensorBoard events are read whole each time."""

    def __init__(self, path: str):
        self.path, self.offset, self.header, self.whole = path, 0, "", False

    def read(self) -> pd.DataFrame | None:
        p = Path(self.path)
        if not p.exists():
            return None
        if self.whole or p.is_dir() or TB_MARK in p.name:
            self.whole = True
            return read_log(self.path, complete_lines=True)
        with open(p, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        if self.offset == 0:
            text = chunk.decode("utf-8-sig", errors="replace")
            suffix = Path(self.path).suffix
            if suffix == ".json" or (suffix not in (".jsonl", ".ndjson") and (
                    text.lstrip()[:1] == "[" or (_whole_json(text) and "\n" in text.strip()))):  # a document
                self.whole = True
                return read_log(self.path, complete_lines=True)
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            return pd.DataFrame()
        self.offset += end
        text = chunk[:end].decode("utf-8-sig" if self.offset == end else "utf-8", errors="replace")
        if not _is_json(self.path, self.header + text) and not self.header:  # a CSV's first line is its header
            self.header, text = text[: text.find("\n") + 1], text[text.find("\n") + 1:]
        if not text.strip():
            return pd.DataFrame()
        return _parse(self.path, self.header + text)


def log_name(path: str) -> str:
    """A curve's name: its run folder (above checkpoint-*/ and the runs/<stamp>/ where transformers writes
    TensorBoard events), else the file's stem."""
    p = Path(path).resolve()
    if p.is_file() and (p.name == "trainer_state.json" or TB_MARK in p.name):
        p = p.parent
    if not p.is_dir():
        return p.stem
    while p.parent != p and (p.name.startswith("checkpoint-") or p.name == "runs" or p.parent.name == "runs"):
        p = p.parent
    return p.name


def _read_folder(p: Path) -> pd.DataFrame:
    """A run folder: its trainer_state.json, else every checkpoint's merged, else the TensorBoard events under it."""
    if (p / "trainer_state.json").is_file():
        return read_log(str(p / "trainer_state.json"))
    states = sorted(p.glob("checkpoint-*/trainer_state.json"), key=lambda f: int(re.sub(r"\D", "", f.parent.name) or 0))
    if states:
        df = pd.concat([read_log(str(f)) for f in states], ignore_index=True)
        key = df.astype(str).apply(tuple, axis=1)  # a later checkpoint repeats the earlier ones' lines
        return df[~key.duplicated()].reset_index(drop=True)
    events = sorted(f for f in p.rglob(f"*{TB_MARK}*") if f.is_file())
    if events:
        return _read_tensorboard(events, str(p))
    raise LogError(f"{p} is a folder with no trainer_state.json, checkpoint-*/trainer_state.json or TensorBoard "
                   "events file")


def _read_tensorboard(files: list, path: str) -> pd.DataFrame:
    """Scalars of TensorBoard event files as one row per step, one column per tag (the last value of a step)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise LogError(f"{path}: reading TensorBoard files needs the tensorboard package "
                       "(pip install 'overopt[tracking]')")
    values: dict = {}
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        try:
            acc.Reload()
        except Exception as e:  # a truncated or foreign file: say which
            raise LogError(f"{f} is not a readable TensorBoard events file: {e}")
        for tag in acc.Tags().get("scalars", []):
            for ev in acc.Scalars(tag):
                values.setdefault(ev.step, {})[tag] = ev.value
    if not values:
        raise LogError(f"{path} holds no TensorBoard scalars")
    df = pd.DataFrame.from_dict(values, orient="index").sort_index()
    return df.rename_axis("step").reset_index()


def _base(name: str) -> str:
    """A column name without the prefix a trainer adds (train/, eval/, eval_, train_)."""
    return next((name[len(p):] for p in PREFIXES if name.startswith(p)), name)


def _find(df: pd.DataFrame, given: str | None, names: tuple, what: str, flag: str, path: str,
          required: bool = True) -> str | None:
    cols = list(map(str, df.columns))
    if given:
        under = [c for c in cols if _base(c) == given]  # named without the prefix a TensorBoard export adds
        if given not in cols and len(under) == 1:
            return under[0]
        if given not in cols:
            raise LogError(f"{path} has no column '{_show(given)}' ({flag}); columns: {', '.join(map(_show, cols))}")
        return given
    for n in names:
        if n in cols:
            return n
    for n in names:  # under a trainer's prefix: train/kl, eval_kl
        hit = next((c for c in cols if _base(c) == n), None)
        if hit:
            return hit
    if what == "reward":  # TRL GRPO logs one column per reward function: rewards/<name>/mean
        per_func = [c for c in cols if c.startswith("rewards/") and c.endswith("/mean")]
        if len(per_func) == 1:
            return per_func[0]
    if required:
        why = " (a run without a KL penalty, such as TRL GRPO with beta = 0, logs none)" if what == "KL" else ""
        raise LogError(f"{path}: no {what} column found{why}; name it with {flag} "
                       f"(columns: {', '.join(map(_show, cols))})")
    return None


# TRL's GRPO and RLOO trainers log "kl" as a mean over completion tokens (beside a length of LENGTH_NAMES); the
# laws need the sequence KL
TRL_TOKEN_KL = "kl"


def recognise(df: pd.DataFrame, path: str = "log", kl: str | None = None, reward: str | None = None,
              step: str | None = None, group: str | None = None, kl_per_token: bool = False,
              length: str | None = None) -> dict:
    """Which columns hold KL, reward, step and group: the ones named, else the usual names of other trainers.

    ``kl_length`` names a mean-length column the KL is multiplied by: when ``kl_per_token`` (or a length column is
    named), or when the KL is a bare "kl" (TRL's GRPO/RLOO, under any prefix) beside a mean completion length, so
    the curve's KL is per sequence, as everywhere here."""
    cols = {"kl": _find(df, kl, KL_NAMES, "KL", "--kl-col", path),
            "reward": _find(df, reward, REWARD_NAMES, "reward", "--reward-col", path),
            "step": _find(df, step, STEP_NAMES, "step", "--step-col", path, required=False),
            "group": _find(df, group, ("run",), "group", "--group-col", path, required=group is not None)}
    prefix = cols["kl"][: len(cols["kl"]) - len(_base(cols["kl"]))]
    if length:
        cols["kl_length"] = _find(df, length, (), "length", "--length-col", path)
    elif kl_per_token or _base(cols["kl"]) == TRL_TOKEN_KL:
        found = [c for c in map(str, df.columns) if _base(c) in LENGTH_NAMES]
        same = [c for c in found if c.startswith(prefix) and _base(c) == c[len(prefix):]] if prefix else \
            [c for c in found if c in LENGTH_NAMES]
        cols["kl_length"] = (same or found or [None])[0]
        if kl_per_token and cols["kl_length"] is None:
            raise LogError(f"{path}: --kl-per-token needs a mean completion length column; name it with --length-col")
    else:
        cols["kl_length"] = None
    cols["kl_per_token"] = bool(cols["kl_length"])
    return cols


def kl_note(cols: dict) -> str:
    """Which KL a curve uses, in words."""
    if cols.get("kl_length"):
        return (f"KL: '{_show(cols['kl'])}' x '{_show(cols['kl_length'])}' (a per-token KL times the mean "
                "completion length: the sequence KL)")
    bare = _base(cols["kl"]) == TRL_TOKEN_KL
    return f"KL: '{_show(cols['kl'])}' read as per sequence" + \
        (" (if it is per token, as TRL GRPO's, pass --kl-per-token --length-col COLUMN)" if bare else "")


def _numbers(df: pd.DataFrame, col: str, path: str) -> np.ndarray:
    """A column as floats (missing: NaN); a non-numeric or infinite value raises naming the column and row."""
    vals = pd.to_numeric(df[col], errors="coerce")
    bad = vals.isna() & df[col].notna() & ~df[col].isin(["", "NaN", "nan"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise LogError(f"{path}: column '{_show(col)}' has a non-numeric value {df[col].iloc[i]!r} (row {i + 1})")
    vals = vals.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(vals).any():
        raise LogError(f"{path}: column '{_show(col)}' has an infinite value "
                       f"(row {int(np.flatnonzero(np.isinf(vals))[0]) + 1})")
    return vals


TIDY_COLUMNS = ("group", "step", "kl", "reward")


def extra_column(col: str) -> str:
    """The name `tidy` gives an extra column: its own, or "extra:<name>" where that is one of tidy's own columns (a
    proxy logged as "reward" beside the gold column fitted as the reward)."""
    return f"extra:{col}" if col in TIDY_COLUMNS else col


def tidy(df: pd.DataFrame, cols: dict, path: str = "log", extra: tuple = ()) -> pd.DataFrame:
    """One row per (group, step): kl and reward as numbers, rows missing either dropped, sorted by step,
    repeated steps averaged. Without a step column the order of the log is the step.

    ``extra`` columns (a reference score, ensemble members) are averaged over every line of the same step,
    those without a KL included: a trainer logs evaluations on lines of their own; each is named
    `extra_column(name)`."""
    out = pd.DataFrame(index=df.index)
    out["group"] = df[cols["group"]].astype(str) if cols.get("group") else log_name(path)
    for key in ("kl", "reward", "step", "kl_length"):
        if cols.get(key):
            out[key] = _numbers(df, cols[key], path)
    for col in extra:
        out[f"extra:{col}"] = _numbers(df, col, path)
    if "step" not in out:
        out["step"] = np.arange(len(out), dtype=float)
    if "kl_length" in out:  # per-token KL times mean completion length: the sequence KL
        out["kl"] = out.pop("kl_length") * out["kl"]
    extras = out.dropna(subset=["step"]).groupby(["group", "step"])[[f"extra:{c}" for c in extra]].mean()
    neg = out["kl"] < 0
    low = float(df[cols["kl"]][neg].astype(float).min()) if neg.any() else 0.0
    out = out.dropna(subset=["kl", "reward", "step"])
    if out.empty:
        raise LogError(f"{path}: no line has both a KL ('{_show(cols['kl'])}') and a reward "
                       f"('{_show(cols['reward'])}')")
    out = out.groupby(["group", "step"], as_index=False, sort=True)[["kl", "reward"]].mean()
    out["kl"] = out["kl"].clip(lower=0.0)
    out = out.join(extras.rename(columns=lambda c: extra_column(c[len("extra:"):])), on=["group", "step"])
    # a sampled estimate (k1, as TRL's RLOO logs) dips below zero near the start: read as 0, and said
    out.attrs["negative_kl"] = (int(neg.sum()), low)
    out.attrs["notes"] = [kl_note(cols)] + ([f"{int(neg.sum())} line(s) of '{_show(cols['kl'])}' are negative (down "
                                             f"to {low:.4g}), a sampled estimate's noise: read as 0"] if neg.any() else [])
    return out
