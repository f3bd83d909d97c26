"""`overopt monitor` without the command line: feed a training log, line by line, to a `Monitor`.

    for line in watch_log("train.jsonl", Monitor(), reference_col="eval/reward"):
        print(line)            # the status whenever it changes; the last line is the monitor's verdict

With ``follow`` the file is read again every ``interval`` seconds as another process writes it (only the lines
added since), until the first "stop" (the step where training should end) or ``max_wait`` seconds without a new
line. Remarks on how the log was read (which KL) go to ``note``.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

import pandas as pd

from ..errors import LogError
from .columns import recognise
from .logs import LogTail, extra_column, read_log, tidy
from .monitor import Monitor
from .verdict import kl_warnings


def _status_line(st) -> str:
    line = f"step {st.step:g}  KL {st.kl:.3g}  {st.state}" + (": " + "; ".join(st.reasons) if st.reasons else "")
    if st.state == "stop" and st.best_step is not None:
        line += f" (best checkpoint by the reference: step {st.best_step:g})"
    return line


def watch_log(path: str, monitor: Monitor, follow: bool = False, interval: float = 2.0, max_wait: float = 0.0,
              kl_col: str | None = None, reward_col: str | None = None, step_col: str | None = None,
              kl_per_token: bool = False, length_col: str | None = None, reference_col: str | None = None,
              member_cols: tuple = (), note: Callable[[str], None] = lambda m: None,
              sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The monitor's status lines as it reads the log (each when the status changes), then its verdict."""
    seen, last, idle, state = set(), None, 0.0, "ok"
    extra = [c for c in [reference_col, *member_cols] if c]
    roles = {"reference": reference_col, **{f"member {i + 1}": c for i, c in enumerate(member_cols)}}
    noted, tail = set(), LogTail(path)
    while True:
        df = tail.read() if follow else read_log(path)  # following: the new lines only
        new, curve = False, None
        if df is not None and len(df.columns):
            missing = [c for c in extra if c not in df.columns]
            if missing and not follow:
                raise LogError(f"{path} has no column '{missing[0]}'")
            try:
                cols = recognise(df, path, kl_col, reward_col, step_col, None, kl_per_token, length_col, roles,
                                 "proxy")
                curve = tidy(df, cols, path, tuple(c for c in extra if c in df.columns))
            except LogError:
                if not (follow and noted):  # once the log was read, new lines may be evaluation lines only
                    raise
        if curve is not None:
            runs = curve["group"].unique()
            if len(runs) > 1:
                raise LogError(f"{path} holds {len(runs)} runs ({', '.join(map(str, runs[:10]))}"
                               f"{' ...' if len(runs) > 10 else ''}): the monitor follows one; pass its folder")
            for m in curve.attrs["notes"]:  # each remark once (with --follow, about the lines read since)
                if m not in noted:
                    noted.add(m)
                    note(m)
            for row in curve.to_dict("records"):
                if row["step"] in seen:
                    continue
                seen.add(row["step"])
                new = True
                value = lambda c: (float(row[extra_column(c)]) if c and extra_column(c) in row  # noqa: E731
                                   and pd.notna(row[extra_column(c)]) else None)
                mem = [v for v in map(value, member_cols) if v is not None] or None
                st = monitor.update(row["step"], row["kl"], row["reward"], value(reference_col), mem)
                if (st.state, tuple(st.reasons)) != last:
                    yield _status_line(st)
                    last = (st.state, tuple(st.reasons))
                state = st.state
                if state == "stop":  # the first stop is the answer: where training should have ended
                    break
        if not follow or state == "stop":
            break
        idle = 0.0 if new else idle + interval
        if max_wait and idle >= max_wait:
            yield f"no new line for {max_wait:g} s; last status {state}"
            break
        sleep(interval)
    for m in kl_warnings(monitor.steps, monitor.kl):
        note(m)
    yield f"verdict: {monitor.summary()}"
