#!/usr/bin/env bash
# The device checks of one session on a lent GPU, in one call (docs/BENCHMARKS.md records their figures):
#   the device; bench/throughput.py on the gpu and default presets' model sizes; the README's default run with
#   the device picked by run.device=auto; the Hugging Face world at Pythia-160m's shape (bench/gpu/hf_world.py).
# Run from the repository root on a machine with CUDA PyTorch and transformers: bash bench/gpu/session.sh
# Logs go to $OUT (or /tmp/overopt-gpu); each step has its own time limit, so one slow step leaves the rest.
set -uo pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
O="${OUT:-/tmp/overopt-gpu}"; mkdir -p "$O"
PY="${PYTHON:-python3}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} 2>&1 | tee "$O/device.txt"
step() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$O/$name.log" 2>&1
  echo "== $name: exit $? after $((SECONDS - t0)) s"; grep -v "it/s\]\|Loading weights\|Writing model" "$O/$name.log" | tail -8
}
step throughput_gpu 120 "$PY" bench/throughput.py --preset gpu
step throughput_default 60 "$PY" bench/throughput.py --preset default --batch 2048
step default_run 250 "$PY" -m overopt.cli run --preset default --out /tmp/overopt-default --quiet \
  --set run.cache_dir=/tmp/overopt-cache
cp /tmp/overopt-default/manifest.json "$O/default_manifest.json" 2>/dev/null
cp /tmp/overopt-default/claims.csv "$O/default_claims.csv" 2>/dev/null
step hf_world 150 "$PY" bench/gpu/hf_world.py --out /tmp/overopt-hf
