#!/usr/bin/env bash
# Prepare the git-ignored folder .gpu/ that is copied to a bare GPU machine:
#
#   .gpu/sd-scripts/   a trimmed copy of kohya sd-scripts (no images/docs/tests/.git, ~4 MB)
#   .gpu/wheels/       Python 3.12 manylinux wheels of sd-scripts' own pins that such a machine
#                      lacks (sd-scripts does not import under transformers 5.x)
#
#   .gpu-bnb/          with --with-bnb: a bitsandbytes wheel that keeps only its CPU and CUDA 13.x
#                      libraries (~7 MB instead of ~43 MB), for the profiles that use AdamW8bit
#
# Usage: scripts/gpu_kit.sh [--with-bnb] [SD_SCRIPTS_DIR]   (default: $LORAC_SD_SCRIPTS)
#
# On the GPU machine:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl
#   export PYTHONPATH=/tmp/site
# Nothing here is ever committed: .gpu/ is in .gitignore.
set -euo pipefail

kit_name=gpu_kit
source "$(dirname "${BASH_SOURCE[0]}")/gpu_kit_common.sh"
with_bnb=0
if [[ "${1:-}" == "--with-bnb" ]]; then
    with_bnb=1
    shift
fi
src="${1:-${LORAC_SD_SCRIPTS:-}}"
if [[ -z "$src" ]]; then
    echo "gpu_kit: name the sd-scripts checkout (argument or LORAC_SD_SCRIPTS)" >&2
    exit 2
fi
kit="$here/.gpu"

if [[ ! -f "$src/flux_train_network.py" ]]; then
    echo "gpu_kit: $src is not an sd-scripts checkout" >&2
    exit 2
fi

mkdir -p "$kit/wheels"
rm -rf "$kit/sd-scripts"
mkdir -p "$kit/sd-scripts"
# Copy the trainer without what it never imports at run time.
tar -C "$src" \
    --exclude=./images --exclude=./docs --exclude=./tests --exclude=./.git \
    --exclude=./.github --exclude=./.ai --exclude='__pycache__' --exclude='*.md' \
    --exclude=./bitsandbytes_windows --exclude=./configs \
    -cf - . | tar -C "$kit/sd-scripts" -xf -

# sd-scripts' own pins (requirements.txt at 48d368fa) that the machine lacks or has in an
# incompatible version; wcwidth is ftfy's one dependency. Everything else transformers 4.54 and
# diffusers 0.32 need (regex, requests, tqdm, pyyaml, filelock, fsspec, hf-xet, ...) is there.
wheels=(
    transformers==4.54.1
    huggingface_hub==0.34.3
    "tokenizers>=0.21,<0.22"
    diffusers==0.32.1
    toml==0.10.2
    voluptuous==0.15.2
    imagesize==1.4.1
    ftfy==6.3.1
    wcwidth
    "${lorac_wheels[@]}"
)
kit_download "$kit/wheels" "${wheels[@]}"

if (( with_bnb )); then
    # bitsandbytes ships one library per CUDA/ROCm/XPU release; the machine runs CUDA 13.x.
    rm -rf "$here/.gpu-bnb" && mkdir -p "$here/.gpu-bnb"
    tmp="$(mktemp -d)"
    kit_platforms=(manylinux_2_24_x86_64)
    kit_download "$tmp" "bitsandbytes==0.50.2"
    kit_trim_bnb "$tmp"/bitsandbytes-*.whl "$here/.gpu-bnb"
    rm -rf "$tmp"
fi

kit_one_version "$kit/wheels"
kit_kib=$(( $(size_kib "$kit/sd-scripts") + $(size_kib "$kit/wheels") ))
carried=".gpu/sd-scripts + .gpu/wheels"
if [[ -d "$here/.gpu-bnb" ]]; then
    kit_kib=$(( kit_kib + $(size_kib "$here/.gpu-bnb") ))
    carried="$carried + .gpu-bnb"
fi
kit_check_carry "$carried" "$kit_kib"
exit $kit_status
