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

Which columns hold what is `online.columns`. A TensorBoard folder whose runs lie in folders of their own (a
sweep's runs/<name>/) gives a "run" column: one curve per run, named by its folder.

Documented handling: rows with neither a KL nor a reward (a log line of another kind, as `log_history` mixes
training and evaluation lines) are dropped; so are rows where one of them is not a finite number (an infinite KL or
a NaN reward after a spike), counted in a note; unsorted steps are sorted; repeated steps are averaged; a negative
KL (a sampled estimate such as the k1 that TRL's RLOO logs dips below zero) is read as 0, and the count is kept in
``curve.attrs["negative_kl"]``. Without a KL column the curve's kl is NaN (judged on steps). Everything else that is
wrong raises `LogError` with one line naming the file and the column or line.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import LogError
from .columns import KL_NAMES, STEP_NAMES, kl_note, show

WANDB_COL = re.compile(r"^(?P<run>.+?) - (?P<metric>.+)$")
TB_MARK = "tfevents"


def _json_rows(path: str, text: str) -> list[dict] | None:
    """The entries of a JSON document (a list of objects, one object, or trainer_state.json's log_history); None
    where the text is JSON Lines."""
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
    return None


def _flat(obj: dict, prefix: str = "") -> dict:
    """A nested JSON object's leaves as "outer/inner" keys (as `pandas.json_normalize` with sep "/")."""
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _lines(text: str):
    """The lines of a text one at a time (io.StringIO would hold a 4-byte-per-character copy of it)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield text[start:end]
        start = end + 1


def _jsonl_frame(path: str, lines) -> pd.DataFrame:
    """JSON Lines as a DataFrame, built column by column (a 400,000-line log never holds 400,000 dicts at once)."""
    cols: dict[str, list] = {}
    n = 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LogError(f"{path} line {i} is not valid JSON: {e.msg}")
        if not isinstance(obj, dict):
            raise LogError(f"{path} line {i} is not a JSON object")
        for k, v in (_flat(obj) if any(isinstance(v, dict) for v in obj.values()) else obj).items():
            col = cols.get(k)
            if col is None:
                col = cols[k] = [None] * n
            col.append(v)
        n += 1
        for col in cols.values():  # a key this line lacks
            if len(col) < n:
                col.append(None)
    if not n:
        raise LogError(f"{path} holds no log lines")
    return pd.DataFrame({k: pd.Series(v, dtype=float if all(isinstance(x, (int, float)) or x is None for x in v)
                                      else object) for k, v in cols.items()})


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
        if rows is None:
            return _jsonl_frame(path, _lines(text))
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


SPLIT_FOLDERS = ("train", "eval", "validation", "test")  # halves of one run a TensorBoard writer keeps apart


def _tb_run(f: Path, root: Path) -> str:
    """The run an events file belongs to: its folder under ``root`` (a train/ or eval/ folder is its parent's)."""
    d = f.parent
    if d.name in SPLIT_FOLDERS and d != root:
        d = d.parent
    return "/".join(d.relative_to(root).parts) if d != root and root in d.parents else ""


def _read_tensorboard(files: list, path: str) -> pd.DataFrame:
    """Scalars of TensorBoard event files as one row per (run, step), one column per tag (the last value of a
    step); a "run" column where the files lie in more than one run folder."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise LogError(f"{path}: reading TensorBoard files needs the tensorboard package "
                       "(pip install 'overopt[tracking]')")
    root = Path(path).resolve()
    values: dict = {}
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        try:
            acc.Reload()
        except Exception as e:  # a truncated or foreign file: say which
            raise LogError(f"{f} is not a readable TensorBoard events file: {e}")
        run = _tb_run(Path(f).resolve(), root) if root.is_dir() else ""
        for tag in acc.Tags().get("scalars", []):
            for ev in acc.Scalars(tag):
                values.setdefault((run, ev.step), {})[tag] = ev.value
    if not values:
        raise LogError(f"{path} holds no TensorBoard scalars")
    df = pd.DataFrame.from_dict(values, orient="index").sort_index()
    df.index = pd.MultiIndex.from_tuples(df.index, names=["run", "step"])
    df = df.reset_index()
    runs = df["run"].unique()
    return df.drop(columns="run") if len(runs) == 1 else df.assign(run=df["run"].replace("", "."))


def _numbers(df: pd.DataFrame, col: str, path: str) -> np.ndarray:
    """A column as floats (missing: NaN, an infinity kept); a non-numeric value raises naming the column and row."""
    vals = pd.to_numeric(df[col], errors="coerce")
    bad = vals.isna() & df[col].notna() & ~df[col].isin(["", "NaN", "nan"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise LogError(f"{path}: column '{show(col)}' has a non-numeric value {df[col].iloc[i]!r} (row {i + 1})")
    return vals.to_numpy(dtype=float, na_value=np.nan)


TIDY_COLUMNS = ("group", "step", "kl", "reward")


def extra_column(col: str) -> str:
    """The name `tidy` gives an extra column: its own, or "extra:<name>" where that is one of tidy's own columns (a
    proxy logged as "reward" beside the gold column fitted as the reward)."""
    return f"extra:{col}" if col in TIDY_COLUMNS else col


def _steps_text(steps) -> str:
    steps = [f"{s:g}" for s in steps]
    return ", ".join(steps[:5]) + (f" and {len(steps) - 5} more" if len(steps) > 5 else "")


def tidy(df: pd.DataFrame, cols: dict, path: str = "log", extra: tuple = ()) -> pd.DataFrame:
    """One row per (group, step): kl and reward as numbers, sorted by step, repeated steps averaged. Without a step
    column the order of the log is the step; without a KL column (``cols["kl"]`` None) kl is NaN.

    Rows with neither KL nor reward are another kind of line, dropped; a row where one of them is missing or not
    finite (an infinite KL, a NaN reward) is dropped with a note that counts them. ``extra`` columns (a reference
    score, ensemble members) are averaged over every line of the same step, those without a KL included: a trainer
    logs evaluations on lines of their own; each is named `extra_column(name)`, and an infinite value is read as
    missing."""
    out = pd.DataFrame(index=df.index)
    out["group"] = df[cols["group"]].astype(str) if cols.get("group") else log_name(path)
    for key in ("kl", "reward", "step", "kl_length"):
        if cols.get(key):
            out[key] = _numbers(df, cols[key], path)
    if "kl" not in out:
        out["kl"] = np.nan
    for col in extra:
        v = _numbers(df, col, path)
        out[f"extra:{col}"] = np.where(np.isinf(v), np.nan, v)
    if "step" not in out:
        out["step"] = np.arange(len(out), dtype=float)
    raw_kl = out["kl"].to_numpy()
    if "kl_length" in out:  # per-token KL times mean completion length: the sequence KL
        out["kl"] = out.pop("kl_length") * out["kl"]
    extras = out.dropna(subset=["step"]).groupby(["group", "step"])[[f"extra:{c}" for c in extra]].mean()
    neg = (raw_kl < 0).sum()
    low = float(raw_kl[raw_kl < 0].min()) if neg else 0.0
    need = ["reward"] + (["kl"] if cols.get("kl") else [])
    finite = np.isfinite(out[need]).all(axis=1)
    broken = out.loc[out[need].notna().any(axis=1) & ~finite & out["step"].notna(), "step"].to_numpy()
    out = out[finite & np.isfinite(out["step"])]
    if out.empty:
        what = f"both a KL ('{show(cols['kl'])}') and a reward" if cols.get("kl") else "a reward"
        raise LogError(f"{path}: no line has {what} ('{show(cols['reward'])}') that is a finite number")
    out = out.groupby(["group", "step"], as_index=False, sort=True)[["kl", "reward"]].mean()
    out["kl"] = out["kl"].clip(lower=0.0)
    out = out.join(extras.rename(columns=lambda c: extra_column(c[len("extra:"):])), on=["group", "step"])
    # a sampled estimate (k1, as TRL's RLOO logs) dips below zero near the start: read as 0, and said
    out.attrs["negative_kl"] = (int(neg), low)
    notes = list(cols.get("notes") or [kl_note(cols)])
    if len(broken):
        what = " or ".join(f"'{show(cols[k])}'" for k in ("kl", "reward") if cols.get(k))
        notes.append(f"dropped {len(broken)} line(s) whose {what} is missing or not a finite number (as a trainer "
                     f"logs after a spike), at step(s) {_steps_text(broken)}")
    if neg:
        notes.append(f"{int(neg)} line(s) of '{show(cols['kl'])}' are negative (down to {low:.4g}), a sampled "
                     "estimate's noise: read as 0")
    groups = out["group"].unique()
    if len(groups) > 1:
        notes.append(f"{len(groups)} runs, one curve each: {', '.join(map(show, groups[:10]))}"
                     + (f" and {len(groups) - 10} more" if len(groups) > 10 else ""))
    out.attrs["notes"] = notes
    return out


def trainer_state(curve: pd.DataFrame, proxy: str = "proxy", gold: str = "gold") -> dict:
    """One curve of rl.csv or grpo.csv (rows of step, kl, proxy, gold, length) as the `trainer_state.json` TRL's
    GRPOTrainer writes, one log_history line per evaluation: the per-token "kl" (the sequence KL over the mean
    length, as TRL logs it beside "completions/mean_length"), "reward" (the optimized proxy), and the proxy and gold
    as reward functions ("rewards/<name>/mean", gold logged at weight 0 as `online.trladapter` does). `read_log`
    and `online.columns.recognise` read it back to the same KL."""
    history = [{"step": int(r["step"]), "kl": float(r["kl"]) / max(float(r["length"]), 1.0),
                "completions/mean_length": float(r["length"]), "reward": float(r[proxy]),
                f"rewards/{proxy}/mean": float(r[proxy]), f"rewards/{gold}/mean": float(r[gold])}
               for r in curve.to_dict("records")]
    return {"global_step": history[-1]["step"] if history else 0, "log_history": history}
