"""What every report section uses: reading a run's tables (one line naming the file and column when one is
unusable), colours, embedding a figure, an HTML table and the page's CSS. Torch-free."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import ReportError  # noqa: E402


def need(df: pd.DataFrame | None, out: Path, name: str, cols: tuple) -> None:
    """A table the report plots must have the columns it plots: else one line naming file and column."""
    missing = [c for c in cols if df is not None and c not in df.columns]
    if missing:
        raise ReportError(f"{out / (name + '.csv')} lacks column '{missing[0]}'")


def read_table(out: Path, name: str, required: bool = True, rows: dict | None = None) -> pd.DataFrame | None:
    """A run's table, checked: whole (ends with a line end; as many rows as ``rows``, the run's record of what it
    wrote, says), no repeated row, no text in a column of numbers. Anything else is one line naming the file (and row,
    column)."""
    p = out / f"{name}.csv"
    if not p.exists():
        if required:
            raise ReportError(f"{p} not found: is {out} the output directory of `overopt run`?")
        return None
    try:
        raw = p.read_bytes()
        df = pd.read_csv(p, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ReportError(f"{p} is not a readable CSV table: {str(e).splitlines()[0]}")
    if raw and not raw.endswith(b"\n"):
        raise ReportError(f"{p} ends in the middle of a row (truncated?)")
    dup = df.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ReportError(f"{p}: row {i + 1} repeats an earlier row")
    wrote = (rows or {}).get(name)
    if wrote is not None and wrote != len(df):
        raise ReportError(f"{p} has {len(df)} rows; the run wrote {wrote} (truncated or edited?)")
    for c in df.columns:
        if pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            continue
        v = df[c].dropna()
        num = pd.to_numeric(v, errors="coerce")
        if num.notna().sum() > num.isna().sum() > 0:  # mostly numbers: the text is damage, not a label
            bad = v[num.isna()]
            raise ReportError(f"{p}: column '{c}' has a non-numeric value {bad.iloc[0]!r} (row {bad.index[0] + 1})")
    return df


def read_manifest(out: Path) -> dict:
    """A run's manifest.json, {} when missing or unreadable."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def written_rows(manifest: dict) -> dict:
    """Rows of each table as a complete run wrote them ({} for a running one: its record is partial)."""
    tables = manifest.get("tables") if manifest.get("status") == "complete" else None
    return tables if isinstance(tables, dict) else {}


def colors(n: int):
    return plt.cm.viridis(np.linspace(0.0, 0.85, max(n, 1)))


def error_bars(y, lo, hi) -> np.ndarray:
    """matplotlib's yerr [2, n] from an interval (lo, hi) around y; 0 where a bound is missing or on the wrong side."""
    y, lo, hi = (np.asarray(a, dtype=float) for a in (y, lo, hi))
    with np.errstate(invalid="ignore"):
        err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
    return np.where(np.isfinite(err), err, 0)


def png(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode()


def html_table(df: pd.DataFrame, digits: int = 3) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else (f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.{digits}g}")
        return html.escape(str(v))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1250px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}
.note{color:#555;font-size:14px}.samples td{text-align:left;max-width:600px}"""
