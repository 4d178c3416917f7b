#!/usr/bin/env bash
# Prepare the git-ignored folder .gpu/musubi/ that travels to the GPU machine for the
# musubi-tuner proof (run tool, carry ".gpu/musubi"):
#
#   .gpu/musubi/musubi-tuner/  musubi-tuner's src/ (no docs/images/tests/gui, no .git), its
#                              pyproject.toml and .lorac-commit; on PYTHONPATH as .../src
#   .gpu/musubi/wheels/        Python 3.12 manylinux wheels the GPU machine lacks: musubi's pins
#                              that differ from the machine's, and lorac's run-time dependencies
#   .gpu/musubi-av/            only with --with-av: the PyAV wheel (video files), 33 MiB, too
#                              much beside the rest: carry it in a call of its own first,
#                              install it into /tmp/site there (it stays while the machine is
#                              warm), then carry .gpu/musubi
#
# Usage: scripts/gpu_kit_musubi.sh [--with-av] [MUSUBI_DIR]
#        (default: $LORAC_MUSUBI_TUNER or /work/trainers/musubi-tuner)
#
# On the GPU machine (tests/gpu/musubi_proof.sh does this):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
#       .gpu/musubi/wheels/*.whl
#   export PYTHONPATH=/tmp/site:$PWD/.gpu/musubi/musubi-tuner/src:$PWD
# Nothing here is ever committed: .gpu/ is in .gitignore.
set -euo pipefail

with_av=0
if [[ "${1:-}" == "--with-av" ]]; then
    with_av=1
    shift
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${1:-${LORAC_MUSUBI_TUNER:-/work/trainers/musubi-tuner}}"
kit="$here/.gpu/musubi"
limit_mib=60

if [[ ! -f "$src/src/musubi_tuner/wan_train_network.py" ]]; then
    echo "gpu_kit_musubi: $src is not a musubi-tuner checkout" >&2
    exit 2
fi

kit_av="$here/.gpu/musubi-av"
rm -rf "$kit/musubi-tuner" "$kit/wheels" "$kit_av"
mkdir -p "$kit/musubi-tuner" "$kit/wheels"
# The package without what training never imports (the Gradio GUI) and without caches.
tar -C "$src" --exclude='__pycache__' --exclude='*.md' --exclude=./src/musubi_tuner/gui \
    -cf - src pyproject.toml | tar -C "$kit/musubi-tuner" -xf -
if [[ -f "$src/.lorac-commit" ]]; then
    cp "$src/.lorac-commit" "$kit/musubi-tuner/"
elif git -C "$src" rev-parse HEAD > /dev/null 2>&1; then
    git -C "$src" rev-parse HEAD > "$kit/musubi-tuner/.lorac-commit"
fi

# musubi-tuner's pins (pyproject.toml at 30c658c4) that the machine lacks or has in another
# version; the machine's torch, accelerate, safetensors, numpy, einops, opencv, pillow,
# sentencepiece and tqdm serve. tokenizers 0.22 is what transformers 4.57 requires; wcwidth is
# ftfy's one dependency. Then lorac's own run-time dependencies (a bare machine lacked tomlkit;
# rich and pygments are there), and pytest for the proof.
wheels=(
    transformers==4.57.6
    diffusers==0.32.1
    huggingface_hub==0.34.3
    "tokenizers>=0.22,<0.23"
    toml==0.10.2
    voluptuous==0.15.2
    ftfy==6.3.1
    easydict==1.13
    wcwidth
    click
    pluggy
    tomlkit
    jsonschema
    attrs
    jsonschema-specifications
    referencing
    rpds-py
    pyyaml
    imagehash
    PyWavelets
    # tests/gpu/musubi_proof.sh runs the proof as a pytest test
    pytest
    iniconfig
    packaging
)
download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 -d "$@"
}
download "$kit/wheels" "${wheels[@]}"
if (( with_av )); then
    mkdir -p "$kit_av"
    download "$kit_av" av==14.0.1
fi

# One version of each distribution: two stop `pip install --target` on the machine.
dups="$(ls "$kit/wheels" | sed 's/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)"
if [[ -n "$dups" ]]; then
    echo "gpu_kit_musubi: several versions of: $dups" >&2
    exit 1
fi

size_kib() { du -sk "$1" | cut -f1; }
kit_kib=$(size_kib "$kit")
repo_kib=$(git -C "$here" ls-files -co --exclude-standard -z | xargs -0 du -ck 2>/dev/null \
    | tail -1 | cut -f1)
echo "gpu_kit_musubi: musubi-tuner $(( $(size_kib "$kit/musubi-tuner") / 1024 )) MiB," \
     "wheels $(( $(size_kib "$kit/wheels") / 1024 )) MiB ($(ls "$kit/wheels" | wc -l) files)"
status=0
check() {  # name, KiB carried
    local total=$(( ($2 + repo_kib) / 1024 ))
    echo "gpu_kit_musubi: carry $1: $(( $2 / 1024 )) MiB + the working tree" \
         "$(( repo_kib / 1024 )) MiB = ${total} of 64 MiB per call"
    if (( total >= limit_mib )); then
        echo "gpu_kit_musubi: over ${limit_mib} MiB; the run tool carries 64 MiB at most" >&2
        status=1
    fi
}
check .gpu/musubi "$kit_kib"
if (( with_av )); then
    check .gpu/musubi-av "$(size_kib "$kit_av")"
fi
exit $status
