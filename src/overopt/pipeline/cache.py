"""The content-addressed artifact store: ``<root>/<kind>/<key>.pkl``, written atomically, so an interrupted run
started again reuses what was finished. Keys are `Config.section_hash` of what an artifact depends on."""
from __future__ import annotations

import os
import pickle
from pathlib import Path


def default_cache_dir() -> Path:
    return Path(os.environ.get("OVEROPT_CACHE") or Path.home() / ".cache" / "overopt")


class Cache:
    """Content-addressed artifact store: ``<root>/<kind>/<key>.pkl``, written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pkl"

    def get(self, kind: str, key: str):
        p = self.path(kind, key)
        if not p.exists():
            return None
        try:
            with open(p, "rb") as f:
                return pickle.load(f)
        except Exception:  # a torn or stale file is rebuilt, not trusted
            return None

    def put(self, kind: str, key: str, obj) -> None:
        p = self.path(kind, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, p)
