"""The run configuration: typed frozen sections (`schema`), their range checks (`validate`) and loading from
presets, YAML files and ``--set`` overrides (`load`). Everything else in overopt reads a `Config`."""
from .load import (config_data, config_from_dict, help_text, list_presets, load_config, merge, parse_override, read_yaml,
                   switches)
from .schema import (CACHE_VERSION, GOLD_DIMS, PRESET_DIR, ActiveConfig, AifConfig, BonConfig, BudgetConfig, Config, ConfigError,
                     DAAConfig, EnsembleConfig, FitConfig, GoldConfig, GRPOConfig, HFConfig, MonitorConfig, MultiConfig,
                     PolicyConfig, RLConfig, RMConfig, RunConfig, WorldConfig, active_dims, field_help, fingerprint)
from .validate import HF_UNSUPPORTED, family_sizes, parse_grpo_variant, parse_labeller, parse_size, proxy_names, rm_lr, validate, width_lr

__all__ = [n for n in dir() if not n.startswith("_")]
