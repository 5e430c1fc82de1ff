#!/usr/bin/env bash
# The GPU work of a session that is lent a GPU machine (the `device` tool), prepared so it runs in few, full calls.
#
# Here (this machine), once:   bash tools/gpu_session.sh wheels
#   downloads the one package the device image lacks (fastcore; it has torch, numpy, scipy, scikit-learn, pandas,
#   statsmodels, tqdm, joblib, matplotlib, seaborn, h5py, safetensors) into .whl/ (ignored by git).
# On the device, each call (carry [".whl"], timeout_s 600):   bash tools/gpu_session.sh STEP
# in this order of priority (30 minutes of device time do not cover them all: the study alone needs ~25 minutes on
# one warm machine, so a session that has run the others leaves it to the next):
#   bench     bench/fleet_throughput.py on CUDA: images/s one at a time vs fleets, data rates, % of peak, and the
#             K = 64 fleet in bf16 (~4 min)
#   checks    tools/cuda_checks.py: members equal train on CUDA (fp32, bf16, CUDA graphs); where a stacked phase
#             waits for the device; the study's own path (a run and a fleet trained, measured, written) (~7 min)
#   compiled  the benchmark's K = 8 and 64 fleets compiled, default mode and reduce-overhead (CUDA graphs), fp32
#             and bf16: which of them pays (~8 min; compiling dominates)
#   plan      `vaecausal study --preset gpu --fleet auto --plan`: the time the gpu preset would take there (~2 min)
#   dci       bench/dci_pool.py on the machine's CPU cores: 8 members' DCI one after another vs in one pool, as a
#             worker of the gpu study fits them (CPU only, ~3 min: run it last, or on a warm machine's spare minutes)
#   study     the gpu preset in a call of at most 8 minutes (--time-limit 480; exit 3 = call again to go on),
#             then results.csv and report.md into $OUT (a study continues only on the machine that holds its
#             root: a fresh machine starts it again, so run the study calls back to back on one warm machine)
# Every step writes its log and results under $OUT (at most 8 files come back).
set -euo pipefail
step=${1:?usage: tools/gpu_session.sh wheels|bench|checks|compiled|plan|dci|study}
if [ "$step" = wheels ]; then
  mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform any -d .whl "fastcore>=1.8,<2"
  ls .whl; exit 0
fi
OUT=${OUT:?run this on the device machine, where OUT is set}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
vaecausal() { python3 -c 'import sys; from vaecausal_nb.cli import main; sys.exit(main())' "$@"; }
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU") | tee "$OUT/device.txt"
case "$step" in
  plan)  vaecausal study --preset gpu --fleet auto --workers 4 --plan 2>&1 | tee "$OUT/plan.txt" ;;
  dci)   python3 bench/dci_pool.py --members 8 --jobs 4 2>&1 | tee "$OUT/dci_pool.txt" ;;
  checks) python3 tools/cuda_checks.py 2>&1 | tee "$OUT/cuda_checks.txt" ;;
  compiled) for c in "" reduce-overhead; do for p in "" --bf16; do
              python3 bench/fleet_throughput.py --device cuda --compile $c $p --ks 8,64 --modes stacked --no-rgb \
                2>&1 | tee -a "$OUT/compiled.txt" || true; done; done ;;
  bench) python3 bench/fleet_throughput.py --device cuda 2>&1 | tee "$OUT/fleet_throughput.txt"
         python3 bench/fleet_throughput.py --device cuda --bf16 --ks 64 --modes stacked 2>&1 | tee "$OUT/bf16.txt" ;;
  study) rc=0; vaecausal study --preset gpu --fleet auto --workers 4 --time-limit 480 --out /tmp/gpu_study \
           --no-progress 2>&1 | tee "$OUT/study.txt" || rc=$?
         [ -f /tmp/gpu_study/results.csv ] && cp /tmp/gpu_study/results.csv "$OUT/"
         [ -f /tmp/gpu_study/report.md ] && cp /tmp/gpu_study/report.md "$OUT/"
         echo "exit status $rc (3: unfinished, call again)" | tee -a "$OUT/study.txt" ;;
  *) echo "unknown step $step"; exit 2 ;;
esac
