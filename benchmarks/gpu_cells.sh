#!/usr/bin/env bash
# LLM cells on a lent GPU machine (benchmarks/gpu_pack.sh packs the wheels, data and git state it needs and says how
# to get them there).
# Three chains of jobs share the GPU (each is launch-bound, so they overlap well), each under the call's deadline:
#   1. tallrec, paper profile; then tallrec with a GPU-sized budget (q,k,v,o + MLP LoRA, 6000 histories x 8
#      candidates, listwise loss): does an LM that sees enough data pass the textsim floor?
#   2. ganprompt with the same stage-2 budget as that tallrec (the quick profile's split encoder context, input+last
#      states and projection warm-up; the paper's stage 1); then ganprompt, paper profile (the paper's settings)
#   3. the RQ1 robustness suite at 300 users x 20 candidates (ganprompt vs tallrec, quick profiles)
# Opt-in (JOBS=ablations-gpu,robustness-gpu,llm-quick,diversity-gpu,...): GANPrompt's ablations and the RQ1 suite
# on the GPU budget; RQ2's diversity report on a GPU-budget stage 1 with ~60 D steps; the RecBole baselines
# (baselines-gpu, BASELINES=bert4rec,gru4rec,s3rec,din by default; gpu_pack.sh RECBOLE=1);
# the quick profiles of the LLM baselines (LLM_QUICK=tallrec,collm,ctrl,p5 by default). On the 5-core sets the cells
# use sampled-uniform-n99-u300 (PROTO= overrides), whose baseline rows `bench.py derive` gives.
# Results go to results/ when the git state is a clean commit (a blob-less clone's .git is enough), else to
# runs/gpu. After each job the finished cells are tarred into $OUT, so a call that is cut off still returns them.
# Usage: OUT=... DEADLINE_S=... [JOBS=name,...] [SEEDS=0,1,2] [DATASET=beauty-5core|toys-5core|sports-5core]
#        [GPU_QUICK=1: tiny budgets, for a rehearsal on a CPU] benchmarks/gpu_cells.sh
# Seen on an H200 (2026-11-28, beauty, seed 0, the three chains at once): tallrec-paper 63 s, tallrec-gpu 110 s,
# robustness 322 s, ganprompt-gpu 456 s (stage 1 at the paper's batch of 256 x 6 variants: 194 s); ganprompt-paper
# alone did not finish in 243 s. The robustness job runs on `beauty` only (its published report).
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
START=$(date +%s); DEADLINE=${DEADLINE_S:-480}
export LLMREC_CACHE=${LLMREC_CACHE:-/tmp/llmrec-cache} PYTHONUNBUFFERED=1 LLMREC_TORCH_THREADS=${LLMREC_TORCH_THREADS:-4}
DATA=(--data-root "${LLMREC_DATA_ROOT:-../shared/data/amazon}")
DEST=results
python3 - <<'EOF' || DEST=runs/gpu
from bench.results import git_state
s = git_state(); print("git state:", s)
raise SystemExit(0 if s["commit"] and s["dirty"] is False else 1)
EOF
echo "writing to $DEST"
OPT_IN=ablations-gpu,robustness-gpu,llm-quick,diversity-gpu,baselines-gpu  # run only when JOBS names them
left() { echo $(( DEADLINE - ($(date +%s) - START) )); }
pack() {  # atomic: jobs pack concurrently
  local t; t=$(mktemp "$OUT/.cells.XXXX")
  tar czf "$t" --exclude=fits --exclude=candidates --exclude='*.resume' "$DEST" 2>/dev/null && mv "$t" "$OUT/cells.tar.gz"
}
job() {  # job NAME MIN_SECONDS_LEFT COMMAND...: runs unless too little time is left; killed 20 s before the deadline
  local name=$1 need=$2 l; shift 2; l=$(left)
  if [ -n "${JOBS:-}" ] && [[ ",$JOBS," != *",$name,"* ]]; then return; fi  # JOBS=a,b: only these
  if [ -z "${JOBS:-}" ] && [[ ",$OPT_IN," == *",$name,"* ]]; then return; fi  # run only when JOBS names them
  if [ "$l" -lt "$need" ]; then echo "SKIP $name: $l s left, needs $need"; return; fi
  echo "START $name at $(( $(date +%s) - START )) s (limit $(( l - 20 )) s)"
  timeout -k 5 $(( l - 20 )) "$@" >>"$OUT/$name.log" 2>&1
  echo "END $name rc=$? at $(( $(date +%s) - START )) s"; pack
}
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
sets() {  # sets gpu|paper METHOD...: --set flags; gpu = the GPU stage-2 budget; GPU_QUICK=1 adds CPU-sized ones
  local m kv s
  for m in "${@:2}"; do
    s=()
    if [ "$1" = gpu ]; then
      s=(max_tokens=16384 negatives=7 loss=softmax epochs=1 lr=2e-4 lora_targets=$ALL eval_every=50 max_minutes=6
         train_groups=6000)
      [[ $m == ganprompt* ]] && s+=(encoder_context=split encoder_states=input+last align_steps=1500 proj_hidden=1024
                                    stage1_groups=2000 stage2_variants=1 batch_groups=32)
    fi
    if [ "${GPU_QUICK:-0}" = 1 ]; then
      if [[ $m == ganprompt* ]]; then
        s+=(max_tokens=2048 train_groups=8 stage1_groups=4 align_steps=2 attribute_samples=4 stage1_batch=2
            valid_users=8 eval_every=2)
      else s+=(max_tokens=2048 train_groups=16 valid_users=8 eval_every=2); fi
    fi
    for kv in "${s[@]}"; do printf -- '--set\n%s.%s\n' "$m" "$kv"; done
  done
}
ABLATIONS=ganprompt-noattr,ganprompt-nodiv,ganprompt-nogan,ganprompt-plain
mapfile -t TG < <(sets gpu tallrec); mapfile -t GG < <(sets gpu ganprompt)
mapfile -t AG < <(sets gpu ${ABLATIONS//,/ })
if [ "${GPU_QUICK:-0}" = 1 ]; then  # the same commands with CPU-sized budgets
  PROTO=sampled-uniform-n19-u3; SMALL=(--users 3); RQ=(--users 3 --variants templates)
  GP=(--set ganprompt.train_groups=4 --set ganprompt.attribute_samples=4 --set ganprompt.valid_users=0
    --set ganprompt.stage1_batch=2 --set ganprompt.batch_groups=2); TP=(--set tallrec.train_groups=4 --set tallrec.valid_users=0)
  RB=(--set ganprompt.align_steps=2 --set ganprompt.train_groups=4 --set ganprompt.attribute_samples=4
    --set ganprompt.stage1_groups=2 --set ganprompt.epochs=1 --set ganprompt.valid_users=0
    --set tallrec.train_groups=4 --set tallrec.epochs=1 --set tallrec.valid_users=0 --variants templates)
  LQ=(--set collm.train_groups=4 --set collm.valid_users=0 --set collm.cf_epochs=1 --set ctrl.align_epochs=1
    --set ctrl.epochs=1 --set p5.train_samples=8 --set p5.epochs=1 --set p5.valid_users=0)
else
  # the 5-core sets: the uniform-99 candidates of the baselines' cells, on 300 users (`bench.py derive` gives the
  # baselines' rows for these users); the subsampled sets: the published LLM protocol
  [[ ${DATASET:-beauty} == *-5core ]] && PROTO=${PROTO:-sampled-uniform-n99-u300} || PROTO=${PROTO:-sampled-uniform-n19-u300}
  SMALL=(); RQ=(); GP=(); TP=(); RB=(); LQ=()
fi
BASE=${BASELINES:-bert4rec,gru4rec,s3rec,din}  # the RecBole baselines whose quick fits outrun the 60-min CPU safety stop
tiny() {  # tiny M: one-epoch flags for a CPU rehearsal (GPU_QUICK=1), none otherwise
  [ "${GPU_QUICK:-0}" = 1 ] || return 0
  printf -- '--set\n%s.epochs=1\n' "$1"; [ "$1" = s3rec ] && printf -- '--set\ns3rec.pretrain_epochs=1\n'; return 0
}
P=(--dataset "${DATASET:-beauty}" --protocol $PROTO --seeds "${SEEDS:-0}" --no-leaderboard)
for d in "${DATASET:-beauty}" beauty; do  # prepared once, before the jobs read the cache
  python3 -c "from bench.data.prepare import load_dataset; import sys; load_dataset(sys.argv[1], data_root=sys.argv[2])" \
    "$d" "${DATA[1]}" || exit 1
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
(
  job tallrec-paper 60 python3 bench.py run "${P[@]}" "${DATA[@]}" --methods tallrec --profile paper \
    --set tallrec.max_tokens=32768 "${TP[@]}" --out "$DEST"
  job tallrec-gpu 150 python3 bench.py run "${P[@]}" "${DATA[@]}" --methods tallrec --profile paper "${TG[@]}" \
    --out "$DEST"
  job ablations-gpu 300 python3 bench.py run "${P[@]}" "${DATA[@]}" --methods $ABLATIONS --profile paper "${AG[@]}" \
    --out "$DEST"
) &
(
  job ganprompt-gpu 200 python3 bench.py run "${P[@]}" "${DATA[@]}" --methods ganprompt --profile paper "${GG[@]}" \
    --out "$DEST"
  job ganprompt-paper 200 python3 bench.py run "${P[@]}" "${DATA[@]}" --methods ganprompt --profile paper \
    --set ganprompt.max_tokens=16384 --set ganprompt.max_minutes=6 "${GP[@]}" --out "$DEST"
  # RQ2 on the GPU-budget encoder: the paper's stage 1 took 8 steps of batch 256 at d_lr 5e-5 there, and D stayed at
  # chance; batch 32 and d_lr 1e-3 (the quick profile's, where D left chance) give it about 60 steps
  job diversity-gpu 250 python3 bench.py diversity --dataset beauty "${DATA[@]}" --profile paper "${GG[@]}" \
    --set ganprompt.stage1_batch=32 --set ganprompt.d_lr=0.001 --out "$DEST"
) &
(
  job robustness 200 python3 bench.py robustness --dataset beauty "${DATA[@]}" --methods ganprompt,tallrec \
    --pair ganprompt,tallrec "${RB[@]}" "${SMALL[@]}" --out "$DEST"
  job robustness-gpu 400 python3 bench.py robustness --dataset beauty "${DATA[@]}" --methods ganprompt,tallrec \
    --pair ganprompt,tallrec --profile paper "${TG[@]}" "${GG[@]}" "${RQ[@]}" --out "$DEST"
  # the quick profiles (CPU budgets, the same params hashes as CPU cells) of the LLM baselines, on the GPU
  job llm-quick 300 python3 bench.py run "${P[@]}" "${DATA[@]}" --methods "${LLM_QUICK:-tallrec,collm,ctrl,p5}" \
    "${LQ[@]}" "${TP[@]}" --out "$DEST"
) &
(
  # the quick profiles of RecBole baselines (needs gpu_pack.sh RECBOLE=1), all users, uniform-99 and full ranking;
  # each method's seeds on one device, so that a table never mixes CPU and GPU seeds of a method
  for m in ${BASE//,/ }; do
    mapfile -t BQ < <(tiny "$m")
    job baselines-gpu 120 python3 bench.py run --dataset "${DATASET:-beauty}" "${DATA[@]}" --methods "$m" \
      --seeds "${SEEDS:-0}" --protocol sampled,full --no-leaderboard "${BQ[@]}" --out "$DEST"
  done
) &
wait
pack
ls -la "$OUT"; echo "done at $(( $(date +%s) - START )) s"
