#!/usr/bin/env bash
# The GPU training suite: step-only vs end-to-end samples/s for every method, one script.
#
#   benchmarks/gpu_suite.sh                       # on a CUDA machine: writes benchmarks/results/gpu.md
#   benchmarks/gpu_suite.sh --device cpu --tiny   # everything small on the CPU (the test runs this)
#
# Sized to finish in about 8 minutes on one H100-class GPU with 16 CPU cores: 512 SynthAV
# clips (made, extracted with each method's profile and packed first), 224 px, the papers'
# batch sizes, 8 loader workers. Other options go to benchmarks/gpu_suite.py (--help).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
exec "$python" "$here/gpu_suite.py" "$@"
