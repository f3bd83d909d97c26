"""The Hugging Face world: the toy world's interface over real checkpoints.

    hf:
      policy: runs/sft-pythia-160m          # pi0: any causal LM (folder or hub name)
      gold: models/gold-rm                  # a sequence classifier, or "my_pkg.gold:score"
      proxies: [models/pythia-14m, models/pythia-70m, models/pythia-160m]
      prompts: data/prompts.jsonl           # .jsonl / .json / .csv / .parquet, or a datasets.save_to_disk folder

Prompts are wrapped in the tokenizer's chat template (when it has one), tokenized and left-padded to one length.
Responses are token ids right-padded after the end token, exactly as in the toy world, so sampling, KL, reward
models, best-of-n, RL and direct alignment run unchanged. Gold reads decoded text.

Loading is safe by default: ``trust_remote_code`` is off unless the config turns it on, weights come from
safetensors where the folder has them and otherwise through ``torch.load(weights_only=True)`` (transformers'
default, asked for explicitly here), and nothing in a config is executed. The one exception is a gold callable
named by import path, which is the user's own code by construction.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import zlib
from pathlib import Path

import numpy as np
import torch

from ..config import fingerprint
from ..errors import HFWorldError
from ..streams import stream_rng

# what a loader raises on a checkpoint it cannot read: anything. A missing or garbled file, a bad config value, and
# weights that are not a weights file, on which torch's weights-only unpickler raises UnpicklingError, RuntimeError
# or even IndexError (it never runs their code): each is one line naming the checkpoint
LOAD_ERRORS = (Exception,)


# ---------------------------------------------------------------- loading

def _safe_kwargs(path: str, hcfg) -> dict:
    """from_pretrained arguments that never run checkpoint code or unpickle arbitrary objects."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # overopt draws its own bars; a loader's would interleave with them
    kw = {"trust_remote_code": bool(hcfg.trust_remote_code)}
    p = Path(path)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise HFWorldError(f"{path}: not a model folder (no config.json)")
        if any(p.glob("*.safetensors")) or any(p.glob("*.safetensors.index.json")):
            kw["use_safetensors"] = True
    return kw


def _check_remote_code(path: str, hcfg, key: str) -> None:
    """Refuse a path that looks local and is missing (rather than let it be read as a hub name), and, with the
    config key to change, a checkpoint whose config asks for its own code."""
    p = Path(path).expanduser()
    local = str(path).startswith(("/", "./", "../", "~")) or len(p.parts) > 2 or \
        (len(p.parts) == 2 and Path(p.parts[0]).is_dir())  # "runs/pi0" beside a runs/ folder is no hub name
    if local and not p.exists():
        raise HFWorldError(f"{key}: {path} does not exist")
    cfg_file = Path(path) / "config.json"
    if not hcfg.trust_remote_code and cfg_file.is_file():
        try:
            auto_map = json.loads(cfg_file.read_text()).get("auto_map")
        except json.JSONDecodeError:
            raise HFWorldError(f"{cfg_file}: not valid JSON")
        if auto_map:
            raise HFWorldError(f"{path} ships its own modelling code (auto_map in config.json); set "
                               "hf.trust_remote_code: true only if you trust it")


def model_dtype(hcfg, device: torch.device, frozen: bool) -> torch.dtype:
    """Frozen models (the reference policy, gold) in bfloat16 on CUDA under 'auto'; trained ones in float32."""
    named = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if hcfg.dtype != "auto":
        return named[hcfg.dtype]
    return torch.bfloat16 if frozen and device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def load_tokenizer(path: str, hcfg):
    from transformers import AutoTokenizer

    p = Path(path)
    if p.is_dir() and not ((p / "tokenizer_config.json").is_file() or (p / "tokenizer.json").is_file()):
        raise HFWorldError(f"hf.policy: {path}: not a model folder with a tokenizer (no tokenizer.json or "
                           "tokenizer_config.json)")
    _check_remote_code(path, hcfg, "hf.policy")
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=bool(hcfg.trust_remote_code))
    except LOAD_ERRORS as e:
        raise HFWorldError(f"hf.policy: cannot load a tokenizer from {path}: {str(e).splitlines()[0]}")
    if tok.eos_token_id is None:
        raise HFWorldError(f"hf.policy: the tokenizer of {path} has no end-of-sequence token")
    return tok


def load_causal_lm(path: str, hcfg, device, dtype=torch.float32, key: str = "hf.policy"):
    from transformers import AutoModelForCausalLM

    _check_remote_code(path, hcfg, key)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **_safe_kwargs(path, hcfg))
    except LOAD_ERRORS as e:
        raise HFWorldError(f"{key}: cannot load a causal LM from {path}: {str(e).splitlines()[0]}")
    return model.to(device).eval()


def load_backbone(path: str, hcfg, device, key: str = "hf.proxies"):
    """The base model of a checkpoint (a causal LM's trunk, or a base model), float32, for a reward model."""
    from transformers import AutoModel

    _check_remote_code(path, hcfg, key)
    try:
        model = AutoModel.from_pretrained(path, dtype=torch.float32, **_safe_kwargs(path, hcfg))
    except LOAD_ERRORS as e:
        raise HFWorldError(f"{key}: cannot load {path}: {str(e).splitlines()[0]}")
    return model.to(device)


def read_prompts(path: str, field: str, limit: int = 0) -> list[str]:
    """Prompts from a JSONL/JSON/CSV/Parquet file or a datasets.save_to_disk folder, column ``field``."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise HFWorldError(f"hf.prompts: {path} does not exist")
    try:
        if p.is_dir():
            try:
                from datasets import load_from_disk
            except ImportError:
                raise HFWorldError(f"hf.prompts: {path} is a folder; reading a saved dataset needs the datasets "
                                   "package (pip install datasets)")
            ds = load_from_disk(str(p))
            if hasattr(ds, "keys"):  # a DatasetDict: take its first split
                ds = ds[next(iter(ds.keys()))]
            df = ds.to_pandas()
        elif p.suffix == ".jsonl":
            df = pd.read_json(p, lines=True)
        elif p.suffix == ".json":
            df = pd.read_json(p)
        elif p.suffix == ".csv":
            df = pd.read_csv(p)
        elif p.suffix == ".parquet":
            df = pd.read_parquet(p)
        else:
            raise HFWorldError(f"hf.prompts: {path} must be .jsonl, .json, .csv, .parquet or a saved dataset folder")
    except (ValueError, OSError) as e:
        if isinstance(e, HFWorldError):
            raise
        raise HFWorldError(f"hf.prompts: cannot read {path}: {str(e).splitlines()[0]}")
    if field not in df.columns:
        raise HFWorldError(f"hf.prompts: {path} has no column '{field}' (columns: {', '.join(map(str, df.columns))}); "
                           "set hf.prompt_field")
    prompts = [str(x) for x in df[field].tolist() if isinstance(x, str) and x.strip()]
    if not prompts:
        raise HFWorldError(f"hf.prompts: {path} has no non-empty prompts in column '{field}'")
    return prompts[:limit] if limit else prompts


def load_gold(spec: str, hcfg, device):
    """gold(prompts, responses) -> np.ndarray: a sequence classifier (one logit, or two: the second minus the
    first, e.g. positive minus negative) or a callable named 'module:function'."""
    if ":" in spec and not Path(spec).exists():
        mod, _, fn = spec.partition(":")
        try:
            f = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise HFWorldError(f"hf.gold: cannot import {spec}: {e}")
        if not callable(f):
            raise HFWorldError(f"hf.gold: {spec} is not callable")
        return lambda prompts, responses: np.asarray(f(prompts, responses), dtype=np.float64)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _check_remote_code(spec, hcfg, "hf.gold")
    try:
        tok = AutoTokenizer.from_pretrained(spec, trust_remote_code=bool(hcfg.trust_remote_code))
        model = AutoModelForSequenceClassification.from_pretrained(
            spec, dtype=model_dtype(hcfg, device, frozen=True), **_safe_kwargs(spec, hcfg)).to(device).eval()
    except LOAD_ERRORS as e:
        raise HFWorldError(f"hf.gold: cannot load a sequence classifier from {spec}: {str(e).splitlines()[0]}")
    if model.config.num_labels not in (1, 2):
        raise HFWorldError(f"hf.gold: {spec} has {model.config.num_labels} labels; a gold model needs 1 (a score) "
                           "or 2 (the second minus the first is the score)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
        model.config.pad_token_id = tok.pad_token_id
    max_len = min(int(getattr(tok, "model_max_length", 2048) or 2048), 4096)

    @torch.no_grad()
    def gold(prompts: list[str], responses: list[str]) -> np.ndarray:
        texts = [p + r for p, r in zip(prompts, responses)] if hcfg.gold_input == "prompt+response" else responses
        out = []
        for i in range(0, len(texts), hcfg.gold_batch):
            enc = tok(texts[i:i + hcfg.gold_batch], return_tensors="pt", padding=True, truncation=True,
                      max_length=max_len).to(device)
            logits = model(**enc).logits.float()
            out.append((logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0]).cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    return gold


# ---------------------------------------------------------------- the world

class HFWorld:
    """Prompts, tokenizer and gold of a Hugging Face run, with the toy world's interface: ``prompt_ids``
    [n_prompts, prompt_len] left-padded, ``train_prompt_idx``/``eval_prompt_idx``, ``gold(prompt_idx, resp,
    gcfg, norm)``, ``decode``, ``prompt_text``, ``eos`` and ``pad``."""

    kind = "hf"
    dims: tuple[str, ...] = ()  # gold is one score: no named dimensions, no gold_<dimension> columns

    def __init__(self, hcfg, max_new_tokens: int, seed: int, device, cache=None):
        self.hcfg, self.device, self.cache = hcfg, device, cache
        self.tok = load_tokenizer(hcfg.policy, hcfg)
        self.eos = int(self.tok.eos_token_id)
        self.pad = int(self.tok.pad_token_id) if self.tok.pad_token_id is not None else self.eos
        self.texts = read_prompts(hcfg.prompts, hcfg.prompt_field, hcfg.max_prompts)
        if len(self.texts) < hcfg.eval_prompts + 2:
            raise HFWorldError(f"hf.prompts: {len(self.texts)} prompts; hf.eval_prompts={hcfg.eval_prompts} "
                               "needs at least 2 more for training")
        use_chat = hcfg.chat_template == "on" or (hcfg.chat_template == "auto" and getattr(self.tok, "chat_template",
                                                                                            None))
        if hcfg.chat_template == "on" and not getattr(self.tok, "chat_template", None):
            raise HFWorldError(f"hf.chat_template: on, but the tokenizer of {hcfg.policy} has no chat template")
        ids = []
        for t in self.texts:
            if use_chat:
                x = self.tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                                 tokenize=True)
                x = x["input_ids"] if hasattr(x, "keys") else x
            else:
                x = self.tok(t, add_special_tokens=True)["input_ids"]
            ids.append(list(x)[-hcfg.max_prompt_tokens:])
        self.prompt_len = max(len(x) for x in ids)
        self.prompt_ids = np.full((len(ids), self.prompt_len), self.pad, dtype=np.int64)
        for i, x in enumerate(ids):
            self.prompt_ids[i, self.prompt_len - len(x):] = x
        order = stream_rng(seed, "world.prompt_split").permutation(len(ids))
        self.eval_prompt_idx = np.sort(order[: hcfg.eval_prompts])
        self.train_prompt_idx = np.sort(order[hcfg.eval_prompts:])
        self.max_new_tokens = max_new_tokens  # world.max_new_tokens: a sequence is prompt_len + this at most
        self._gold = None

    def check_fits(self, model, key: str) -> None:
        """Refuse a model whose position table is shorter than the longest prompt plus response."""
        n = getattr(model.config, "max_position_embeddings", None)
        if n is not None and self.prompt_len + self.max_new_tokens > n:
            raise HFWorldError(f"{key}: prompts of up to {self.prompt_len} tokens plus world.max_new_tokens="
                               f"{self.max_new_tokens} exceed the model's {n} positions; lower hf.max_prompt_tokens "
                               "or world.max_new_tokens")

    def __getstate__(self):  # a world is rebuilt from its config, never pickled with its models
        raise TypeError("HFWorld is not cached; rebuild it from the config")

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if self.eos in ids:
            ids = ids[: ids.index(self.eos)]
        return self.tok.decode([i for i in ids if i != self.pad], skip_special_tokens=True)

    def prompt_text(self, idx: int) -> str:
        return self.texts[int(idx)]

    def gold_fn(self):
        if self._gold is None:
            self._gold = load_gold(self.hcfg.gold, self.hcfg, self.device)
        return self._gold

    def gold(self, prompt_idx, resp, gcfg=None, norm: tuple[float, float] | None = None
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Gold of responses [M, T] (ids, end token then padding), cached on disk by content. Dimensions: the
        toy world's are NaN; n_words counts whitespace-separated words of the decoded response."""
        prompt_idx, resp = np.asarray(prompt_idx), np.asarray(resp)
        texts = [self.decode(r) for r in resp]
        key = None
        if self.cache is not None:
            h = hashlib.sha256(np.ascontiguousarray(prompt_idx.astype(np.int64)).tobytes())
            h.update(np.ascontiguousarray(resp.astype(np.int64)).tobytes())
            h.update(f"{self.hcfg.gold}|{self.hcfg.gold_input}|{fingerprint(self.hcfg)}".encode())
            key = h.hexdigest()[:24]
        raw = self.cache.get("gold", key) if key else None
        if raw is None:
            raw = self.gold_fn()([self.texts[int(i)] for i in prompt_idx], texts)
            if len(raw) != len(texts) or not np.all(np.isfinite(raw)):
                raise HFWorldError(f"hf.gold: {self.hcfg.gold} returned {len(raw)} values for {len(texts)} responses "
                                   "or a non-finite one")
            if key:
                self.cache.put("gold", key, raw)
        n_words = np.array([len(t.split()) for t in texts])
        dims = {"n_words": n_words}  # a Hugging Face gold has no named dimensions (`dims` is empty)
        total = raw if norm is None else (raw - norm[0]) / norm[1]
        return np.asarray(total, dtype=np.float64), dims


def name_seed(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF

