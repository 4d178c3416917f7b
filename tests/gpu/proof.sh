#!/usr/bin/env bash
# The GPU proof of `lorac run`, on the device machine, from the repository root:
#
#   tests/gpu/proof.sh setup    wheels into /tmp/site, example datasets, synthetic FLUX set
#   tests/gpu/proof.sh setup sd3  the same without the FLUX set (the SD3 plan writes its own
#                               sets, ~32 GB, into /tmp/sd3): other synthetic sets on a warm
#                               machine are removed while /tmp has less than 36 GB free
#   tests/gpu/proof.sh formats  `lorac run fast --synthetic --max-steps 20`, --format toml on
#                               GPU 0 and --format cli on GPU 1, at the same time
#   tests/gpu/proof.sh multi    the same job with [run] gpus = 2, then an interrupted run
#   tests/gpu/proof.sh overhead the same short job through `accelerate launch` directly and
#                               through `lorac run`
#   tests/gpu/proof.sh report   `lorac run final --synthetic --max-steps 40` with samples every 10
#                               steps: report.html, samples, manifest, and `lorac inspect` of the
#                               LoRA against the profile and against one whose alpha differs
#   tests/gpu/proof.sh matrix   the VRAM calibration matrix (tests/gpu/vram_matrix.py), detached
#                               from a copy of the tree in /tmp/lorac-vm, so that it outlives the
#                               command; results in /tmp/vm
#   tests/gpu/proof.sh matrix h100 [D]  the same, detached, for one H100 in one call: the plan
#                               h100 of vram_matrix.py (FLUX.1 cases, SDXL), no run started that
#                               could not end D seconds (490) after the start
#   tests/gpu/proof.sh matrix sd3 [D]  the same for the plan sd3 of vram_matrix.py (SD3
#                               medium and SD3.5 large on synthetic sets that
#                               tests/gpu/sd3_synth.py writes into /tmp/sd3 first; after
#                               `setup sd3`)
#   tests/gpu/proof.sh matrix [h100 [D]] --only NAMES  either of them for the configurations
#                               NAMES alone (comma-separated ids, as `tests/gpu/vram_matrix.py
#                               list [--plan h100]` prints them; the selection goes to
#                               $OUT/selection.txt); a name the plan lacks stops it, exit 2,
#                               before anything starts
#   tests/gpu/proof.sh collect S  wait up to S seconds for the matrix, copy what finished to $OUT
#
# Needs the git-ignored folders .gpu/ (scripts/gpu_kit.sh) and .gpu-bnb/ (a bitsandbytes wheel
# for Python 3.12: the shipped profiles use AdamW8bit) carried along. Results go to $OUT.
set -uo pipefail
usage() {
    echo "usage: $0 setup [sd3]|formats|multi|interrupt|overhead|report|collect [S]" >&2
    echo "       $0 matrix [h100 [D]] [--only NAMES]" >&2
    echo "       $0 matrix sd3 [D] [--only NAMES]    (after $0 setup sd3)" >&2
    exit 2
}
OUT="${OUT:-/tmp/lorac-proof}"
#: where the detached matrix runs (a copy of the tree) and writes its results
VM_TREE="${VM_TREE:-/tmp/lorac-vm}" VM_OUT="${VM_OUT:-/tmp/vm}"
mkdir -p "$OUT"
# shellcheck source=tests/gpu/plan_collect.sh
source "$(dirname "${BASH_SOURCE[0]}")/plan_collect.sh"
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export LORAC_SD_SCRIPTS="$PWD/.gpu/sd-scripts" LORAC_SYNTH_DIR=/tmp/synth LORAC_NO_CACHE=1
lorac() { python3 -m lorac "$@"; }
summarise() { python3 tests/gpu/summarise.py "$@" | tee -a "$OUT/summary.txt"; }

case "${1:-}" in
setup)
    flux_set=1
    if [[ ${2:-} == sd3 ]]; then
        flux_set=0
        # a warm machine keeps /tmp: the SD3 sets need ~32 GB beside what is there
        if [[ ! -f /tmp/sd3/sd3.5-large.json ]]; then
            for d in /tmp/synth-aitk-flux /tmp/synth-aitk-wan /tmp/sdxl /tmp/synth; do
                (( $(df --output=avail -k /tmp | tail -1) >= 36 * 1024 * 1024 )) && break
                [[ -e $d ]] && rm -rf "$d" && echo "removed $d for room" | tee -a "$OUT/summary.txt"
            done
        fi
    elif [[ -n ${2:-} ]]; then
        usage
    fi
    # a warm machine keeps /tmp: ai-toolkit's FLUX set (32 GB) and this one do not both fit
    if ((flux_set)) && [[ ! -f /tmp/synth/lorac-synth.json ]] \
        && (( $(df --output=avail -k /tmp | tail -1) < 40 * 1024 * 1024 )); then
        rm -rf /tmp/synth-aitk-flux /tmp/synth-aitk-wan
        echo "removed ai-toolkit's synthetic sets for room" | tee -a "$OUT/summary.txt"
    fi
    if [[ ! -d /tmp/site ]]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
            .gpu/wheels/*.whl .gpu-bnb/*.whl 2>&1 | tail -3
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"
    python3 -c "import bitsandbytes as bnb, torch
p = torch.nn.Parameter(torch.randn(64, device='cuda')); o = bnb.optim.AdamW8bit([p], lr=1e-3)
p.grad = torch.randn_like(p); o.step(); print('bitsandbytes', bnb.__version__, 'AdamW8bit ok')"
    [[ -d data/subject2 ]] || { mkdir -p data; cp -r examples/subject data/subject2; }
    ((flux_set)) && ! [[ -f /tmp/synth/lorac-synth.json ]] && lorac synth flux1-dev \
        /tmp/synth --device cuda 2>&1 | tee "$OUT/synth.log"
    ;;
formats)
    CUDA_VISIBLE_DEVICES=0 lorac run fast --synthetic --max-steps 20 --format toml \
        --display plain --runs-dir runs-toml > "$OUT/run-toml.log" 2>&1 &
    a=$!
    CUDA_VISIBLE_DEVICES=1 DATA_DIR=data/subject2 lorac run fast --synthetic --max-steps 20 \
        --format cli --display plain --runs-dir runs-cli > "$OUT/run-cli.log" 2>&1 &
    b=$!
    wait $a; echo "toml exit $?" | tee -a "$OUT/summary.txt"
    wait $b; echo "cli exit $?" | tee -a "$OUT/summary.txt"
    summarise runs-toml runs-cli
    cp runs-toml/*/manifest.json "$OUT/manifest-toml.json"; cp runs-cli/*/manifest.json "$OUT/manifest-cli.json"
    tail -c 60000 runs-toml/*/train.log > "$OUT/train-toml.log"
    ;;
multi)
    printf '[profile]\nextends = "fast"\ndescription = "fast on two GPUs"\n[run]\ngpus = 2\n' \
        > profiles/fast2.toml
    lorac run fast2 --synthetic --max-steps 20 --display plain --runs-dir runs-multi \
        > "$OUT/run-multi.log" 2>&1
    echo "multi exit $?" | tee -a "$OUT/summary.txt"
    summarise runs-multi
    cp runs-multi/*/manifest.json "$OUT/manifest-multi.json"
    ;;
interrupt)
    # Ctrl-C once training has started. A background job of a non-interactive shell ignores
    # SIGINT, so the signal goes to lorac's own process, as a terminal would send it.
    CUDA_VISIBLE_DEVICES=0 python3 -m lorac run fast --synthetic --max-steps 20 --display plain \
        --runs-dir runs-int > "$OUT/run-int.log" 2>&1 &
    for _ in $(seq 1 240); do
        grep -qsaE "steps: +[0-9]+%\|" runs-int/*/train.log && break
        sleep 1
    done
    sleep 5
    pkill -INT -f "python3 -m lorac run fast"
    wait; echo "interrupted run finished" | tee -a "$OUT/summary.txt"
    sleep 2
    left=$(pgrep -f flux_train_network.py | wc -l)
    echo "trainer processes left after the interrupt: $left" | tee -a "$OUT/summary.txt"
    summarise runs-int
    ;;
overhead)
    python3 - <<'PY'
import json
a = json.load(open("/tmp/synth/lorac-synth.json"))["trainer_args"]
lines = ['[profile]', 'extends = "fast"', '[model]']
lines += [f'{k} = "{v}"' for k, v in a.items()]
lines += ['[training]', 'max_train_steps = 3', '[saving]', 'output_dir = "out-direct"']
open("profiles/short.toml", "w").write("\n".join(lines) + "\n")
PY
    lorac build short --backend kohya > "$OUT/build-short.log" 2>&1
    timed() { local name=$1; shift; local s; s=$(date +%s.%N); "$@"; local rc=$?
              echo "$name rc=$rc wall=$(python3 -c "import time; print(round(time.time() - $s, 2))") s" \
              | tee -a "$OUT/summary.txt"; }
    CUDA_VISIBLE_DEVICES=0 timed direct bash build/short/train.sh > "$OUT/direct.log" 2>&1 &
    a=$!
    CUDA_VISIBLE_DEVICES=1 DATA_DIR=data/subject2 timed lorac python3 -m lorac run short \
        --display plain --runs-dir runs-short > "$OUT/lorac-short.log" 2>&1 &
    b=$!
    wait $a $b
    grep -h "rc=" "$OUT/direct.log" "$OUT/lorac-short.log" | tee -a "$OUT/summary.txt"
    ;;
report)
    printf '[profile]\nextends = "final"\ndescription = "final, with samples every 10 steps"\n[sampling]\nsample_every_n_steps = 10\n' \
        > profiles/final-watch.toml
    printf '[profile]\nextends = "final-watch"\ndescription = "final-watch with another alpha"\n[network]\nnetwork_alpha = 32\n' \
        > profiles/final-alpha32.toml
    lorac run final-watch --synthetic --max-steps 40 --display plain --runs-dir runs-report \
        > "$OUT/run-report.log" 2>&1
    echo "report run exit $?" | tee -a "$OUT/summary.txt"
    summarise runs-report
    run=$(ls -d runs-report/*/ | head -1)
    cp "$run"manifest.json "$run"report.html "$OUT/" 2>/dev/null
    tail -c 60000 "$run"train.log > "$OUT/train-report.log"
    (cd "$run" && find . -name '*.png' -size -2M | head -40 | tar czf "$OUT/samples.tgz" -T -)
    find "$run" -maxdepth 3 -type f | sort | tee "$OUT/run-files.txt" > /dev/null
    lora=$(find "$run" -name 'flux_final*.safetensors' | sort | tail -1)
    echo "LoRA: $lora" | tee -a "$OUT/summary.txt"
    lorac inspect "$lora" --profile final-watch > "$OUT/inspect-final.txt" 2>&1
    echo "inspect against final-watch exit $?" | tee -a "$OUT/summary.txt"
    lorac inspect "$lora" --profile final-watch --format json > "$OUT/inspect-final.json" 2>&1
    lorac inspect "$lora" --profile final-alpha32 > "$OUT/inspect-alpha32.txt" 2>&1
    echo "inspect against final-alpha32 exit $?" | tee -a "$OUT/summary.txt"
    cat "$OUT/inspect-final.txt" "$OUT/inspect-alpha32.txt" | head -80
    lorac runs --runs-dir runs-report report "$(basename "$run")" > "$OUT/runs-report.log" 2>&1
    echo "runs report exit $?" | tee -a "$OUT/summary.txt"
    ;;
matrix)
    shift
    plan="" deadline="" only=()
    while (($#)); do
        case "$1" in
        --only) (($# >= 2)) || usage; only=(--only "$2"); shift 2 ;;
        --only=*) only=(--only "${1#--only=}"); shift ;;
        -*) usage ;;
        *) if [[ -z $plan ]]; then plan=$1
           elif [[ -z $deadline && $1 =~ ^[0-9]+$ ]]; then deadline=$1
           else usage; fi
           shift ;;
        esac
    done
    [[ -z $deadline || -n $plan ]] || usage
    if [[ -n $plan ]] && ! python3 tests/gpu/vram_matrix.py list --plan "$plan" > /dev/null; then
        exit 2
    fi
    plan_args=()
    [[ -n $plan ]] && plan_args=(--plan "$plan" --deadline "${deadline:-490}")
    if ((${#only[@]})); then
        python3 tests/gpu/vram_matrix.py list ${plan:+--plan "$plan"} "${only[@]}" \
            > "$OUT/selection.txt" || exit 2
        cat "$OUT/selection.txt"
    fi
    python3 tests/gpu/vram_matrix.py probe 2>&1 | tee "$OUT/probe.log"
    offset=$(awk '/^OFFSET/ {print $2}' "$OUT/probe.log")
    rm -rf "$VM_TREE" "$VM_OUT" && mkdir -p "$VM_OUT" && cp -r . "$VM_TREE"
    (cd "$VM_TREE" && PYTHONPATH="/tmp/site:$VM_TREE" \
        LORAC_SD_SCRIPTS="$VM_TREE/.gpu/sd-scripts" setsid nohup python3 \
        tests/gpu/vram_matrix.py run "$VM_OUT" --steps 4 --offset "${offset:-0}" \
        "${plan_args[@]}" "${only[@]}" \
        > "$VM_OUT/matrix.log" 2>&1 < /dev/null &)
    echo "matrix started, offset ${offset:-0} MiB"
    ;;
collect)
    collect_plan "$VM_OUT" "${2:-500}" matrix-logs.tgz 40
    ;;
*)
    usage
    ;;
esac
