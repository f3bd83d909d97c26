import re

import pytest

from overopt.config import ConfigError, load_config, list_presets, parse_override


def test_presets_load_and_overrides_apply():
    assert {"smoke", "default"} <= set(list_presets())
    cfg = load_config("smoke", overrides=["rm.n_train=300", "rm.sizes=[8x1, 16x2]", "bon.pool_size=16",
                                         "aif.labellers=[rm:16x2]"])
    assert cfg.rm.n_train == 300 and cfg.rm.sizes == ("8x1", "16x2") and cfg.bon.pool_size == 16
    # YAML 1.1 reads an exponent without a dot as a string; a float key still takes it
    assert load_config("smoke", overrides=["rl.lr=3e-5"]).rl.lr == 3e-5
    # a comma list from the command line keeps its numbers numbers and its names names
    cfg = load_config("smoke", overrides=["rl.kl_sweep=0.01,0.05,0.2", "rm.sizes=8x1,16x2",
                                                 "aif.enabled=false"])
    assert cfg.rl.kl_sweep == (0.01, 0.05, 0.2) and cfg.rm.sizes == ("8x1", "16x2")
    # direct alignment can be labelled by an ensemble objective of the run, and only by one it has
    assert load_config("smoke", overrides=["daa.labels=8x1/noise0.25/wco"]).daa.labels == "8x1/noise0.25/wco"
    for bad, key in (("aif.labellers=[rm:7x1]", "aif.labellers"), ("aif.labellers=[dim:color:2]", "aif.labellers"),
                     ("aif.labellers=[length:long]", "aif.labellers"), ("multi.weights=[1,2]", "multi.weights"),
                     ("multi.pareto_n=64", "multi.pareto_n")):
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            load_config("smoke", overrides=[bad])
    for bad in ("8x1/noise0.1/wco", "8x1/noise0/max"):
        with pytest.raises(ConfigError, match="config key 'daa.labels'"):
            load_config("smoke", overrides=[f"daa.labels={bad}"])


def test_multi_weights_count_the_weighted_gold_dimensions():
    from overopt.config import GOLD_DIMS, GoldConfig, active_dims

    assert active_dims(GoldConfig()) == GOLD_DIMS[:5]  # naturalness weighs 0 unless a preset sets it
    assert active_dims(GoldConfig(w_naturalness=1.6, w_fluency=0.0)) == tuple(d for d in GOLD_DIMS if d != "fluency")
    on = ["gold.w_naturalness=1.6"]
    assert len(load_config("smoke", overrides=on + ["multi.weights=[1,1,1,1,1,2]"]).multi.weights) == 6
    assert len(load_config("smoke", overrides=["multi.weights=[1,1,1,1,2]"]).multi.weights) == 5
    with pytest.raises(ConfigError, match="must be empty or 5 numbers >= 0, one per weighted gold dimension "
                                          r"\(sentiment, fluency, relevance, length, diversity\)"):
        load_config("smoke", overrides=["multi.weights=[1,1,1,1,1,2]"])


def test_yaml_file_over_preset(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("rm:\n  label_noise: 0.25\n")
    assert load_config("smoke", str(f)).rm.label_noise == 0.25


@pytest.mark.parametrize("override,msg", [
    ("rm.sizez=[8x1]", "unknown config key 'rm.sizez'"),
    ("nosuch.key=1", "unknown config key 'nosuch'"),
    ("rm.n_train=abc", "config key 'rm.n_train' must be an integer"),
    ("rm.n_train=1.5", "config key 'rm.n_train' must be an integer"),
    ("rl.lr=fast", "config key 'rl.lr' must be a number"),
    ("rl.lr=.nan", "config key 'rl.lr' must be a number"),
    ("rm.label_noise=0.7", "config key 'rm.label_noise' must be in"),
    ("rm.sizes=[8y1]", "config key 'rm.sizes' entry"),
    ("bon.pool_size=2", "config key 'bon.pool_size'"),
    ("run.device=tpu", "config key 'run.device'"),
    ("rm.data_sizes=[100, 99999999]", "config key 'rm.data_sizes'"),
    ("rm.draws=0", "config key 'rm.draws' must be an integer >= 1, got 0"),
    ("gold.naturalness_decay=-1", "config key 'gold.naturalness_decay' must be in [0, 10]"),
])
def test_bad_values_name_the_key(override, msg):
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[")):
        load_config("smoke", overrides=[override])


def test_bad_preset_and_override_syntax():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_config("nope")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("rm.n_train")


def test_hash_tracks_content_and_sections():
    a = load_config("smoke")
    b = load_config("smoke", overrides=["bon.pool_size=16"])
    assert a.hash != b.hash
    assert a.section_hash("world", "policy") == b.section_hash("world", "policy")  # pi0 is reused
    assert a.section_hash("world") != load_config("smoke", overrides=["run.seed=1"]).section_hash("world")


def test_configs_are_frozen():
    cfg = load_config("smoke")
    with pytest.raises(Exception):
        cfg.rm.n_train = 5


def test_help_config_prints_every_field_with_default_and_help(capsys):
    from overopt.cli import main
    from overopt.config import Config, field_help

    assert main(["run", "--help-config", "rm"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("rm:\n") and "  n_train = 12000\n" in text and "  sizes = [8x1, 16x1, 32x2, 64x2, 96x3]" in text
    assert field_help(type(Config().rm))["n_train"] in text
    assert main(["run", "--help-config"]) == 0
    every = capsys.readouterr().out
    for section in ("run", "world", "gold", "rl", "daa", "monitor", "hf", "fit"):
        assert f"\n{section}:\n" in "\n" + every
    assert len(re.findall(r"^  \w+ = ", every, re.M)) == sum(len(field_help(type(getattr(Config(), s)))) for s in Config().to_dict())
    assert main(["run", "--help-config", "nope"]) == 2
    assert "unknown config section 'nope'" in capsys.readouterr().err


def test_proxy_learning_rate_falls_as_one_over_width_above_lr_width():
    from overopt.config.validate import width_lr
    from overopt.pipeline.proxies import proxy_key, proxy_lr

    assert width_lr(2e-3, 64, 128) == pytest.approx(1e-3) and width_lr(2e-3, 64, 256) == pytest.approx(5e-4)
    assert width_lr(2e-3, 64, 64) == 2e-3 and width_lr(2e-3, 64, 8) == 2e-3 and width_lr(2e-3, 0, 512) == 2e-3
    off = load_config("smoke", overrides=["rm.sizes=[8x1,16x1,32x1,128x1]"])
    on = load_config("smoke", overrides=["rm.sizes=[8x1,16x1,32x1,128x1]", "rm.lr_width=16"])
    assert [proxy_lr(on, s) for s in on.rm.sizes] == pytest.approx([off.rm.lr, off.rm.lr, off.rm.lr / 2, off.rm.lr / 8])
    # a proxy whose rate the rule leaves alone keeps its cache key; the scaled one gets another
    assert proxy_key(on, "16x1", 600) == proxy_key(off, "16x1", 600)
    assert proxy_key(on, "128x1", 600) != proxy_key(off, "128x1", 600)
    with pytest.raises(ConfigError, match="config key 'rm.lr_width'"):
        load_config("smoke", overrides=["rm.lr_width=-1"])


def test_a_size_listed_in_rm_lrs_trains_at_its_own_rate_and_is_cached_by_it():
    from overopt.config import rm_lr
    from overopt.pipeline.proxies import proxy_key, proxy_lr

    sizes = "rm.sizes=[8x1,16x1,32x1,128x1]"
    cfg = load_config("smoke", overrides=[sizes, "rm.lr_width=64", "rm.lrs=[16x1=5e-3,128x1=3e-4]"])
    assert [proxy_lr(cfg, s) for s in cfg.rm.sizes] == pytest.approx([cfg.rm.lr, 5e-3, cfg.rm.lr, 3e-4])
    assert rm_lr(cfg.rm, 128, 1) == pytest.approx(3e-4) and rm_lr(cfg.rm, 128, 2) == pytest.approx(cfg.rm.lr / 2)
    # the key holds the rate a proxy trains at, not how the config spelled it
    assert proxy_key(cfg, "16x1", 600) == proxy_key(load_config("smoke", overrides=[sizes, "rm.lr=5e-3"]), "16x1", 600)
    assert proxy_key(cfg, "8x1", 600) == proxy_key(load_config("smoke", overrides=[sizes]), "8x1", 600)
    for bad, what in [("[16x1]", "must look like SIZE=LR"), ("[16x1=-1]", "must look like SIZE=LR"),
                      ("[16x3x1=1e-3]", "must look like HIDDENxLAYERS"), ("[8x1=1e-3,8x1=2e-3]", "names 8x1 twice")]:
        with pytest.raises(ConfigError, match=f"config key 'rm.lrs'.*{what}"):
            load_config("smoke", overrides=[f"rm.lrs={bad}"])
