"""What a report section reads: the run directory's tables (each checked for the columns it needs), the proxy
family, and a way to embed a figure (saved to plots/ as well)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..laws.curves import fits_with_identity
from .kit import need, png, read_manifest, read_table, written_rows


class Page:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.plots = self.out / "plots"
        self.plots.mkdir(exist_ok=True)
        self.manifest = read_manifest(self.out)  # read once: every table is checked against its row counts
        self.rows = written_rows(self.manifest)
        self.rm, self.bon = read_table(out, "rm", rows=self.rows), read_table(out, "bon", rows=self.rows)
        self.fits = fits_with_identity(read_table(out, "fits", rows=self.rows))
        need(self.bon, out, "bon", ("rm", "kl_bound", "gold", "proxy", "n", "rm_params"))
        n_train = self.rm["n_train"].max()
        by_name = self.rm.set_index("rm")
        self.family = [r for r in self.rm.sort_values("params")["rm"]
                       if by_name.loc[r, "n_train"] == n_train and r in set(self.bon["rm"])]

    def table(self, name: str, cols: tuple = ()) -> pd.DataFrame | None:
        """An optional table: None when the run did not write it or it is empty; checked for ``cols``."""
        df = read_table(self.out, name, False, self.rows)
        need(df, self.out, name, cols)
        return df if df is not None and len(df) else None

    def img(self, name: str, fig, file: str | None = None) -> str:
        """``fig`` embedded in the page, and saved as plots/<file or name>.png."""
        return f'<img src="data:image/png;base64,{png(fig, self.plots / f"{file or name}.png")}">'
