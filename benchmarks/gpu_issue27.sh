#!/usr/bin/env bash
# Issue 27's GPU measurements on one H100/H200 (the device tool's default one-GPU kind), in calls
# of at most 9 minutes each:
#
#   bash benchmarks/gpu_issue27.sh all [SHARDS]     everything below, in this order, within BUDGET seconds (560):
#     g1  generation vs transformers (batch 1 and 8, greedy tokens compared)           [gen]
#     t1  AdamW vs Muon to a fixed token budget, 2 seeds each                          [train]
#     a1-a4  the trainer at 3dacfeb vs HEAD, ABBA; a5 the benchmark at that shape      [train]
#     g2  the 124M training step, ours vs transformers, profiled                       [gen]
#     s1  the trainer's samples through the static decoder; g3 the gpu generation test
#   bash benchmarks/gpu_issue27.sh gen|train [SHARDS]   only the parts marked so (and s1, g3)
# A measurement that would not fit the budget is recorded as skipped.
#
# SHARDS: a shards folder built on CPU from the shared WARCs (default runs/t2l/shards; git-ignored, so
# the call carries it, with .whl: pydantic's wheels, which the image lacks). The ABBA runs need the
# old trainer exported into .bench/trainer-3dacfeb (`git archive 3dacfeb | tar -x -C ...`), carried too.
# Writes $OUT/<part>.jsonl (one JSON object per measurement, "name" first) and $OUT/<part>.log.
set -uo pipefail

PART=${1:?usage: gpu_issue27.sh gen|train [SHARDS]}
SHARDS=${2:-runs/t2l/shards}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-/tmp/gpu-issue27-out}
WORK=${WORK:-/tmp/gpu-issue27/$PART}
rm -rf "$WORK"
mkdir -p "$OUT" "$WORK"
JSONL=$OUT/$PART.jsonl
LOG=$OUT/$PART.log
: > "$JSONL"
: > "$LOG"
STARTED=$(date +%s)

export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-8}
if ! python3 -c "import pydantic" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
BASE_PYTHONPATH=${PYTHONPATH:-}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
nvidia-smi -L | tee -a "$LOG"

elapsed() { echo $(( $(date +%s) - STARTED )); }
BUDGET=${BUDGET:-560}

fits() {  # fits NAME SECONDS: time left for a measurement of about SECONDS? if not, record it as skipped
  if [ $(( $(elapsed) + $2 )) -gt "$BUDGET" ]; then
    echo "{\"name\": \"$1\", \"skipped\": \"not enough of the ${BUDGET}s budget left ($(elapsed)s used)\"}" >> "$JSONL"
    echo "=== $1: skipped at $(elapsed)s" | tee -a "$LOG"
    return 1
  fi
}

measure() {  # measure NAME SECONDS CMD...: run CMD under a timeout, its last line (JSON) to $JSONL as NAME
  local name=$1 limit=$2
  shift 2
  echo "=== $name ($(elapsed)s): $*" | tee -a "$LOG"
  local started=$(date +%s) out
  out=$(timeout "$limit" "$@" 2> >(tee -a "$LOG" >&2) | tee -a "$LOG")
  local rc=$? seconds=$(( $(date +%s) - started ))
  local last=$(printf '%s\n' "$out" | tail -n 1)
  if printf '%s' "$last" | python3 -c "import json,sys; json.loads(sys.stdin.read())" 2>/dev/null; then
    printf '%s' "$last" | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print(json.dumps({'name': sys.argv[1], 'rc': int(sys.argv[2]), 'seconds': int(sys.argv[3]), **d}))" "$name" "$rc" "$seconds" >> "$JSONL"
  else
    echo "{\"name\": \"$name\", \"rc\": $rc, \"seconds\": $seconds, \"error\": \"no JSON last line\"}" >> "$JSONL"
  fi
  echo "--- $name: rc=$rc, ${seconds}s" | tee -a "$LOG"
}

trainer() {  # trainer NAME TREE OUTDIR SETTINGS...: python -m model.train from TREE (a source tree) on $SHARDS
  local name=$1 tree=$2 outdir=$3
  shift 3
  rm -rf "$outdir"
  measure "$name" 170 env PYTHONPATH="$tree${BASE_PYTHONPATH:+:$BASE_PYTHONPATH}" bash -c \
    "cd '$tree' && exec $PY -m model.train --quiet --shards '$ROOT/$SHARDS' --out '$outdir' $*"
}

case $PART in
all|gen|train)
  ABBA=(train.batch_size=16 train.max_steps=60 train.eval_interval=60 train.eval_batches=1
        train.checkpoint_interval=100000 train.sample_tokens=0 train.warmup_steps=10)
  if [ "$PART" != train ]; then
    fits g1_generate_speed 200 && measure g1_generate_speed 240 $PY -m benchmarks.generate_speed --shards "$SHARDS" --repeats 2
  fi
  if [ "$PART" != gen ]; then
    # time to loss: AdamW vs Muon, 2 seeds each, same shards and token budget (eager: 4 compilations would cost more)
    fits t1_time_to_loss 120 && measure t1_time_to_loss 200 $PY -m benchmarks.time_to_loss --shards "$SHARDS" \
      --work "$WORK/t2l" --set train.compile=false
    # issue 25: the trainer at 3dacfeb vs HEAD, ABBA, defaults at batch 16 x 1024 on the shards (the largest
    # validation shard holds 29 windows of 1025 tokens: batch 32 could not evaluate)
    if fits abba 180; then
      trainer a1_old_3dacfeb "$ROOT/.bench/trainer-3dacfeb" "$WORK/a1" "${ABBA[@]}"
      trainer a2_head "$ROOT" "$WORK/a2" "${ABBA[@]}"
      trainer a3_head "$ROOT" "$WORK/a3" "${ABBA[@]}"
      trainer a4_old_3dacfeb "$ROOT/.bench/trainer-3dacfeb" "$WORK/a4" "${ABBA[@]}"
    fi
    VOCAB=$($PY -c "import json,sys; print(json.load(open(sys.argv[1] + '/manifest.json'))['vocab_size'])" "$SHARDS")
    fits a5_benchmark_trainer_shape 45 && measure a5_benchmark_trainer_shape 90 $PY -m benchmarks.train_throughput \
      --models ours --batch-size 16 --vocab "$VOCAB" --tokens "$SHARDS"
  fi
  if [ "$PART" != train ]; then
    fits g2_train_throughput_profile 110 && measure g2_train_throughput_profile 180 $PY -m benchmarks.train_throughput \
      --models ours,transformers --profile
  fi
  # the trainer's samples on the GPU go through the static, graph-captured decoder: one capture, reused
  if fits s1_trainer_samples 35; then
    trainer s1_trainer_samples "$ROOT" "$WORK/s1" train.batch_size=8 train.max_steps=20 train.eval_interval=10 \
      train.eval_batches=1 train.sample_tokens=48 train.compile=false
    python3 -c "import sys; print(open(sys.argv[1]).read()[-1500:])" "$WORK/s1/samples.txt" 2>&1 | tee -a "$LOG"
  fi
  if fits g3_gpu_generation_test 45; then
    echo "=== g3 gpu generation test ($(elapsed)s)" | tee -a "$LOG"
    timeout 60 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_generate.py 2>&1 | tail -n 15 | tee -a "$LOG"
  fi
  ;;
*)
  echo "unknown part $PART"; exit 2 ;;
esac

echo "=== done in $(elapsed)s" | tee -a "$LOG"
$PY - "$JSONL" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows = d.get("rows")
    if d.get("benchmark") == "generate_speed":
        for r in rows:
            print(f"{d['name']:<28} b{r['batch']} {r['path']:<13} {r['tokens_per_s']:>10,.0f} tok/s x{r['speedup_vs_transformers']:.2f} equal={r['tokens_equal']} syncs={r.get('host_syncs')}")
    elif d.get("benchmark") == "train_throughput":
        for r in rows:
            print(f"{d['name']:<28} {r['model']:<14} {r['tokens_per_s']:>10,.0f} tok/s MFU {r['mfu']:.1%}")
        print(f"{'':<28} speedup {d.get('speedup_vs_transformers')}")
    elif d.get("benchmark") == "time_to_loss":
        for r in d["runs"]:
            print(f"{d['name']:<28} {r['optimizer']:<6} seed {r['seed']} final {r['final_val']:.4f} best {r['best_val']:.4f} {r['train_seconds']:.1f}s")
        print(f"{'':<28} verdict {d['verdict']}")
    else:
        print(f"{d['name']:<28} rc={d.get('rc')} tok/s={d.get('tokens_per_s')} val={d.get('val_loss')} {d.get('error', '')}")
EOF
