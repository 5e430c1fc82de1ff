#!/usr/bin/env bash
# The GPU work of a session that is lent a GPU machine (the `device` tool), prepared so one call cannot waste the loan.
#
# THE CALL (a lent session's first device call: with the machine's start it takes about 11 of a loan's 15 minutes;
# a second call fits only on the still-warm machine, with a smaller budget, e.g. GPU_SESSION_SECONDS=120 ... all):
#   1. here, before it:   bash tools/gpu_session.sh wheels
#      builds .whl/ (git ignores it, so it travels only when carried): a wheel of each package the steps import that
#      the device image lacks (NEED below: fastcore, and LightGBM for the fast DCI, a py3-none-manylinux build;
#      ipywidgets, the only other requirement it lacks, serves the widgets alone), from this checkout's .venv, so
#      neither machine needs a registry. tests/test_gpu_script.py checks
#      that with these wheels every module the steps import imports where only the image's packages are.
#   2. the device tool's `run` with
#        command:    bash tools/gpu_session.sh all
#        carry:      [".whl"]
#        timeout_s:  600
#      `all` takes at most 9 minutes of wall time (GPU_SESSION_SECONDS=540), each step capped, in this order:
#        preflight  90 s   installs the wheels into /tmp/site; GPU name, torch/CUDA/cuDNN versions, free memory, TF32
#                          defaults; every module the later steps import; a C compiler and Python.h for torch.compile
#                          and a tiny compiled function in a child process (at most 40 s; else every compiled step is
#                          skipped, with a line saying so). No GPU or an import missing: the session stops there.
#        checks     240 s  tools/cuda_checks.py --quick: to_device; the device waits of a stacked phase (set-up, steps,
#                          looks, write-back apart); members vs train in fp32 (TF32 off), 7 architectures; the study's
#                          path (a run, a fleet of two, small metric sizes); bf16 for three architectures; CUDA graphs
#                          (last: compiling takes minutes, and the cap may cut it)
#        bench      100 s  bench/fleet_throughput.py trimmed: K = 1, 8, 64, stacked against one at a time, 30 steps
#        study      rest   (at least 70 s) a slice of the gpu preset (vae on dSprites, 3 seeds in one fleet, 500
#                          steps, a 300-step probe) under --time-limit; exit 3 (unfinished): its log says how far it got
#        results    40 s   the study's finished rows and report, exported apart (a study cut at its cap loses nothing)
#      Every step writes into $OUT as it goes (at most 8 files come back): preflight.txt, checks.txt, bench.txt,
#      study.txt, results.txt, results.csv and report.md (the study's, when it wrote them) and summary.json (each finished step's
#      status, exit code and seconds, rewritten after each step). A kill at the limit keeps all written before it.
#   3. commit what came back, naming the device; give the machine back unless rerunning at once.
#
# Single steps, one call each (same carry, timeout_s 600; the longer ones need a loan of their own):
#   preflight  as in `all`
#   checks     tools/cuda_checks.py, the full set (all architectures in bf16, check 5's fleet 6,000 steps) (~7 min)
#   bench      bench/fleet_throughput.py on CUDA: K = 1, 8, 32, 64 and the largest that fits, then K = 64 in bf16
#              (~4 min)
#   compiled   the benchmark's K = 8 and 64 fleets compiled, default mode and reduce-overhead, fp32 and bf16 (~8 min)
#   plan       `vaecausal study --preset gpu --fleet auto --plan`: the time the gpu preset would take there (~2 min)
#   dci        bench/dci_pool.py on the machine's CPU cores (CPU only, ~3 min)
#   measure    bench/fleet_measure.py: a fleet's codes and latent sweep stacked against one member at a time, K = 1,
#              8, 32, 256 causal images on Shapes3D (~2 min)
#   study      the gpu preset in a call of at most 8 minutes (--time-limit 480; exit 3 = call again to go on); the rows
#              earlier loans brought back and the repo holds (GPU_ROWS, nbs/findings/data/gpu_results.csv) are imported
#              first (`vaecausal study --import`), so a fresh machine trains only the runs not yet finished: commit
#              $OUT/results.csv there after each loan
# A dry run on the CPU (tests/test_gpu_script.py runs it): OUT=$(mktemp -d) bash tools/gpu_session.sh all --device cpu
#   (tiny sizes; what needs CUDA says it is skipped).
# Environment: PYTHON (python3), PIP ("$PYTHON -m pip"), SITE (/tmp/site), WHEELS (.whl), GPU_ROWS, GPU_SESSION_WORK
#   (/tmp/gpu_session: the study's root), GPU_SESSION_SECONDS (540), GPU_SESSION_SCALE (1: every step's cap is
#   multiplied by it; tests/test_gpu_script.py's dry run uses 10 with GPU_SESSION_SECONDS=5400, so that how busy the
#   CPU is cannot decide its outcome).
set -uo pipefail
usage='usage: tools/gpu_session.sh wheels|all|preflight|checks|bench|compiled|plan|dci|measure|study|results [--device cuda|cpu]'
step=${1:?$usage}; shift
device=cuda; raw=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=${2:?$usage}; shift 2 ;;
    --raw) raw=1; shift ;;           # internal: run the step's body, printing to stdout (its caller keeps the log)
    *) echo "$usage"; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
NEED="fastcore lightgbm"   # settings.ini's requirements that the device image lacks and the steps import

if [ "$step" = wheels ]; then
  build=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
  mkdir -p "$WHEELS"
  "$build" - "$WHEELS" $NEED <<'EOF'
"""A wheel of each named distribution, made from its installed files, into the folder: pure-Python ones, and ones
built for any Python on this platform (a `py3-none-<platform>` tag: LightGBM, a C library loaded with ctypes)."""
import base64, csv, glob, hashlib, io, os, sys, zipfile
from importlib import metadata
out, names = sys.argv[1], sys.argv[2:]
for name in names:
    d = metadata.distribution(name)
    wheel = d.read_text('WHEEL') or ''
    tags = [t.split(':', 1)[1].strip() for t in wheel.splitlines() if t.startswith('Tag:')]
    tag = 'py3-none-any' if 'Root-Is-Purelib: true' in wheel else '.'.join(
        sorted({t.split('-')[2] for t in tags if t.startswith('py3-none-') and t.endswith('x86_64')}))
    if not tag: sys.exit(f'{name} {d.version} is built for one Python ({", ".join(tags)}): carry a wheel built for the '
                         'device instead')
    tag = tag if tag == 'py3-none-any' else f'py3-none-{tag}'
    info = next(str(f.parent) for f in d.files if f.name == 'METADATA' and str(f.parent).endswith('.dist-info'))
    dist = info[:-len(f'-{d.version}.dist-info')]
    for old in glob.glob(os.path.join(out, f'{dist}-*.whl')): os.remove(old)      # one version of each
    path, rows, when = os.path.join(out, f'{dist}-{d.version}-{tag}.whl'), [], (1980, 1, 1, 0, 0, 0)
    with zipfile.ZipFile(path + '.part', 'w') as z:
        for f in sorted(d.files, key=str):
            p = str(f).replace(os.sep, '/')
            if p.startswith('..') or '__pycache__' in p or p.endswith('.pyc') or p.startswith(info + '/') and \
               p.rsplit('/', 1)[-1] in ('RECORD', 'INSTALLER', 'REQUESTED', 'direct_url.json'): continue
            data = f.locate().read_bytes()
            z.writestr(zipfile.ZipInfo(p, when), data, compress_type=zipfile.ZIP_DEFLATED)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
            rows.append((p, f'sha256={digest}', len(data)))
        record = io.StringIO()
        csv.writer(record, lineterminator='\n').writerows(rows + [(f'{info}/RECORD', '', '')])
        z.writestr(zipfile.ZipInfo(f'{info}/RECORD', when), record.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
    os.replace(path + '.part', path)
    print(f'{path}: {name} {d.version}, {len(rows)} files')
EOF
  exit $?
fi

OUT=${OUT:?run this on the device machine, where OUT is set (or set OUT for a dry run)}
WORK=${GPU_SESSION_WORK:-/tmp/gpu_session}
mkdir -p "$WORK"
if [ "${GPU_SESSION_SITE_READY:-0}" != 1 ]; then            # once per call: the carried wheels, then the paths
  SITE=${SITE:-/tmp/site}
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    if ${PIP:-$PY -m pip} install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
         "$WHEELS"/*.whl > "$WORK/wheels.txt" 2>&1
    then echo "wheels installed into $SITE: $(cd "$WHEELS" && ls -- *.whl | tr '\n' ' ')" >> "$WORK/wheels.txt"
    else echo "installing the wheels of $WHEELS failed (above)" >> "$WORK/wheels.txt"; fi
  else echo "no wheels in $WHEELS: run 'bash tools/gpu_session.sh wheels' before the call, and carry $WHEELS" \
         > "$WORK/wheels.txt"; fi
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GPU_SESSION_SITE_READY=1
fi
VC=("$PY" -c 'import sys; from vaecausal_nb.cli import main; sys.exit(main())')      # the `vaecausal` command
cpu=$([ "$device" = cpu ] && echo 1 || echo 0)

body() {    # the step's work, printing to stdout
  case "$1" in
    preflight)
      cat "$WORK/wheels.txt"
      if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader 2>&1 \
          | sed 's/^/nvidia-smi: /'
      else echo "nvidia-smi: not on the PATH"; fi
      "$PY" tools/cuda_checks.py --preflight --device "$device" ;;
    checks) "$PY" tools/cuda_checks.py --device "$device" ;;
    checks-quick) "$PY" tools/cuda_checks.py --device "$device" --quick ;;
    bench) "$PY" bench/fleet_throughput.py --device "$device" && \
           "$PY" bench/fleet_throughput.py --device "$device" --bf16 --ks 64 --modes stacked ;;
    bench-trimmed)
      if [ "$cpu" = 1 ]; then
        "$PY" bench/fleet_throughput.py --device cpu --ks 1,2 --modes stacked --steps 1 --warm 1 --rounds 1 --batch 8 \
          --no-rgb --resident no --data-seconds 0.2
      else "$PY" bench/fleet_throughput.py --device cuda --ks 1,8,64 --modes stacked --steps 30 --rounds 2 --no-rgb
      fi ;;
    compiled)
      "$PY" -c 'import sys; sys.path.insert(0, "tools"); from cuda_checks import compile_ready as c; ok, why = c()
print("compile:", why); sys.exit(0 if ok else 3)' || exit 0
      for c in "" reduce-overhead; do for p in "" --bf16; do
        "$PY" bench/fleet_throughput.py --device "$device" --compile $c $p --ks 8,64 --modes stacked --no-rgb || true
      done; done ;;
    plan) "${VC[@]}" study --preset gpu --fleet auto --workers 4 --plan ;;
    dci) "$PY" bench/dci_pool.py --members 8 --jobs 4 ;;
    measure) "$PY" bench/fleet_measure.py --device "$device" --ks 1 8 32 --images 256 --dataset shapes3d ;;
    study|study-slice)
      local limit=$(( ${STEP_CAP:-480} - 40 )) args
      if [ "$cpu" = 1 ]; then        # the dry run: a tiny spec, the study's own path
        "$PY" -c 'import json, sys; sys.path.insert(0, "tools"); from cuda_checks import tiny_spec
json.dump(tiny_spec(archs=("beta_vae",), seeds=(0, 1)).to_dict(), open(sys.argv[1], "w"))' "$WORK/spec.json" || return 1
        args=(--spec "$WORK/spec.json" --workers 1)
      elif [ "$1" = study ]; then args=(--preset gpu --workers 4)
        local rows=${GPU_ROWS:-nbs/findings/data/gpu_results.csv}
        if [ -f "$rows" ]; then args+=(--import "$rows"); echo "importing the finished rows of $rows"; fi
      else                           # a slice that can finish runs in the time left: vae on dSprites, short
        "$PY" -c 'import json, sys; from vaecausal_nb.study import preset
s = preset("gpu", archs=("vae",), datasets=("dsprites",), steps=500, probe_steps=300, extra_latent_dims={}, sweep={})
json.dump(s.to_dict(), open(sys.argv[1], "w"))' "$WORK/spec.json" || return 1
        args=(--spec "$WORK/spec.json" --workers 2)
      fi
      [ "$1" = study ] && limit=$(( ${STEP_CAP:-540} - 60 ))
      local rc=0
      "${VC[@]}" study "${args[@]}" --fleet auto --time-limit "$limit" --out "$WORK/study" --no-progress --no-report \
        || rc=$?
      echo "study exit status $rc (3: unfinished, call again to go on)"
      [ "$1" = study ] && body results
      [ "$rc" = 0 ] || [ "$rc" = 3 ] ;;
    results)     # the finished rows, then the report (apart: a report that fails does not lose the rows)
      [ -d "$WORK/study" ] || { echo "no study root at $WORK/study: nothing to export"; return 0; }
      "$PY" -c 'import sys; from vaecausal_nb.study import load_results as l; d = l(sys.argv[1])
d.to_csv(sys.argv[2], index=False); print(f"{len(d)} finished rows in {sys.argv[2]}")' "$WORK/study" "$OUT/results.csv"
      "${VC[@]}" report "$WORK/study" && cp "$WORK/study/report.md" "$OUT/report.md" \
        || echo "the report failed (above); the rows are in results.csv" ;;
    *) echo "$usage"; return 2 ;;
  esac
}

if [ "$raw" = 1 ]; then body "$step"; exit $?; fi

start=$(date +%s); budget=${GPU_SESSION_SECONDS:-540}; done_steps=(); stop=""
SCALE=${GPU_SESSION_SCALE:-1}      # every step's cap times this (the dry run under test: its seconds depend on the load)
json_str() { printf '"%s"' "$(printf '%s' "$1" | tr -d '"\\' | tr '\n\t' '  ')"; }
write_summary() {
  local IFS=,
  { printf '{"device": %s, "device_name": %s, "started": %s, "budget_s": %s, "steps": [%s]}\n' "$(json_str "$device")" \
      "$(json_str "${device_name:-}")" "$(json_str "$(date -u -d "@$start" +%FT%TZ)")" "$budget" "${done_steps[*]}"
  } > "$OUT/summary.json.part" && mv "$OUT/summary.json.part" "$OUT/summary.json"
}
record() {  # name, status, rc, seconds, cap
  done_steps+=("{\"name\": $(json_str "$1"), \"status\": $(json_str "$2"), \"rc\": $3, \"seconds\": $4, \"cap_s\": $5}")
  write_summary
}
run_step() {   # name in $OUT, body, cap in seconds (0: all that is left)
  local name=$1 what=$2 cap=$(( $3 * SCALE )) rest rc t0
  rest=$(( budget - ($(date +%s) - start) - 5 ))
  if [ "$cap" -eq 0 ] || [ "$cap" -gt "$rest" ]; then cap=$rest; fi
  if [ -n "$stop" ]; then
    echo "== $name: skipped ($stop)" | tee -a "$OUT/$name.txt"; record "$name" skipped 0 0 0; return
  fi
  if [ "$cap" -lt 30 ]; then
    echo "== $name: skipped ($rest s left)" | tee -a "$OUT/$name.txt"; record "$name" skipped 0 0 0; return
  fi
  echo "== $name: at most $cap s, $(( $(date +%s) - start )) s into the session ($(date -u +%T) UTC)" \
    | tee "$OUT/$name.txt"
  t0=$(date +%s)
  STEP_CAP=$cap timeout --kill-after=15 "$cap" bash "$0" "$what" --device "$device" --raw 2>&1 | tee -a "$OUT/$name.txt"
  rc=${PIPESTATUS[0]}
  local status=ok
  case "$rc" in 0) ;; 124|137) status="timed out" ;; *) status=failed ;; esac
  echo "== $name: $status (exit $rc) after $(( $(date +%s) - t0 )) s" | tee -a "$OUT/$name.txt"
  record "$name" "$status" "$rc" "$(( $(date +%s) - t0 ))" "$cap"
}

if [ "$device" = cuda ]; then
  device_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
else device_name="CPU ($(getconf _NPROCESSORS_ONLN) cores), a dry run"; fi
case "$step" in
  all)
    run_step preflight preflight 90
    # only what every later step needs stops the session: the device, and the imports (a compile trial that failed or
    # took too long skips the compiled steps alone)
    grep -qE '^(GPU: .* free|device: cpu)' "$OUT/preflight.txt" || stop="the preflight found no GPU: see preflight.txt"
    grep -qE '^imports: ([0-9]+) of \1 ' "$OUT/preflight.txt" || stop="the preflight's imports failed: see preflight.txt"
    grep -q '^compile: ready' "$OUT/preflight.txt" || export GPU_SESSION_NO_COMPILE=1
    run_step checks checks-quick 240
    run_step bench bench-trimmed 100
    budget=$(( budget - 40 * SCALE )); run_step study study-slice 0   # 40 s kept for the export, whatever the study did
    budget=$(( budget + 40 * SCALE )); run_step results results 40 ;;
  preflight|checks|bench|compiled|plan|dci|measure) budget=570; run_step "$step" "$step" 0 ;;
  study) budget=570; run_step study study 540 ;;
  results) budget=570; run_step results results 60 ;;
  *) echo "$usage"; exit 2 ;;
esac
echo "session: $(( $(date +%s) - start )) s; $OUT: $(ls "$OUT" | tr '\n' ' ')"
