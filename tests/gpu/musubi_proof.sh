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
#
# Needs the git-ignored .gpu/musubi/ (scripts/gpu_kit_musubi.sh) carried along. The machine stays
# warm between calls, so /tmp/site and the synthetic set in $LORAC_SYNTH_DIR are made once.
set -uo pipefail
OUT="${OUT:-/tmp/lorac-musubi-proof}"
SITE="${SITE:-/tmp/site}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/musubi_proof.log") 2>&1
kit="$PWD/.gpu/musubi"
export PYTHONPATH="$SITE:$kit/musubi-tuner/src:$PWD" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LORAC_NO_CACHE=1 LORAC_GPU_PROOF=1
export LORAC_MUSUBI_TUNER="$kit/musubi-tuner" LORAC_SYNTH_DIR="${LORAC_SYNTH_DIR:-/tmp/synth-wan}"
export LORAC_PROOF_LOGS="$OUT"
# musubi's caching steps run as `python …`; the machine may only have python3
if ! command -v python > /dev/null; then
    mkdir -p /tmp/lorac-bin && ln -sf "$(command -v python3)" /tmp/lorac-bin/python
    export PATH="/tmp/lorac-bin:$PATH"
fi
pip_target() {
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$@" \
        2>&1 | tail -3
}

setup() {
    date -u
    if [[ ! -f "$SITE/.lorac-musubi-kit" ]]; then
        pip_target "$kit"/wheels/*.whl && touch "$SITE/.lorac-musubi-kit"
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"
    python3 - <<'PY' | tee "$OUT/versions.txt"
import importlib, importlib.util
for name in ("torch", "accelerate", "transformers", "diffusers", "tokenizers", "huggingface_hub",
             "safetensors", "av", "bitsandbytes", "lorac", "musubi_tuner.wan.modules.model"):
    if importlib.util.find_spec(name.split(".")[0]) is None:
        print(f"{name}: missing")
        continue
    try:
        module = importlib.import_module(name)
        print(f"{name}: {getattr(module, '__version__', 'ok')} ({getattr(module, '__file__', '')})")
    except Exception as exc:  # report every import problem, not just the first
        print(f"{name}: FAILED {type(exc).__name__}: {exc}")
PY
    if [[ ! -f "$LORAC_SYNTH_DIR/lorac-synth.json" ]]; then
        python3 -m lorac synth wan2.1-t2v-1.3b "$LORAC_SYNTH_DIR" --device cuda 2>&1 \
            | tee "$OUT/synth.log"
    fi
    cp "$LORAC_SYNTH_DIR/lorac-synth.json" "$OUT/" 2>/dev/null
    ls -la "$LORAC_SYNTH_DIR" | tee -a "$OUT/summary.txt"
    df -h /tmp | tee -a "$OUT/summary.txt"
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

case "${1:-}" in
av)
    pip_target "$PWD"/.gpu/musubi-av/*.whl
    python3 -c "import sys; sys.path.insert(0, '$SITE'); import av; print('av', av.__version__)"
    ;;
setup) setup ;;
image) case_ image ;;
video) case_ video ;;
all) setup; case_ image; case_ video ;;
*)
    echo "usage: $0 av|setup|image|video|all" >&2
    exit 2
    ;;
esac
