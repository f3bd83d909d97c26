"""Every bench compares like with like: each script in bench/ states the work its two sides do per step
(`bench/work.py`), built from the settings objects it runs with, and the two sides agree at its default options."""
import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.name != "work.py")
sys.path.insert(0, str(BENCH))  # the scripts import their helper as `work`, as when run from the command line
from work import check, disagreements  # noqa: E402


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_each_bench_states_its_work_and_both_sides_agree(path):
    pytest.importorskip("trl")
    mod = load(path)
    warnings.filterwarnings("ignore")
    assert callable(getattr(mod, "parser", None)) and callable(getattr(mod, "work", None)), path.name
    pairs = mod.work(mod.parser().parse_args([]))
    assert len(pairs) >= 3, f"{path.name} states too little of its work: {list(pairs)}"
    assert disagreements(pairs) == [], f"{path.name}: the two sides differ on {disagreements(pairs)}"


def test_the_check_catches_a_change_of_defaults(monkeypatch):
    """The regression this guards against: overopt's side built from RLSettings' defaults (the run's 4 epochs x 4
    minibatches) against TRL's one update per rollout."""
    pytest.importorskip("trl")
    mod = load(BENCH / "rl_step.py")
    from overopt.optimizers.rl import RLSettings
    monkeypatch.setattr(mod, "ours_settings", lambda a: RLSettings(algo="rloo", k=a.k, lr=a.lr, kl_coef=0.05,
                                                                   max_new_tokens=a.new_tokens))
    pairs = mod.work(mod.parser().parse_args([]))
    assert pairs["updates per rollout"] == (16, 1)
    assert disagreements(pairs) == ["updates per rollout"]
    with pytest.raises(SystemExit, match="updates per rollout"):
        check(pairs, "TRL RLOO")
