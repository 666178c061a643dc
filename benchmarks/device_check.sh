#!/usr/bin/env bash
# One-command accelerator check: writes one JSON object (default ./device_check.json, or $1).
#
#   bash benchmarks/device_check.sh [OUT.json]
#
# Needs jaxmu installed with the accelerator's jax (e.g. pip install -e '.[cuda,bench]'; PyTorch
# is optional and compared when it imports). Steps, each under its own time limit so the
# whole check ends in under 8 minutes on one GPU; a step that fails or runs out of time is
# recorded with its exit status and output tail instead of stopping the check:
#   1. train_step: small CNNs (28x28x1, batch 256) and ResNet18 (32x32x3, batch 64 and 256),
#      jaxmu in scan / lax.map / Python loop vs PyTorch eager (CUDA when available);
#   2. population strategies (vmap / chunked / sequential / Python loop) at M = 8 and 64 for
#      the small CNN and M = 8 for ResNet18, on CIFAR-shaped synthetic data;
#   3. the 512+512 F-score pipeline (small CNN, CIFAR-shaped synthetic data, 2 epochs).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:-device_check.json}
py=${PYTHON:-python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() {  # name, limit in seconds, command...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  echo "$? $((SECONDS - t0))" >"$tmp/$name.rc"
  echo "device_check: $name done (exit $(cut -d' ' -f1 "$tmp/$name.rc"), $((SECONDS - t0)) s)" >&2
}

step train_step 170 "$py" -m benchmarks.train_step --quick --json --repeats 3 \
  --settings small_cnn_16_32,small_cnn_32_64_128,resnet18_b64,resnet18_b256
step population_small_cnn 80 "$py" -m benchmarks.population --quick --json --repeats 3 \
  --data synthetic-cifar --models small_cnn --sizes 8,64
step population_resnet18 50 "$py" -m benchmarks.population --quick --json --repeats 3 \
  --data synthetic-cifar --models resnet18 --sizes 8
step fscore_pipeline 110 "$py" -m benchmarks.fscore_pipeline --json --data synthetic-cifar \
  --models 512 --epochs 2

"$py" - "$tmp" "$out" <<'PY'
import json, os, sys
tmp, out = sys.argv[1], sys.argv[2]
res = {"benchmark": "device_check", "steps": {}}
for name in ("train_step", "population_small_cnn", "population_resnet18", "fscore_pipeline"):
    rc, secs = open(f"{tmp}/{name}.rc").read().split()
    entry = {"exit": int(rc), "wall_s": int(secs)}
    lines = open(f"{tmp}/{name}.out").read().strip().splitlines()
    try:
        entry["result"] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        entry["result"] = None
        entry["stderr_tail"] = open(f"{tmp}/{name}.err").read()[-2000:]
    res["steps"][name] = entry
try:
    import jax
    res["devices"] = [str(d) for d in jax.devices()]
    res["backend"] = jax.default_backend()
except Exception as e:  # noqa: BLE001
    res["devices"] = f"jax failed: {e}"
tmp_out = out + ".tmp"
with open(tmp_out, "w") as f:
    json.dump(res, f, indent=1)
os.replace(tmp_out, out)
print(json.dumps({k: (v["exit"], v["wall_s"]) for k, v in res["steps"].items()}))
PY
