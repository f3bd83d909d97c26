"""The content-addressed artifact store: ``<root>/<kind>/<key>.safetensors``, written atomically, so an interrupted
run started again reuses what was finished. Keys are `Config.section_hash` of what an artifact depends on.

No pickle: an artifact is a tree of dicts, lists, tuples, strings, numbers, None, NumPy arrays and scalars and torch
tensors. Its arrays and tensors are the tensors of one safetensors file; the rest of the tree is JSON in that file's
header, with a SHA-256 digest of the tree and of every tensor's bytes. Loading parses JSON and raw numbers only, so a
planted file can never run code; a file that does not parse, whose digest does not match (truncated, garbled) or
that names another artifact (copied over this one) is named in one line on stderr and rebuilt. Files of the pickle era (``.pkl``) are never read.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

SUFFIX = ".safetensors"


def default_cache_dir() -> Path:
    return Path(os.environ.get("OVEROPT_CACHE") or Path.home() / ".cache" / "overopt")


def encode(obj, tensors: dict) -> object:
    """``obj`` as JSON-able data; its arrays and tensors moved into ``tensors`` (name -> CPU tensor)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.generic):  # before float: np.float64 is a float
        return {"np": obj.dtype.str, "v": encode(obj.item(), tensors)}
    if isinstance(obj, (int, float)):
        return obj if isinstance(obj, int) or np.isfinite(obj) else {"float": repr(float(obj))}
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        name = str(len(tensors))
        is_np = isinstance(obj, np.ndarray)
        if is_np and (obj.dtype.hasobject or obj.dtype.kind in "USV"):
            raise TypeError(f"cache: array of dtype {obj.dtype} cannot be stored without pickle")
        # each its own contiguous storage: safetensors refuses shared ones
        tensors[name] = torch.from_numpy(np.array(obj, order="C")) if is_np else obj.detach().cpu().contiguous().clone()
        return {"array" if is_np else "tensor": name}
    if isinstance(obj, (list, tuple)):
        items = [encode(v, tensors) for v in obj]
        return items if isinstance(obj, list) else {"tuple": items}
    if isinstance(obj, dict):
        return {"dict": [[encode(k, tensors), encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cache: cannot store a {type(obj).__name__} without pickle")


def decode(data, tensors: dict):
    """The inverse of `encode`."""
    if isinstance(data, list):
        return [decode(v, tensors) for v in data]
    if not isinstance(data, dict):
        return data
    if "dict" in data:
        return {_key(decode(k, tensors)): decode(v, tensors) for k, v in data["dict"]}
    if "tuple" in data:
        return tuple(decode(v, tensors) for v in data["tuple"])
    if "array" in data:
        return tensors[data["array"]].numpy()
    if "tensor" in data:
        return tensors[data["tensor"]]
    if "np" in data:
        return np.dtype(data["np"]).type(decode(data["v"], tensors))
    if "float" in data:
        return float(data["float"])
    raise ValueError(f"unknown node {sorted(data)}")


def _key(k):
    return tuple(k) if isinstance(k, list) else k  # a tuple key came back as a list


def _digest(tree: str, tensors: dict) -> str:
    h = hashlib.sha256(tree.encode())
    for name in sorted(tensors, key=int):
        t = tensors[name]
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class Cache:
    """Content-addressed artifact store: ``<root>/<kind>/<key>.safetensors``, written atomically, verified on load."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}{SUFFIX}"

    def has(self, kind: str, key: str) -> bool:
        """Whether an artifact is stored (`get` may still find it unreadable and return None)."""
        return self.path(kind, key).exists()

    def get(self, kind: str, key: str):
        """The artifact, or None when it is not stored or its file is unreadable (named on stderr: rebuilt)."""
        p = self.path(kind, key)
        if not p.exists():
            return None
        try:
            return self._read(p, kind, key)
        except Exception as e:  # torn, garbled or foreign: rebuilt, never trusted
            print(f"overopt: cache file {p} is unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                  "rebuilding it", file=sys.stderr)
            return None

    def readable(self, kind: str, key: str) -> bool:
        """Whether `get` would return the artifact (read and checked, nothing printed)."""
        p = self.path(kind, key)
        try:
            return p.exists() and self._read(p, kind, key) is not None
        except Exception:
            return False

    @staticmethod
    def _read(p: Path, kind: str, key: str):
        raw = p.read_bytes()
        tensors = st_load(raw)
        meta = json.loads(raw[8: 8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
        if _digest(meta["tree"], tensors) != meta["digest"]:
            raise ValueError("its digest does not match its content")
        if (meta.get("kind"), meta.get("key")) != (kind, key):  # another artifact's file, copied here
            raise ValueError(f"it holds {meta.get('kind')}/{meta.get('key')}, not {kind}/{key}")
        return decode(json.loads(meta["tree"]), tensors)

    def put(self, kind: str, key: str, obj) -> None:
        tensors: dict = {}
        tree = json.dumps(encode(obj, tensors))
        meta = {"tree": tree, "digest": _digest(tree, tensors), "kind": kind, "key": key}
        p = self.path(kind, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(st_save(tensors, metadata=meta))
        os.replace(tmp, p)
