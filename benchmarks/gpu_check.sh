#!/usr/bin/env bash
# The one-shot GPU check's device command (benchmarks/gpu_check.py), as the device tool's `run` takes it:
#   command "bash benchmarks/gpu_check.sh", carry [".whl", "gpu_data"], timeout_s 600
# after `python benchmarks/gpu_check_data.py` here (the data, the wheels, the commit stamp). It installs
# the carried wheels (hydra-core, omegaconf, antlr4: the GPU machine lacks them) into /tmp/site and runs
# the check; the JSON, the Markdown rows and the log go to $OUT (elsewhere: outputs/gpu_check/).
# Extra arguments go to gpu_check.py (e.g. --parts throughput).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
exec python3 benchmarks/gpu_check.py --data gpu_data --out "${OUT:-outputs/gpu_check}" "$@"
