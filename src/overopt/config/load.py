"""Loading a config: a preset, then a YAML file, then ``--set`` overrides, each over the last; the one loader
used by `overopt run`, `overopt sweep` and the tests.

    cfg = load_config(preset="smoke", overrides=["rm.n_train=2000"])
    cfg.rm.n_train  # 2000
    print(help_text("rm"))  # every field of a section with its default and help (overopt run --help-config rm)

Unknown keys and bad values raise ``ConfigError`` naming the key, at load time.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import fields
from pathlib import Path
from typing import Any, get_origin, get_type_hints

import yaml

from .schema import PRESET_DIR, Config, ConfigError, field_help
from .validate import validate


def _coerce(key: str, value: Any, typ) -> Any:
    """Coerce a YAML value to the field's type or raise ConfigError naming the key."""
    origin = get_origin(typ) or typ
    if typ is tuple or origin is tuple:
        if isinstance(value, str):
            # "0.01,0.05" from --set: each entry read as YAML, so numbers stay numbers
            value = [yaml.safe_load(v.strip()) for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return tuple(value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or int(value) != value:
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return int(value)
    if typ is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return value
    return value


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.')}' must be a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for k in data:
        if k not in names:
            raise ConfigError(f"unknown config key '{prefix}{k}'")
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            kwargs[f.name] = _build(typ, data[f.name], f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = _coerce(prefix + f.name, data[f.name], typ)
    return cls(**kwargs)


def merge(base: dict, upd: dict) -> dict:
    out = dict(base)
    for k, v in upd.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def read_yaml(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}")
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder, not a YAML file")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not a text file (not UTF-8)")
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}")
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of sections")
    return data


def parse_override(item: str) -> dict:
    """'rm.n_train=2000' -> {'rm': {'n_train': 2000}} (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override key '{key}' must look like section.key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return {parts[0]: {parts[1]: value}}


def switches() -> list[str]:
    """The config sections with an ``enabled`` switch: each turns one study of `studies.registry` on (a test holds
    the two lists together)."""
    return [f.name for f in fields(Config) if "enabled" in {g.name for g in fields(get_type_hints(Config)[f.name])}]


def expand_studies(data: dict, where: str) -> dict:
    """A file's ``studies: all`` or ``studies: [section, ...]`` as those sections' ``enabled: true`` (``all``: every
    switch of `switches`, so a new study is on in such a preset without an edit); the file's own keys win."""
    if "studies" not in data:
        return data
    names, known = data["studies"], switches()
    names = known if names == "all" else names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"config key 'studies' in {where} must be 'all' or a list of study switches ({', '.join(known)})")
    for n in names:
        if n not in known:
            raise ConfigError(f"config key 'studies' in {where} names '{n}', which is not a study switch "
                              f"(one of: {', '.join(known)})")
    rest = {k: v for k, v in data.items() if k != "studies"}
    return merge({n: {"enabled": True} for n in names}, rest)


def config_data(preset: str | None = None, config_file: str | Path | None = None, overrides=()) -> dict:
    """The mapping a Config is built from: a preset, then a YAML file, then each override ({section: {key: value}}),
    each over the last. `load_config` and `sweep.read_grid` both build on it."""
    data: dict = {}
    if preset:
        if preset not in list_presets():
            raise ConfigError(f"unknown preset '{preset}' (available: {', '.join(list_presets())})")
        data = expand_studies(read_yaml(PRESET_DIR / f"{preset}.yaml", "preset"), f"preset {preset}")
    if config_file:
        data = merge(data, expand_studies(read_yaml(Path(config_file), "config file"), str(config_file)))
    for item in overrides:
        data = merge(data, item)
    return data


def load_config(preset: str | None = "default", config_file: str | None = None,
                overrides: list[str] | tuple = ()) -> Config:
    """Preset, then a YAML file, then ``--set`` overrides (section.key=value), each over the last."""
    return config_from_dict(config_data(preset, config_file, [parse_override(item) for item in overrides]))


def config_from_dict(data: dict) -> Config:
    return validate(_build(Config, data, ""))


def _as_yaml(value) -> str:
    """A default as it would be written in a config file."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_as_yaml(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


def help_text(section: str | None = None) -> str:
    """Every field of the config (or of one section) with its type, default and help, as `--help-config` prints it."""
    sections = [f for f in fields(Config) if section in (None, f.name)]
    if not sections:
        raise ConfigError(f"unknown config section '{section}' (sections: {', '.join(f.name for f in fields(Config))})")
    lines = []
    for sec in sections:
        cls = get_type_hints(Config)[sec.name]
        lines.append(f"{sec.name}:")
        helps, defaults = field_help(cls), dataclasses.asdict(cls())
        for f in fields(cls):
            lines += [f"  {f.name} = {_as_yaml(defaults[f.name])}", f"      {helps[f.name]}"]
    return "\n".join(lines)
