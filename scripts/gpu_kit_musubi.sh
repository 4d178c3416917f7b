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
#        (default: $LORAC_MUSUBI_TUNER; one of the two is needed)
#
# On the GPU machine (tests/gpu/musubi_proof.sh does this):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
#       .gpu/musubi/wheels/*.whl
#   export PYTHONPATH=/tmp/site:$PWD/.gpu/musubi/musubi-tuner/src:$PWD
# Nothing here is ever committed: .gpu/ is in .gitignore.
set -euo pipefail

kit_name=gpu_kit_musubi
source "$(dirname "${BASH_SOURCE[0]}")/gpu_kit_common.sh"
with_av=0
if [[ "${1:-}" == "--with-av" ]]; then
    with_av=1
    shift
fi
src="${1:-${LORAC_MUSUBI_TUNER:-}}"
if [[ -z "$src" ]]; then
    echo "gpu_kit_musubi: name a musubi-tuner checkout (argument or \$LORAC_MUSUBI_TUNER)" >&2
    exit 2
fi
kit="$here/.gpu/musubi"

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
# ftfy's one dependency; regex is what transformers' Qwen2 tokenizer (Qwen-Image) imports. Then
# lorac's own run-time dependencies (a bare machine lacked tomlkit;
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
    regex
    "${lorac_wheels[@]}"
    # tests/gpu/musubi_proof.sh runs the proof as a pytest test
    "${pytest_wheels[@]}"
)
kit_platforms=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64)
kit_download "$kit/wheels" "${wheels[@]}"
if (( with_av )); then
    mkdir -p "$kit_av"
    kit_download "$kit_av" av==14.0.1
fi

kit_one_version "$kit/wheels"
echo "gpu_kit_musubi: musubi-tuner $(( $(size_kib "$kit/musubi-tuner") / 1024 )) MiB," \
     "wheels $(( $(size_kib "$kit/wheels") / 1024 )) MiB ($(ls "$kit/wheels" | wc -l) files)"
kit_check_carry .gpu/musubi "$(size_kib "$kit")"
if (( with_av )); then
    kit_check_carry .gpu/musubi-av "$(size_kib "$kit_av")"
fi
exit $kit_status
