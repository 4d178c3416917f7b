#!/usr/bin/env bash
# The GPU proof of `lorac run --backend ai-toolkit`, on the device machine, from the repository
# root. Logs, manifests and a summary go to $OUT as they are made (a cut-off call still
# returns what finished).
#
#   tests/gpu/aitk_proof.sh setup   ai-toolkit into /tmp/ai-toolkit (checked against its
#                                   SHA256SUMS), wheels into /tmp/site, import and 8-bit
#                                   optimizer check
#   tests/gpu/aitk_proof.sh flux    synthetic FLUX.1 set (~34 GB, once), then
#                                   `lorac run final --backend ai-toolkit --synthetic
#                                   --max-steps 20` (tests/gpu/test_aitk_proof.py)
#   tests/gpu/aitk_proof.sh wan     synthetic Wan 2.1 1.3B set (~15 GB, once; the FLUX set is
#                                   removed first when the disk is short), then the Wan example
#   tests/gpu/aitk_proof.sh all     the three, in that order
#   tests/gpu/aitk_proof.sh auto [D]  setup and flux; then, while D seconds (570) allow it,
#                                   the FLUX run again with CUDA_LAUNCH_BLOCKING=1 if it failed
#                                   (to name the kernel), else the Wan example alone
#   tests/gpu/aitk_proof.sh variant NAME...  setup, then `final` changed as
#                                   test_flux_variant_twenty_steps says (flash: torch's flash
#                                   attention; bf16: no quantisation, on an 80GB card; r512)
#   tests/gpu/aitk_proof.sh matrix [D]  setup and the FLUX.1 set, then the ai-toolkit plan
#                                   (tests/gpu/aitk_matrix.py) started detached into
#                                   /tmp/aitk-matrix, its runs started while D seconds (480,
#                                   counted from now) leave them time
#   tests/gpu/aitk_proof.sh collect [S]  wait up to S seconds (0) for the plan's DONE, then copy
#                                   records.jsonl, matrix.log and a tar of its logs to $OUT
#
# Needs the git-ignored .gpu/aitk/ (scripts/gpu_kit_aitk.sh) carried along. The machine stays
# warm between calls, so /tmp/site, /tmp/ai-toolkit and the synthetic sets are made once.
# KIT, SITE, AITK and SYNTH_ARGS (default "--device cuda") may be set otherwise, to try the
# script's steps on a machine without a GPU (SYNTH_ARGS="--device cpu --tiny").
set -uo pipefail
OUT="${OUT:-/tmp/lorac-aitk-proof}"
SITE="${SITE:-/tmp/site}"
AITK="${AITK:-/tmp/ai-toolkit}"
mkdir -p "$OUT"
# shellcheck source=tests/gpu/plan_collect.sh
source "$(dirname "${BASH_SOURCE[0]}")/plan_collect.sh"
exec > >(tee -a "$OUT/aitk_proof.log") 2>&1
kit="${KIT:-$PWD/.gpu/aitk}"
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 HF_HOME=/tmp/hf-home
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LORAC_NO_CACHE=1 LORAC_GPU_PROOF=1
export LORAC_AI_TOOLKIT="$AITK" LORAC_PROOF_LOGS="$OUT"
export LORAC_SYNTH_DIR_FLUX="${LORAC_SYNTH_DIR_FLUX:-/tmp/synth-aitk-flux}"
export LORAC_SYNTH_DIR_WAN="${LORAC_SYNTH_DIR_WAN:-/tmp/synth-aitk-wan}"
# lorac launches ai-toolkit as `python run.py job.yaml`; the machine may only have python3
if ! command -v python > /dev/null; then
    mkdir -p /tmp/lorac-bin && ln -sf "$(command -v python3)" /tmp/lorac-bin/python
    export PATH="/tmp/lorac-bin:$PATH"
fi
summary() { tee -a "$OUT/summary.txt"; }

setup() {
    local start=$SECONDS
    date -u
    if [[ ! -f "$AITK/.lorac-unpacked" ]]; then
        rm -rf "$AITK" && mkdir -p "$AITK" \
            && tar -C "$AITK" --strip-components=1 -xJf "$kit/ai-toolkit.tar.xz" \
            && touch "$AITK/.lorac-unpacked"
    fi
    (cd "$AITK" && sha256sum --quiet -c SHA256SUMS && echo "ai-toolkit $(cat .lorac-commit):" \
        "$(wc -l < SHA256SUMS) files, all as in the checkout") | summary
    if [[ ! -f "$SITE/.lorac-aitk-kit" ]]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
            "$kit"/wheels/*.whl 2>&1 | tail -3
        touch "$SITE/.lorac-aitk-kit"
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"
    python3 - <<'PY' | tee "$OUT/versions.txt"
import importlib
for name in ("torch", "torchvision", "accelerate", "transformers", "diffusers", "huggingface_hub",
             "tokenizers", "safetensors", "peft", "optimum.quanto", "torchao", "lycoris",
             "timm", "open_clip", "bitsandbytes", "albumentations", "torchaudio", "av", "lpips",
             "controlnet_aux", "lorac"):
    try:
        module = importlib.import_module(name)
        print(f"{name}: {getattr(module, '__version__', 'ok')} ({getattr(module, '__file__', '')})")
    except Exception as exc:  # report every import problem, not just the first
        print(f"{name}: {type(exc).__name__}: {exc}")
PY
    python3 -c "import bitsandbytes as bnb, torch
p = torch.nn.Parameter(torch.randn(64, device='cuda')); o = bnb.optim.AdamW8bit([p], lr=1e-3)
p.grad = torch.randn_like(p); o.step(); print('bitsandbytes', bnb.__version__, 'AdamW8bit ok')" \
        2>&1 | tail -3 | summary
    echo "setup: $(( SECONDS - start )) s" | summary
}

synth() {  # family folder
    local start=$SECONDS
    # a warm machine keeps /tmp: sd-scripts' FLUX set (tests/gpu/proof.sh) may fill the disk
    if [[ ! -f "$2/lorac-synth.json" && -d /tmp/synth ]] \
        && (( $(df --output=avail -k /tmp | tail -1) < 40 * 1024 * 1024 )); then
        rm -rf /tmp/synth /tmp/vm /tmp/lorac-vm
        echo "removed sd-scripts' synthetic set for room" | summary
    fi
    if [[ ! -f "$2/lorac-synth.json" ]] || ! grep -q '"complete": true' "$2/lorac-synth.json"; then
        # shellcheck disable=SC2086
        python3 -m lorac synth "$1" "$2" --backend ai-toolkit ${SYNTH_ARGS:---device cuda} 2>&1 \
            | grep -v "Writing model shards\|Loading weights" | tee "$OUT/synth-$1.log"
    fi
    du -sh "$2" | summary
    echo "synth $1: $(( SECONDS - start )) s; $(df -h --output=avail /tmp | tail -1) free" \
        | summary
}

case_() {  # pytest -k expression, manifest glob
    local start=$SECONDS
    date -u
    python3 -m pytest -q -p no:cacheprovider -rA tests/gpu/test_aitk_proof.py -k "$1" 2>&1 \
        | tee "$OUT/pytest-${1// /-}.log" | tail -40
    echo "$1: pytest exit ${PIPESTATUS[0]} in $(( SECONDS - start )) s" | summary
    python3 - "$OUT" "$2" <<'PY' | summary
import json, pathlib, sys
out, pattern = pathlib.Path(sys.argv[1]), sys.argv[2]
for path in sorted(out.glob(pattern)):
    m = json.loads(path.read_text())
    p = m.get("progress") or {}
    print(f"{path.name}: {m.get('status')} exit {m.get('exit_code')} in {m.get('duration_s')} s; "
          f"step {p.get('step')}/{p.get('total')}, {p.get('sec_per_it')} s/it, loss {p.get('loss')}")
    at = {ph["phase"]: ph["at_s"] for ph in m.get("phases") or []}
    for phase, gpus in ((m.get("telemetry") or {}).get("phases") or {}).items():
        print(f"  {phase:<20} from {at.get(phase, '?'):>7} s  peak " + ", ".join(
            f"gpu{i} {v.get('memory_used_mib')} MiB" for i, v in gpus.items()))
    for f in (m.get("lora_check") or {}).get("files") or []:
        print(f"  lora {f['path']}: {f.get('modules')} modules (expected "
              f"{m['lora_check'].get('expected_modules')}), rank {f.get('rank')}, "
              f"problems {f.get('problems')}")
PY
}

flux() {
    synth flux1-dev "$LORAC_SYNTH_DIR_FLUX"
    case_ flux_final "test_flux_final*-manifest.json"
}

keep() {  # folder: move this attempt's logs aside, so that a rerun does not overwrite them
    mkdir -p "$OUT/$1" && mv "$OUT"/test_* "$OUT"/pytest-* "$OUT/$1/" 2>/dev/null
}

auto() {
    local deadline=${1:-570}
    setup
    flux
    if grep -qs "flux_final: pytest exit 0" "$OUT/summary.txt"; then
        if (( SECONDS + 200 < deadline )); then wan; fi
    elif (( SECONDS + 200 < deadline )); then
        keep first
        echo "again with CUDA_LAUNCH_BLOCKING=1" | summary
        CUDA_LAUNCH_BLOCKING=1 TORCH_SHOW_CPP_STACKTRACES=1 case_ flux_final \
            "test_flux_final*-manifest.json"
    fi
}

variant() {  # each NAME is started only while ${DEADLINE:-570} s leave it 240 s
    synth flux1-dev "$LORAC_SYNTH_DIR_FLUX"
    local v
    for v in "$@"; do
        if (( SECONDS + 240 > ${DEADLINE:-570} )); then echo "no time for $v" | summary; break; fi
        case_ "variant_twenty_steps and $v" "flux_$v-manifest.json"
    done
}

wan() {
    # both sets (~49 GB) may not fit the 64 GB disk beside the rest: FLUX has run by now
    if (( $(df --output=avail -k /tmp | tail -1) < 25 * 1024 * 1024 )); then
        rm -rf "$LORAC_SYNTH_DIR_FLUX"
        echo "removed the FLUX set for room" | summary
    fi
    synth wan2.1-t2v-1.3b "$LORAC_SYNTH_DIR_WAN"
    case_ wan21 "test_wan21*-manifest.json"
}

MATRIX="${MATRIX:-/tmp/aitk-matrix}"

matrix() {  # deadline in seconds from the call's start
    local deadline=${1:-480}
    setup
    synth flux1-dev "$LORAC_SYNTH_DIR_FLUX"
    python3 tests/gpu/vram_matrix.py probe 2>&1 | tee "$OUT/probe.log"
    local offset left
    offset=$(awk '/^OFFSET/ {print $2}' "$OUT/probe.log")
    left=$(( deadline - SECONDS ))
    mkdir -p "$MATRIX"
    echo "plan started with ${left} s left, offset ${offset:-0} MiB" | summary
    setsid nohup python3 tests/gpu/aitk_matrix.py run "$MATRIX" --deadline "$left" \
        --offset "${offset:-0}" --synth-dir "$LORAC_SYNTH_DIR_FLUX" \
        > "$MATRIX/matrix.log" 2>&1 < /dev/null &
    sleep 20
    tail -5 "$MATRIX/matrix.log"
}

collect() {  # seconds to wait for DONE
    collect_plan "$MATRIX" "${1:-0}" aitk-matrix-logs.tar.gz 15
}

case "${1:-}" in
setup) setup ;;
matrix) matrix "${2:-480}" ;;
collect) collect "${2:-0}" ;;
flux) flux ;;
wan) wan ;;
all) setup; flux; wan ;;
auto) auto "${2:-570}" ;;
variant) shift; setup; variant "$@" ;;
*)
    echo "usage: $0 setup|flux|wan|all|auto [D]|variant NAME...|matrix [D]|collect [S]" >&2
    exit 2
    ;;
esac
