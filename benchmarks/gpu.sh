#!/usr/bin/env bash
# The device path on a GPU, in one script (each step time-limited, under 10 minutes on one
# GPU): the CUDA tests, then end to end (with the tuned pass against the plain one), the model's
# own pass (eager, tuned, compiled), head to head and memory over 10,000 photos on the device;
# one table at the end. Logs go to $OUT (the device tool's folder) or /tmp/saliency-gpu.
# PROFILE=1 adds a py-spy profile of a device run (60 s more).
#
#     bash benchmarks/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
LOGS=${OUT:-/tmp/saliency-gpu}
mkdir -p "$LOGS"
export PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1  # a step killed at its limit keeps its log

card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)
echo "card: $card" | tee "$LOGS/card.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" | tee -a "$LOGS/card.txt"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, keep going on failure
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$LOGS/$name.txt" 2>&1
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - start)) s" | tee -a "$LOGS/steps.txt"
}

step tests 90 "$PY" -m pytest -q -p no:cacheprovider -k cuda \
  tests/test_explain_api.py tests/test_resident.py tests/test_many_processes.py
step end_to_end 150 "$PY" benchmarks/end_to_end.py --device cuda --batch 64 --count 1024 \
  --small 256 --skip-three --skip-rss --repeat 1
step cli 40 "$PY" -m saliency_cli explain sample_images --out "$LOGS/cli-out" --device cuda \
  --device-pipeline --method guided --method gradcam
step memory 60 "$PY" benchmarks/memory_growth.py --device cuda --count 10000 --every 2000
step compiled 130 "$PY" benchmarks/compiled.py --device cuda --batch 64 --rounds 3 \
  --models efficientnet_lite0 resnet50 vgg16
# where a device run's time goes: every thread and worker process sampled (py-spy, the bench extra)
if [ "${PROFILE:-0}" = 1 ] && command -v py-spy > /dev/null; then
  step profile 60 py-spy record --format raw --threads --subprocesses --nonblocking --rate 100 \
    -o "$LOGS/profile.txt" -- "$PY" benchmarks/memory_growth.py --device cuda --count 3000 \
    --every 1000 --work /tmp/saliency-profile  # its own folder: the memory step's would resume
fi

step head_to_head 120 "$PY" benchmarks/head_to_head.py --device cuda --batch 64 --count 96 \
  --small 32 --repeat 1  # the peers' loops are one photo at a time, Captum's through matplotlib
echo
echo "=== saliency on $card ==="
printf '%-34s %s\n' "CUDA tests" "$(tail -1 "$LOGS/tests.txt")"
printf '%-34s %s\n' "explain sample_images on cuda" "$(tail -1 "$LOGS/cli.txt")"
rm -rf "$LOGS/cli-out"
grep -E "x bare loop" "$LOGS/end_to_end.txt" | sed 's/^ */end to end: /'
grep -E "÷" "$LOGS/head_to_head.txt" | sed 's/^ */head to head: /'
grep -E "photos on|growth" "$LOGS/memory.txt" | sed 's/^/memory: /'
grep -E "tuned ÷ plain" "$LOGS/end_to_end.txt" | sed 's/^/end to end: /'
grep -E "compile [0-9.]+ s" "$LOGS/compiled.txt" | sed 's/^/own pass: /'
sed -n '/speed-up over eager/,$p' "$LOGS/compiled.txt" | sed 's/^/own pass: /'
cat "$LOGS/steps.txt"
