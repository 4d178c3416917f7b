#!/usr/bin/env bash
# The several-GPU proof of `lorac run`, on a machine with two or more GPUs, from the repository
# root: the same short `--synthetic` job of each trainer with [run] gpus = 2 and with one GPU
# of the same machine, then per-GPU peaks and the throughput of two GPUs against one.
#
#   tests/gpu/multi_proof.sh setup          the kohya kit (tests/gpu/proof.sh setup: /tmp/site,
#                                           /tmp/synth) and the musubi kit (musubi_proof.sh
#                                           setup into its own /tmp/site-musubi, /tmp/synth-wan),
#                                           then the proof profiles in profiles/
#   tests/gpu/multi_proof.sh run T N        trainer T (kohya | musubi | aitk) on N GPUs (1 | 2):
#                                           `lorac run multi-T-gN --synthetic --max-steps $STEPS`
#                                           with CUDA_VISIBLE_DEVICES 0 (N=1) or 0,1 (N=2)
#   tests/gpu/multi_proof.sh summary        per run: status, s/step, peak MiB per GPU; per
#                                           trainer: throughput of 2 GPUs / 1 GPU → $OUT
#
# One command a call (each run is a few minutes: 20 FLUX.1 steps take 4-5 on an H100); the
# machine stays warm between calls, so the kits, the synthetic sets and runs-multi/ stay.
# ai-toolkit has no data-parallel training at the pinned commit: `run aitk 2` passes when lorac
# refuses it (LRC691, exit 1, nothing launched); `run aitk 1` needs an ai-toolkit checkout in
# LORAC_AI_TOOLKIT (and AITK_PYTHONPATH for its packages) and records whatever it gives.
#
# Needs the git-ignored kits carried along: .gpu/sd-scripts, .gpu/wheels and .gpu-bnb
# (scripts/gpu_kit.sh --with-bnb) for kohya, .gpu/musubi (scripts/gpu_kit_musubi.sh) for
# musubi; carry each in the call that sets it up (`SETUP=kohya` or `SETUP=musubi` limits
# `setup` to one). Results go to $OUT.
set -uo pipefail
OUT="${OUT:-/tmp/lorac-multi-proof}"
STEPS="${STEPS:-20}"
RUNS=runs-multi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LORAC_NO_CACHE=1
MUSUBI_SITE=/tmp/site-musubi
musubi_kit="$PWD/.gpu/musubi"

trainer_env() {  # the environment of one trainer's runs (each has its own wheels)
    case "$1" in
    kohya)
        export PYTHONPATH="/tmp/site:$PWD" LORAC_SD_SCRIPTS="$PWD/.gpu/sd-scripts"
        export LORAC_SYNTH_DIR=/tmp/synth
        ;;
    musubi)
        export PYTHONPATH="$MUSUBI_SITE:$musubi_kit/musubi-tuner/src:$PWD"
        export LORAC_MUSUBI_TUNER="$musubi_kit/musubi-tuner" LORAC_SYNTH_DIR=/tmp/synth-wan
        if ! command -v python > /dev/null; then  # musubi's caching steps run as `python …`
            mkdir -p /tmp/lorac-bin && ln -sf "$(command -v python3)" /tmp/lorac-bin/python
            export PATH="/tmp/lorac-bin:$PATH"
        fi
        ;;
    aitk)
        export PYTHONPATH="${AITK_PYTHONPATH:+$AITK_PYTHONPATH:}/tmp/site:$PWD"
        ;;
    esac
}

write_profiles() {  # in musubi's environment: its optimizer depends on bitsandbytes there
    (trainer_env musubi
     python3 tests/gpu/multi_proof.py profiles profiles "$PWD/examples/subject" /tmp/multi-cache)
}

run_one() {  # trainer gpus
    local trainer=$1 gpus=$2 profile="multi-$1-g$2" devices=0 rc
    [[ "$gpus" == 2 ]] && devices=0,1
    trainer_env "$trainer"
    date -u
    CUDA_VISIBLE_DEVICES=$devices python3 -m lorac run "$profile" --synthetic \
        --max-steps "$STEPS" --display plain --runs-dir "$RUNS/$profile" \
        > "$OUT/$profile.log" 2>&1
    rc=$?
    echo "$profile: exit $rc" | tee -a "$OUT/summary.txt"
    if [[ "$trainer" == aitk && "$gpus" == 2 ]]; then
        if [[ $rc == 1 ]] && grep -q "LRC691" "$OUT/$profile.log" \
                && [[ -z "$(ls -A "$RUNS/$profile" 2>/dev/null)" ]]; then
            echo "$profile: refused as it should be (LRC691, nothing launched)" \
                | tee -a "$OUT/summary.txt"
        else
            echo "$profile: NOT refused as it should be" | tee -a "$OUT/summary.txt"
        fi
    fi
    for m in "$RUNS/$profile"/*/manifest.json; do
        [[ -f "$m" ]] && cp "$m" "$OUT/$profile-manifest.json"
    done
    tail -n 30 "$OUT/$profile.log"
}

case "${1:-}" in
setup)
    if [[ "${SETUP:-both}" != musubi ]]; then
        tests/gpu/proof.sh setup
    fi
    if [[ "${SETUP:-both}" != kohya ]]; then
        OUT="$OUT/musubi-setup" SITE="$MUSUBI_SITE" tests/gpu/musubi_proof.sh setup | tail -n 20
    fi
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv \
        | tee "$OUT/gpus.csv"
    nvidia-smi topo -m > "$OUT/topology.txt" 2>&1
    write_profiles
    ;;
run)
    [[ "${2:-}" =~ ^(kohya|musubi|aitk)$ && "${3:-}" =~ ^[12]$ ]] || {
        echo "usage: $0 run kohya|musubi|aitk 1|2" >&2; exit 2; }
    [[ -f "profiles/multi-$2-g$3.toml" ]] || write_profiles > /dev/null
    run_one "$2" "$3"
    ;;
summary)
    PYTHONPATH="$PWD" python3 tests/gpu/multi_proof.py summary "$OUT" "$RUNS"/* \
        | tee -a "$OUT/summary.txt"
    ;;
*)
    echo "usage: $0 setup | run kohya|musubi|aitk 1|2 | summary" >&2
    exit 2
    ;;
esac
