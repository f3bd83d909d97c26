"""The artifact cache stores without pickle, loads only what it verified, and rebuilds what it cannot trust."""
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from overopt.cli import main
from overopt.pipeline.cache import Cache


class Marker:
    """Unpickling this writes a file: the proof that a load ran code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def tree():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    rng = np.random.default_rng([0, 61])
    rng.random(3)
    return {"state_dict": model.state_dict(), "opt": opt.state_dict(), "rng": rng.bit_generator.state,
            "gen": torch.Generator().manual_seed(3).get_state(), "bf16": torch.arange(4, dtype=torch.bfloat16),
            "ints": np.arange(6, dtype=np.int32).reshape(2, 3), "mask": np.array([True, False]),
            "empty": np.zeros((0, 4), dtype=np.float32), "scalar": np.float32(1.5), "count": np.int64(7),
            "rows": [{"curve": "8x1", "gold": 0.25, "lo": float("nan"), "hi": float("inf")}], "pair": (1, "a", None),
            (1, 2): "tuple key", 3: [np.float64(2.0)]}


def same(a, b):
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert type(a) is type(b) and a == b


def test_every_kind_of_artifact_round_trips(tmp_path):
    c = Cache(tmp_path)
    t = tree()
    c.put("rl-ckpt", "k", t)
    assert c.path("rl-ckpt", "k").name == "k.safetensors"
    back = c.get("rl-ckpt", "k")
    same(t, back)
    opt = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt.load_state_dict(back["opt"])  # what a resumed RL curve does
    rng = np.random.default_rng()
    rng.bit_generator.state = back["rng"]
    with pytest.raises(TypeError, match="cannot store a Marker without pickle"):
        c.put("x", "k", {"a": Marker(str(tmp_path / "m"))})
    with pytest.raises(TypeError, match="dtype object"):
        c.put("x", "k", np.array([{}], dtype=object))


@pytest.mark.parametrize("kind", ["world", "pi0", "pairs", "pool", "rm", "scores", "rl", "rl-ckpt", "daa", "daa-ref",
                                  "gold"])
def test_a_planted_pickle_never_runs(tmp_path, capsys, kind):
    c = Cache(tmp_path / "cache")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Marker(str(marker)))
    c.path(kind, "k").parent.mkdir(parents=True)
    (c.path(kind, "k").parent / "k.pkl").write_bytes(payload)  # the pickle era's name: never read
    assert c.get(kind, "k") is None and capsys.readouterr().err == ""
    c.path(kind, "k").write_bytes(payload)                     # under the name that is read
    assert c.get(kind, "k") is None and not marker.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(c.path(kind, "k")) in err and "rebuilding it" in err


def test_garbled_truncated_or_swapped_files_are_rebuilt_never_trusted(tmp_path, capsys):
    c = Cache(tmp_path)
    c.put("scores", "a", np.linspace(0, 1, 4096, dtype=np.float32))
    c.put("scores", "b", np.linspace(1, 2, 4096, dtype=np.float32))
    p = c.path("scores", "a")
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\xff" * 64  # 64 bytes in the middle of the numbers
    p.write_bytes(bytes(raw))
    assert (c.has("scores", "a"), c.readable("scores", "a"), c.readable("scores", "b")) == (True, False, True)
    assert not c.readable("scores", "c") and capsys.readouterr().err == ""  # readable checks quietly
    assert c.get("scores", "a") is None
    assert "its digest does not match its content" in capsys.readouterr().err
    p.write_bytes(c.path("scores", "b").read_bytes())  # another artifact's intact file in this one's place
    assert c.get("scores", "a") is None and "it holds scores/b, not scores/a" in capsys.readouterr().err
    p.write_bytes(c.path("scores", "b").read_bytes()[:-100])
    assert c.get("scores", "a") is None and "rebuilding it" in capsys.readouterr().err
    np.testing.assert_array_equal(c.get("scores", "b"), np.linspace(1, 2, 4096, dtype=np.float32))


def test_a_garbled_cache_gives_the_same_tables(tmp_path, capfd):
    """Every cached artifact of a smoke run garbled: the rerun rebuilds them (the proxies in worker processes, as
    the first run trained them: capfd hears their messages too) and writes the same tables."""
    cache = tmp_path / "cache"
    args = ["run", "--preset", "smoke", "--quiet", "--set", f"run.cache_dir={cache}", "--set", "rl.enabled=false"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    files = sorted(cache.rglob("*.safetensors"))
    assert {f.parent.name for f in files} >= {"world", "pi0", "pairs", "pool", "rm", "scores"}
    for f in files:
        raw = bytearray(f.read_bytes())
        raw[-64:] = bytes(b ^ 0xFF for b in raw[-64:])  # flipped, so a file ending in zeros changes too
        f.write_bytes(bytes(raw))
    capfd.readouterr()
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert capfd.readouterr().err.count("rebuilding it") == len(files)
    for table in ("rm", "bon", "fits"):  # every number but the training seconds
        a, b = (pd.read_csv(tmp_path / d / f"{table}.csv").drop(columns="train_s", errors="ignore") for d in "ab")
        pd.testing.assert_frame_equal(a, b)
