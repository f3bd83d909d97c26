"""A NaN or infinity in pi0 or proxy training stops the run with one line naming the stage, and is never cached."""
import pytest

from overopt.cli import main


@pytest.mark.parametrize("setting,stage,kind", [("policy.lr=1e30", "pi0 training: step ", "pi0"),
                                                ("rm.lr=1e30", "proxy 8x1 training: step ", "rm")])
def test_a_diverging_training_stops_in_one_line_and_caches_nothing(tmp_path, capsys, setting, stage, kind):
    cache = tmp_path / "cache"
    code = main(["run", "--preset", "smoke", "--quiet", "--out", str(tmp_path / "out"), "--set",
                 f"run.cache_dir={cache}", "--set", "rl.enabled=false", "--set", setting])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"overopt run: error: {stage}") and "is not finite" in err[0]
    assert not list((cache / kind).glob("*")) if (cache / kind).exists() else True
