#!/usr/bin/env bash
# Issue 18's GPU measurements (and issue 15's compile default) on one nvidia-h200-x2 machine
# (2 x H200), in two calls of at most 9 minutes each:
#
#   bash benchmarks/gpu_session.sh part1 [SHARDS]      single-GPU speed, trainer vs benchmark, DDP vs FSDP (124M), two launchers
#   bash benchmarks/gpu_session.sh part2 [SHARDS]      350M and 774M on 1 and 2 GPUs (DDP, FSDP), FP8 vs BF16 quality
#   bash benchmarks/gpu_session.sh part3 [SHARDS]      profiles: trainer vs benchmark (random and real ids), FSDP2 one group vs DDP
#   bash benchmarks/gpu_session.sh part4 [SHARDS]      after part3's fixes: trainer vs benchmark, FSDP2 vs DDP at 124M/350M/774M
#   bash benchmarks/gpu_session.sh part1 [SHARDS] --dry   the same commands at toy sizes on CPU (gloo), to catch typos
#
# SHARDS: a shards folder (default runs/gpu-shards/shards: 8192-token vocabulary, built on CPU from
# the three CC-SAMPLE WARCs concatenated; git-ignored, so the device call must carry it together with .whl).
# Writes $OUT/<part>.jsonl (one JSON object per measurement, "name" first) and $OUT/<part>.log (every
# command's full output); prints a short table last. Wheels in .whl/ (pydantic, torchao) are installed
# into /tmp/site when the image lacks them. Each part keeps to BUDGET seconds (default 520): a
# measurement that would not fit is recorded as skipped, and every command runs under a timeout.
set -uo pipefail

PART=${1:?usage: gpu_session.sh part1|part2 [SHARDS] [--dry]}
SHARDS=${2:-runs/gpu-shards/shards}
DRY=0
[ "${3:-}" = "--dry" ] && DRY=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-/tmp/gpu-session-out}
WORK=${WORK:-/tmp/gpu-session/$PART}
BUDGET=${BUDGET:-520}
JSONL=$OUT/$PART.jsonl
LOG=$OUT/$PART.log
rm -rf "$WORK"  # every run starts fresh (a leftover checkpoint would make the trainer resume)
mkdir -p "$OUT" "$WORK"
: > "$JSONL"
: > "$LOG"
STARTED=$(date +%s)

# NVLink multicast stays off on these machines (KINDS.md); keep it so in every process we start.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-8}
if ! python3 -c "import pydantic, torchao" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
[ -x "$ROOT/.venv/bin/python" ] && [ $DRY = 1 ] && PY=$ROOT/.venv/bin/python
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc_per_node=2)

# ------------------------------------------------------------------------------- sizes
if [ $DRY = 1 ]; then  # toy sizes on CPU: every command runs, nothing is measured
  export OMP_NUM_THREADS=1
  TRAIN=(train.device=cpu train.n_layer=2 train.n_head=2 train.n_embd=64 train.block_size=64 train.batch_size=4)
  TRAIN_STEPS=4
  BENCH=(--shape tiny --steps 2 --warmup 1 --batch-size 4 --no-compile)
  SHAPE_M=tiny; SHAPE_L=tiny; BATCH_BIG=4; BATCH_124=4
  QUALITY=(--steps 4 --set train.device=cpu --set train.n_layer=2 --set train.n_head=2 --set train.n_embd=64 --set train.block_size=64 --set train.eval_interval=2)
  PROFILE=
  LAUNCH=(--device cpu --steps 3 --set train.n_layer=2 --set train.n_head=2 --set train.n_embd=64 --set train.block_size=64 --set train.batch_size=4)
else
  TRAIN=(train.batch_size=32)  # GPT-2 124M, block 1024: the issue's trainer setting
  TRAIN_STEPS=80
  BENCH=(--steps 10 --warmup 3)
  SHAPE_M=gpt2-medium; SHAPE_L=gpt2-large; BATCH_BIG=16; BATCH_124=32
  QUALITY=(--steps 300 --set train.compile=false --set train.eval_interval=50)
  PROFILE=--profile  # the top GPU kernels of BF16 and FP8 steps at 124M: what stands between FP8 and more speed
  LAUNCH=(--device cuda --steps 20)
fi
VOCAB=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1] + '/manifest.json'))['vocab_size'])" "$SHARDS") || {
  echo "no shards folder at $SHARDS (build it on CPU and carry it)"; exit 2; }
# a trainer run that measures steps: evaluation once at the end, no sample, one checkpoint at the end
MEASURE=(train.max_steps=$TRAIN_STEPS train.eval_interval=$TRAIN_STEPS train.eval_batches=2 train.checkpoint_interval=100000 train.sample_tokens=0)

# ------------------------------------------------------------------------------- helpers
elapsed() { echo $(( $(date +%s) - STARTED )); }
left() { local l=$(( BUDGET - $(elapsed) )); [ $l -lt 10 ] && l=10; echo $l; }

fits() {  # fits NAME SECONDS: is there time for a measurement of about SECONDS? if not, record it as skipped
  if [ $(( $(elapsed) + $2 )) -gt "$BUDGET" ] && [ $DRY = 0 ]; then
    echo "{\"name\": \"$1\", \"skipped\": \"not enough of the ${BUDGET}s budget left ($(elapsed)s used)\"}" >> "$JSONL"
    echo "=== $1: skipped at $(elapsed)s" | tee -a "$LOG"
    return 1
  fi
}

# Two one-GPU jobs run side by side, each on its own half of the cores, so one's compilation
# never takes the CPU time the other's timed steps need.
CORES=$(nproc)
pin() {  # pin GPU: the taskset prefix for that GPU's half of the cores (none when it cannot help)
  if [ "$1" != all ] && [ "$CORES" -ge 8 ] && command -v taskset >/dev/null && [ $DRY = 0 ]; then
    local half=$(( CORES / 2 ))
    echo taskset -c $(( $1 * half ))-$(( $1 * half + half - 1 ))
  fi
}

job() {  # job NAME GPU RUN_DIR COMMAND...: one measurement (GPU: 0, 1 or all); its last JSON line is recorded
  local name=$1 gpu=$2 run_dir=$3; shift 3
  local start rc
  start=$(date +%s)
  echo "=== $name (gpu $gpu) at $(elapsed)s: $*" > "$WORK/$name.log"
  if [ "$gpu" = all ]; then
    timeout "$(left)" "$@" >> "$WORK/$name.log" 2>&1
  else
    CUDA_VISIBLE_DEVICES=$gpu timeout "$(left)" $(pin "$gpu") "$@" >> "$WORK/$name.log" 2>&1
  fi
  rc=$?
  record "$name" "$WORK/$name.log" $rc $(( $(date +%s) - start )) "$run_dir"
  cat "$WORK/$name.log" >> "$LOG"
  echo "=== $name: exit $rc after $(( $(date +%s) - start ))s" | tee -a "$LOG"
}

record() {  # record NAME LOG RC SECONDS RUN_DIR: the log's last JSON line + what the run folder's metrics add
  "$PY" - "$@" >> "$JSONL" <<'EOF'
import json, statistics, sys
from pathlib import Path
name, log, rc, seconds, run_dir = sys.argv[1:6]
row = {"name": name, "rc": int(rc), "seconds": int(seconds)}
found = []
for line in open(log, errors="replace"):
    line = line.strip()
    if line.startswith("{") and line.endswith("}"):
        try:
            found.append(json.loads(line))
        except ValueError:
            pass
last = found[-1] if found else None
if last is not None and "variant" in last:  # train_throughput stopped before its result: keep the rows it finished
    last = {"benchmark": "train_throughput", "partial": True, "rows": [r for r in found if "variant" in r]}
row.update(last if last is not None else {"error": "no JSON line: see the log"})
if row.get("flops_per_token") and row.get("tokens_per_s") and str(row.get("device", "")).startswith("cuda"):
    row["mfu"] = row["flops_per_token"] * row["tokens_per_s"] / (989e12 * row["world_size"])  # H200 dense BF16 per GPU
metrics = Path(run_dir) / "metrics.jsonl" if run_dir != "-" else None
if metrics and metrics.is_file():
    rows = [json.loads(l) for l in metrics.read_text().splitlines() if l.strip()]
    row["losses"] = [round(r["loss"], 5) for r in rows]
    later = [r["tokens_per_s"] for r in rows[1:]]
    if later:
        row["step_tokens_per_s_median"] = statistics.median(later)
print(json.dumps(row))
EOF
}

compare_losses() {  # compare_losses NAME RUN_A RUN_B: per-step loss differences of two trainer runs
  "$PY" - "$@" >> "$JSONL" <<'EOF'
import json, sys
from pathlib import Path
name, a, b = sys.argv[1:4]
read = lambda d: [json.loads(l) for l in (Path(d) / "metrics.jsonl").read_text().splitlines() if l.strip()]
try:
    ra, rb = read(a), read(b)
    diffs = [abs(x["loss"] - y["loss"]) for x, y in zip(ra, rb)]
    val = [(x.get("val_loss"), y.get("val_loss")) for x, y in zip(ra, rb) if x.get("val_loss") is not None]
    print(json.dumps({"name": name, "steps": len(diffs), "max_abs_loss_diff": max(diffs), "mean_abs_loss_diff": sum(diffs) / len(diffs),
                      "last_losses": [ra[-1]["loss"], rb[-1]["loss"]], "val_losses": val[-1] if val else None}))
except (OSError, ValueError, KeyError) as err:
    print(json.dumps({"name": name, "error": repr(err)}))
EOF
}

trainer_args() {  # trainer_args RUN_DIR: TRAINER = the arguments of `python -m model.train` on the shards into RUN_DIR
  rm -rf "$1"
  TRAINER=(-m model.train --shards "$SHARDS" --out "$1" --quiet "${TRAIN[@]}" "${MEASURE[@]}")
}

# ------------------------------------------------------------------------------- part 1
part1() {
  # (a) one GPU, GPT-2 124M, vocabulary 50304, batch 64: ours vs transformers, then ours with FP8 linears
  # (b) the real trainer with its defaults (compile must be on) on the shards, and the benchmark at the same
  #     shape, batch and vocabulary: the trainer-vs-benchmark comparison
  if fits a_b 170; then
    ( job a1_ours_vs_transformers 0 - "$PY" -m benchmarks.train_throughput "${BENCH[@]}" --models ours,transformers
      job a2_fp8 0 - "$PY" -m benchmarks.train_throughput "${BENCH[@]}" --models ours --fp8 $PROFILE ) &
    ( trainer_args "$WORK/b1"
      job b1_trainer_1gpu_defaults 1 "$WORK/b1" "$PY" "${TRAINER[@]}"
      job b2_benchmark_at_trainer_shape 1 - "$PY" -m benchmarks.train_throughput "${BENCH[@]}" --models ours \
        --vocab "$VOCAB" --batch-size $BATCH_124 --steps 20 ) &
    wait
  fi
  # (c) two GPUs, 124M: the trainer with DDP and with FSDP2 (defaults), losses compared step by step
  if fits c_trainer 150; then
    trainer_args "$WORK/c1"
    job c1_trainer_ddp all "$WORK/c1" "${TORCHRUN[@]}" "${TRAINER[@]}" train.parallel=ddp
    trainer_args "$WORK/c2"
    job c2_trainer_fsdp all "$WORK/c2" "${TORCHRUN[@]}" "${TRAINER[@]}" train.parallel=fsdp
    compare_losses c3_ddp_vs_fsdp_losses "$WORK/c1" "$WORK/c2"
  fi
  # FSDP2 variants in one process group (benchmark, shards' vocabulary, batch 32 a GPU): which settings win
  if fits c_variants 150; then
    job c4_fsdp_variants all - "${TORCHRUN[@]}" -m benchmarks.train_throughput "${BENCH[@]}" --models ours \
      --vocab "$VOCAB" --batch-size $BATCH_124 --steps 15 --no-default-variant \
      --variant ddp=parallel=ddp \
      --variant fsdp=parallel=fsdp \
      --variant fsdp_reshard=parallel=fsdp,fsdp_reshard_after_forward=true \
      --variant fsdp_fp32_params=parallel=fsdp,fsdp_param_dtype=fp32 \
      --variant fsdp_no_prefetch=parallel=fsdp,fsdp_prefetch=0 \
      --variant fsdp_compile_model=parallel=fsdp,compile_scope=model
  fi
  # (f) two launchers (--nnodes=2, c10d on 127.0.0.1, one GPU each) vs one launcher with 2 processes
  if fits f_two_launchers 80; then
    job f_two_launchers all - "$PY" -m benchmarks.two_launchers --shards "$SHARDS" --out "$WORK/f" "${LAUNCH[@]}"
  fi
}

# ------------------------------------------------------------------------------- part 2
part2() {
  # 124M FSDP2 again, the two settings that won in part1's c4 (no prefetch, whole-model compile) together
  if fits c5_fsdp_combined 70; then
    job c5_fsdp_combined all - "${TORCHRUN[@]}" -m benchmarks.train_throughput "${BENCH[@]}" --models ours \
      --vocab "$VOCAB" --batch-size $BATCH_124 --steps 15 --no-default-variant \
      --variant ddp=parallel=ddp \
      --variant fsdp_model_np=parallel=fsdp,compile_scope=model,fsdp_prefetch=0 \
      --variant fsdp_model_np_fp32=parallel=fsdp,compile_scope=model,fsdp_prefetch=0,fsdp_param_dtype=fp32
  fi
  # (d) one GPU each: 350M on GPU 0, 774M on GPU 1, BF16 and FP8 rows (vocabulary 50304, batch 16)
  # (e) then FP8 vs BF16 on the shards, two BF16 seeds as the yardstick (split over the two GPUs)
  if fits d_e_one_gpu 200; then
    ( job d1_medium_1gpu 0 - "$PY" -m benchmarks.train_throughput "${BENCH[@]}" --shape $SHAPE_M --batch-size $BATCH_BIG --models ours --fp8
      job e1_quality_bf16_two_seeds 0 - "$PY" -m benchmarks.fp8_quality --shards "$SHARDS" --out "$WORK/e" --runs bf16,bf16_next_seed "${QUALITY[@]}" ) &
    ( job d2_large_1gpu 1 - "$PY" -m benchmarks.train_throughput "${BENCH[@]}" --shape $SHAPE_L --batch-size $BATCH_BIG --models ours --fp8
      job e2_quality_fp8 1 - "$PY" -m benchmarks.fp8_quality --shards "$SHARDS" --out "$WORK/e" --runs fp8 "${QUALITY[@]}" ) &
    wait
    job e3_fp8_vs_bf16 all - "$PY" -m benchmarks.fp8_quality --shards "$SHARDS" --out "$WORK/e" --runs "" "${QUALITY[@]}"
  fi
  # (d) two GPUs: DDP and FSDP2 at 350M and 774M (774M also with resharding after forward: the memory end)
  if fits d_medium_2gpu 110; then
    job d3_medium_2gpu all - "${TORCHRUN[@]}" -m benchmarks.train_throughput "${BENCH[@]}" --shape $SHAPE_M \
      --batch-size $BATCH_BIG --models ours --no-default-variant --variant ddp=parallel=ddp --variant fsdp=parallel=fsdp \
      --variant fsdp_model_np=parallel=fsdp,compile_scope=model,fsdp_prefetch=0
  fi
  if fits d_large_2gpu 150; then
    job d4_large_2gpu all - "${TORCHRUN[@]}" -m benchmarks.train_throughput "${BENCH[@]}" --shape $SHAPE_L \
      --batch-size $BATCH_BIG --models ours --no-default-variant --variant ddp=parallel=ddp --variant fsdp=parallel=fsdp \
      --variant fsdp_reshard=parallel=fsdp,fsdp_reshard_after_forward=true \
      --variant fsdp_model_np=parallel=fsdp,compile_scope=model,fsdp_prefetch=0
  fi
  # FP8 on two GPUs at 774M (DDP and FSDP2): its speed-up where the matmuls are largest
  if fits d5_large_2gpu_fp8 110; then
    job d5_large_2gpu_fp8 all - "${TORCHRUN[@]}" -m benchmarks.train_throughput "${BENCH[@]}" --shape $SHAPE_L \
      --batch-size $BATCH_BIG --models ours --no-default-variant --variant ddp_fp8=parallel=ddp,fp8=true \
      --variant fsdp_fp8=parallel=fsdp,fp8=true
  fi
}

# ------------------------------------------------------------------------------- part 3
part3() {
  # (g) where the trainer's 3 ms a step go: the trainer traced (train.profile_steps=5) on GPU 0, and its
  #     benchmark at the same shape traced on GPU 1, once on uniform random ids and once on the shards' real text
  if fits g_profiles 200; then
    ( trainer_args "$WORK/g1"
      job g1_trainer_profiled 0 "$WORK/g1" "$PY" "${TRAINER[@]}" train.profile_steps=5
      cp -r "$WORK/g1/profile" "$OUT/g1-profile" 2>/dev/null ) &
    ( job g2_benchmark_random_ids 1 - "$PY" -m benchmarks.train_throughput "${BENCH[@]}" --models ours \
        --vocab "$VOCAB" --batch-size $BATCH_124 --steps 20 $PROFILE
      job g3_benchmark_real_ids 1 - "$PY" -m benchmarks.train_throughput "${BENCH[@]}" --models ours \
        --vocab "$VOCAB" --batch-size $BATCH_124 --steps 20 --tokens "$SHARDS" $PROFILE ) &
    wait
  fi
  # (h) 124M on 2 GPUs, real ids: DDP and FSDP2 traced, and FSDP2 with one sharding group for the whole model
  if fits h_fsdp_units 170; then
    job h1_fsdp_units all - "${TORCHRUN[@]}" -m benchmarks.train_throughput "${BENCH[@]}" --models ours \
      --vocab "$VOCAB" --batch-size $BATCH_124 --steps 15 --tokens "$SHARDS" --no-default-variant $PROFILE \
      --variant ddp=parallel=ddp \
      --variant fsdp=parallel=fsdp \
      --variant fsdp_unit_model=parallel=fsdp,fsdp_unit=model \
      --variant fsdp_unit_model_whole_graph=parallel=fsdp,fsdp_unit=model,compile_scope=model
  fi
  # (i) the trainer on 2 GPUs: DDP against FSDP2 with one group, losses step by step
  if fits i_trainer 130; then
    trainer_args "$WORK/i1"
    job i1_trainer_ddp all "$WORK/i1" "${TORCHRUN[@]}" "${TRAINER[@]}" train.parallel=ddp
    trainer_args "$WORK/i2"
    job i2_trainer_fsdp_unit_model all "$WORK/i2" "${TORCHRUN[@]}" "${TRAINER[@]}" train.parallel=fsdp train.fsdp_unit=model
    compare_losses i3_ddp_vs_fsdp_unit_model_losses "$WORK/i1" "$WORK/i2"
  fi
}

# ------------------------------------------------------------------------------- part 4
part4() {
  # after the fixes part3 led to (contiguous pinned batches; train.fsdp_unit=auto = one group under 1B):
  # (j) the trainer with defaults on GPU 0 beside its benchmark on GPU 1, then the trainer traced again
  if fits j_trainer_vs_benchmark 170; then
    ( trainer_args "$WORK/j1"
      job j1_trainer_1gpu_defaults 0 "$WORK/j1" "$PY" "${TRAINER[@]}"
      trainer_args "$WORK/j3"
      job j3_trainer_profiled 0 "$WORK/j3" "$PY" "${TRAINER[@]}" train.profile_steps=5
      cp -r "$WORK/j3/profile" "$OUT/j3-profile" 2>/dev/null ) &
    ( job j2_benchmark_at_trainer_shape 1 - "$PY" -m benchmarks.train_throughput "${BENCH[@]}" --models ours \
        --vocab "$VOCAB" --batch-size $BATCH_124 --steps 20 ) &
    wait
  fi
  # (k) the trainer on 2 GPUs with defaults: DDP against FSDP2 (now one group at 124M), losses step by step
  if fits k_trainer_2gpu 110; then
    trainer_args "$WORK/k1"
    job k1_trainer_ddp all "$WORK/k1" "${TORCHRUN[@]}" "${TRAINER[@]}" train.parallel=ddp
    trainer_args "$WORK/k2"
    job k2_trainer_fsdp all "$WORK/k2" "${TORCHRUN[@]}" "${TRAINER[@]}" train.parallel=fsdp
    compare_losses k3_ddp_vs_fsdp_losses "$WORK/k1" "$WORK/k2"
  fi
  # (l) 350M and 774M on 2 GPUs: DDP, FSDP2 per block, FSDP2 one group (what 'auto' picks under 1B)
  if fits l_medium 110; then
    job l1_medium_2gpu all - "${TORCHRUN[@]}" -m benchmarks.train_throughput "${BENCH[@]}" --shape $SHAPE_M \
      --batch-size $BATCH_BIG --models ours --no-default-variant --variant ddp=parallel=ddp \
      --variant fsdp_block=parallel=fsdp,fsdp_unit=block --variant fsdp_model=parallel=fsdp,fsdp_unit=model
  fi
  if fits l_large 150; then
    job l2_large_2gpu all - "${TORCHRUN[@]}" -m benchmarks.train_throughput "${BENCH[@]}" --shape $SHAPE_L \
      --batch-size $BATCH_BIG --models ours --no-default-variant --variant ddp=parallel=ddp \
      --variant fsdp_block=parallel=fsdp,fsdp_unit=block --variant fsdp_model=parallel=fsdp,fsdp_unit=model
  fi
}

# ------------------------------------------------------------------------------- run and summarise
{ echo "=== $PART on $(hostname) at $(date -u +%FT%TZ), shards $SHARDS (vocab $VOCAB), budget ${BUDGET}s, dry=$DRY"
  "$PY" -c "import torch; print('torch', torch.__version__, 'gpus', torch.cuda.device_count(), [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])"
  nvidia-smi --query-gpu=index,name,memory.used,memory.total,clocks.sm --format=csv 2>/dev/null || true
} 2>&1 | tee -a "$LOG"
case "$PART" in
  part1) part1 ;;
  part2) part2 ;;
  part3) part3 ;;
  part4) part4 ;;
  *) echo "unknown part $PART (part1 to part4)"; exit 2 ;;
esac
echo "=== $PART done after $(elapsed)s" | tee -a "$LOG"
"$PY" - "$JSONL" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def g(x, f):
    return f.format(x) if isinstance(x, (int, float)) else "-"
for r in rows:
    if "skipped" in r or "error" in r or r.get("rc", 0) != 0:
        print(f"{r['name']:<34} rc={r.get('rc')} {r.get('skipped') or r.get('error') or 'FAILED: see the log'}")
    if "skipped" in r or "error" in r:
        continue
    if r.get("benchmark") == "train_throughput":
        for x in r["rows"]:
            print(f"{r['name']:<34} {x['model']}@{x['variant']:<20} x{x['world_size']} {g(x['tokens_per_s'], '{:>12,.0f}')} tok/s "
                  f"MFU {g(x['mfu'], '{:.1%}')} peak {g(x['peak_mem_gib'], '{:.1f}')} GiB loss {g(x['final_loss'], '{:.4f}')}")
    elif "final_train_loss" in r:
        print(f"{r['name']:<34} trainer x{r['world_size']} compiled={r.get('compiled')} {g(r['tokens_per_s'], '{:>12,.0f}')} tok/s "
              f"(median {g(r.get('step_tokens_per_s_median'), '{:,.0f}')}) MFU {g(r.get('mfu'), '{:.1%}')} "
              f"peak {g(r.get('peak_cuda_mb'), '{:,.0f}')} MB first step {g(r.get('first_step_s'), '{:.1f}')} s loss {g(r['final_train_loss'], '{:.4f}')}")
    else:
        keep = {k: v for k, v in r.items() if not isinstance(v, (list, dict)) or k in ("tokens_per_s", "best_val")}
        print(f"{r['name']:<34} {json.dumps(keep)[:300]}")

# the ratios the issue asks about, from the rows above (appended to the JSON lines as "ratios")
by = {r["name"]: r for r in rows if "skipped" not in r and "error" not in r}
def speed(name, variant=None, model="ours"):
    r = by.get(name)
    if r is None:
        return None
    if r.get("benchmark") == "train_throughput":
        return next((x["tokens_per_s"] for x in r["rows"] if x["model"] == model and (variant is None or x["variant"] == variant)), None)
    return r.get("tokens_per_s")
def ratio(a, b):
    return round(a / b, 4) if a and b else None
ratios = {
    "ours_vs_transformers_124M": ratio(speed("a1_ours_vs_transformers", "default"), speed("a1_ours_vs_transformers", "default", "transformers")),
    "fp8_vs_bf16_124M": ratio(speed("a2_fp8", "fp8"), speed("a2_fp8", "default")),
    "fp8_vs_transformers_124M": ratio(speed("a2_fp8", "fp8"), speed("a1_ours_vs_transformers", "default", "transformers")),
    "trainer_vs_benchmark_124M": ratio(speed("b1_trainer_1gpu_defaults"), speed("b2_benchmark_at_trainer_shape", "default")),
    "fsdp_vs_ddp_trainer_124M": ratio(speed("c2_trainer_fsdp"), speed("c1_trainer_ddp")),
    "ddp_2gpu_vs_1gpu_trainer_124M": ratio(speed("c1_trainer_ddp"), speed("b1_trainer_1gpu_defaults")),
    "fp8_vs_bf16_350M": ratio(speed("d1_medium_1gpu", "fp8"), speed("d1_medium_1gpu", "default")),
    "fp8_vs_bf16_774M": ratio(speed("d2_large_1gpu", "fp8"), speed("d2_large_1gpu", "default")),
    "fsdp_vs_ddp_350M": ratio(speed("d3_medium_2gpu", "fsdp"), speed("d3_medium_2gpu", "ddp")),
    "fsdp_vs_ddp_774M": ratio(speed("d4_large_2gpu", "fsdp"), speed("d4_large_2gpu", "ddp")),
    "fsdp_reshard_vs_ddp_774M": ratio(speed("d4_large_2gpu", "fsdp_reshard"), speed("d4_large_2gpu", "ddp")),
    "fp8_vs_bf16_774M_ddp": ratio(speed("d5_large_2gpu_fp8", "ddp_fp8"), speed("d4_large_2gpu", "ddp")),
    "fp8_vs_bf16_774M_fsdp": ratio(speed("d5_large_2gpu_fp8", "fsdp_fp8"), speed("d4_large_2gpu", "fsdp")),
}
for group in ("c4_fsdp_variants", "h1_fsdp_units", "l1_medium_2gpu", "l2_large_2gpu"):
    if group in by and by[group].get("rows"):
        ddp = speed(group, "ddp")
        for x in by[group]["rows"]:
            ratios[f"{group[:2]}_{x['variant']}_vs_ddp"] = ratio(x["tokens_per_s"], ddp)
ratios.update({
    "g_trainer_vs_benchmark_random_ids": ratio(speed("g1_trainer_profiled"), speed("g2_benchmark_random_ids", "default")),
    "g_trainer_vs_benchmark_real_ids": ratio(speed("g1_trainer_profiled"), speed("g3_benchmark_real_ids", "default")),
    "g_real_vs_random_ids": ratio(speed("g3_benchmark_real_ids", "default"), speed("g2_benchmark_random_ids", "default")),
    "i_trainer_fsdp_unit_model_vs_ddp": ratio(speed("i2_trainer_fsdp_unit_model"), speed("i1_trainer_ddp")),
    "j_trainer_vs_benchmark": ratio(speed("j1_trainer_1gpu_defaults"), speed("j2_benchmark_at_trainer_shape", "default")),
    "k_trainer_fsdp_vs_ddp": ratio(speed("k2_trainer_fsdp"), speed("k1_trainer_ddp")),
})
ratios = {k: v for k, v in ratios.items() if v is not None}
print("ratios", json.dumps(ratios))
with open(sys.argv[1], "a") as fh:
    fh.write(json.dumps({"name": "ratios", **ratios}) + "\n")
EOF
