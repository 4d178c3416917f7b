#!/usr/bin/env bash
# The GPU proof of `lorac run` with musubi-tuner (Wan 2.1 T2V 1.3B, synthetic weights), on the
# device machine, from the repository root. Logs, manifests and a summary go to $OUT.
#
#   tests/gpu/musubi_proof.sh av      install the PyAV wheel (carry .gpu/musubi-av in a call
#                                     of its own: it does not fit beside .gpu/musubi)
#   tests/gpu/musubi_proof.sh setup   wheels into /tmp/site, import check, synthetic set (~15 GB)
#   tests/gpu/musubi_proof.sh image   the image-dataset case of tests/gpu/test_musubi_proof.py
#   tests/gpu/musubi_proof.sh video   the video-dataset case (needs `av` first)
#   tests/gpu/musubi_proof.sh all     setup, then both cases (may not fit one 10-minute call)
#   tests/gpu/musubi_proof.sh matrix [D]  setup without the Wan set, the synthetic Qwen-Image set
#                                     (29 GB, once), then the plan (tests/gpu/musubi_matrix.py)
#                                     started detached into $MATRIX (/tmp/musubi-matrix), its
#                                     runs started while D seconds (450, counted from now) leave
#                                     them time; with MATRIX_WAN=1 the Wan set is written beside
#                                     the first runs and its two runs start once it is (they
#                                     fill gaps, and may keep a Qwen-Image run from starting)
#   tests/gpu/musubi_proof.sh collect [S]  wait up to S seconds (0) for the plan's DONE, then
#                                     copy records.jsonl, matrix.log and a tar of its logs to $OUT
#
# Needs the git-ignored .gpu/musubi/ (scripts/gpu_kit_musubi.sh) carried along. The machine stays
# warm between calls, so /tmp/site and the synthetic sets are made once. KIT, SITE and
# SYNTH_ARGS (default "--device cuda") may be set otherwise, to try the script's steps on a
# machine without a GPU (SYNTH_ARGS="--device cpu --tiny"; KIT's wheels/ may be empty there).
set -uo pipefail
OUT="${OUT:-/tmp/lorac-musubi-proof}"
SITE="${SITE:-/tmp/site}"
mkdir -p "$OUT"
# shellcheck source=tests/gpu/plan_collect.sh
source "$(dirname "${BASH_SOURCE[0]}")/plan_collect.sh"
exec > >(tee -a "$OUT/musubi_proof.log") 2>&1
kit="${KIT:-$PWD/.gpu/musubi}"
export PYTHONPATH="$SITE:$kit/musubi-tuner/src:$PWD" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LORAC_NO_CACHE=1 LORAC_GPU_PROOF=1
export LORAC_MUSUBI_TUNER="$kit/musubi-tuner" LORAC_SYNTH_DIR="${LORAC_SYNTH_DIR:-/tmp/synth-wan}"
export LORAC_PROOF_LOGS="$OUT"
export LORAC_SYNTH_DIR_QWEN="${LORAC_SYNTH_DIR_QWEN:-/tmp/synth-qwen}"
MATRIX="${MATRIX:-/tmp/musubi-matrix}"
# musubi's caching steps run as `python …`; the machine may only have python3
if ! command -v python > /dev/null; then
    mkdir -p /tmp/lorac-bin && ln -sf "$(command -v python3)" /tmp/lorac-bin/python
    export PATH="/tmp/lorac-bin:$PATH"
fi
pip_target() {
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$@" \
        2>&1 | tail -3
}

summary() { tee -a "$OUT/summary.txt"; }

setup() {  # "nowan": without the Wan set
    local start=$SECONDS
    date -u
    if [[ ! -f "$SITE/.lorac-musubi-kit" ]] && compgen -G "$kit/wheels/*.whl" > /dev/null; then
        mkdir -p "$SITE" && pip_target "$kit"/wheels/*.whl && touch "$SITE/.lorac-musubi-kit"
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"
    python3 - <<'PY' | tee "$OUT/versions.txt"
import importlib, importlib.util
for name in ("torch", "accelerate", "transformers", "diffusers", "tokenizers", "huggingface_hub",
             "safetensors", "av", "bitsandbytes", "regex", "lorac", "musubi_tuner.wan.modules.model",
             "musubi_tuner.qwen_image.qwen_image_utils"):
    if importlib.util.find_spec(name.split(".")[0]) is None:
        print(f"{name}: missing")
        continue
    try:
        module = importlib.import_module(name)
        print(f"{name}: {getattr(module, '__version__', 'ok')} ({getattr(module, '__file__', '')})")
    except Exception as exc:  # report every import problem, not just the first
        print(f"{name}: FAILED {type(exc).__name__}: {exc}")
PY
    echo "setup: $(( SECONDS - start )) s" | summary
    if [[ "${1:-}" == nowan ]]; then return; fi
    synth wan2.1-t2v-1.3b "$LORAC_SYNTH_DIR"
    cp "$LORAC_SYNTH_DIR/lorac-synth.json" "$OUT/" 2>/dev/null
    ls -la "$LORAC_SYNTH_DIR" | summary
    df -h /tmp | summary
}

synth() {  # family folder: written once (a set without its "complete" marker is written again)
    local start=$SECONDS
    if ! grep -qs '"complete": true' "$2/lorac-synth.json"; then
        # shellcheck disable=SC2086
        python3 -m lorac synth "$1" "$2" ${SYNTH_ARGS:---device cuda} > "$OUT/synth-$1.log" 2>&1
        tail -5 "$OUT/synth-$1.log"
    fi
    echo "synth $1: $(( SECONDS - start )) s, $(du -sh "$2" | cut -f1); $(df -h --output=avail \
        /tmp | tail -1) free" | summary
}

case_() {  # image | video
    date -u
    python3 -m pytest -q -p no:cacheprovider -rA tests/gpu/test_musubi_proof.py \
        -k "$1_dataset" 2>&1 | tee "$OUT/pytest-$1.log" | tail -40
    echo "$1: pytest exit ${PIPESTATUS[0]}" | tee -a "$OUT/summary.txt"
    python3 - "$OUT" "$1" <<'PY' | tee -a "$OUT/summary.txt"
import json, pathlib, sys
out, case = pathlib.Path(sys.argv[1]), sys.argv[2]
for path in sorted(out.glob(f"test_{case}_dataset*-manifest.json")):
    m = json.loads(path.read_text())
    p = m.get("progress") or {}
    print(f"{path.name}: {m.get('status')} exit {m.get('exit_code')} in {m.get('duration_s')} s; "
          f"step {p.get('step')}/{p.get('total')}, {p.get('sec_per_it')} s/it")
    for phase, gpus in ((m.get("telemetry") or {}).get("phases") or {}).items():
        print(f"  {phase:<20} peak " + ", ".join(
            f"gpu{i} {v.get('memory_used_mib')} MiB" for i, v in gpus.items()))
PY
}

matrix() {  # deadline in seconds from the call's start
    local deadline=${1:-450} offset left wan=()
    setup nowan
    synth qwen-image "$LORAC_SYNTH_DIR_QWEN"
    python3 tests/gpu/vram_matrix.py probe > "$OUT/probe.log" 2>&1
    offset=$(awk '/^OFFSET/ {print $2}' "$OUT/probe.log")
    mkdir -p "$MATRIX"
    if [[ "${MATRIX_WAN:-0}" == 1 ]] \
        && (( $(df --output=avail -k /tmp | tail -1) > 20 * 1024 * 1024 )); then
        wan=(--wan-synth-dir "$LORAC_SYNTH_DIR")
        # beside the first Qwen-Image runs: its runs wait for the set's marker
        setsid nohup bash -c "$(declare -f synth summary); OUT='$OUT' SYNTH_ARGS='${SYNTH_ARGS:-}' \
            synth wan2.1-t2v-1.3b '$LORAC_SYNTH_DIR'" > "$MATRIX/synth-wan.log" 2>&1 < /dev/null &
    fi
    left=$(( deadline - SECONDS ))
    echo "plan started with ${left} s left, offset ${offset:-0} MiB, ${wan[*]:-no Wan}" | summary
    setsid nohup python3 tests/gpu/musubi_matrix.py run "$MATRIX" --deadline "$left" \
        --offset "${offset:-0}" --synth-dir "$LORAC_SYNTH_DIR_QWEN" "${wan[@]}" \
        > "$MATRIX/matrix.log" 2>&1 < /dev/null &
    sleep 20
    tail -5 "$MATRIX/matrix.log"
}

collect() {  # seconds to wait for DONE (the latent and text caches stay behind)
    collect_plan "$MATRIX" "${1:-0}" musubi-matrix-logs.tar.gz 15 --exclude='cache-*'
}

case "${1:-}" in
matrix) matrix "${2:-450}" ;;
collect) collect "${2:-0}" ;;
av)
    pip_target "$PWD"/.gpu/musubi-av/*.whl
    python3 -c "import sys; sys.path.insert(0, '$SITE'); import av; print('av', av.__version__)"
    ;;
setup) setup ;;
image) case_ image ;;
video) case_ video ;;
all) setup; case_ image; case_ video ;;
*)
    echo "usage: $0 av|setup|image|video|all|matrix [D]|collect [S]" >&2
    exit 2
    ;;
esac
