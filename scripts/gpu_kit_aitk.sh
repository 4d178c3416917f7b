#!/usr/bin/env bash
# Prepare the git-ignored folder .gpu/aitk/ that travels to the GPU machine for the ai-toolkit
# proof (run tool, carry ".gpu/aitk"; tests/gpu/aitk_proof.sh uses it):
#
#   .gpu/aitk/ai-toolkit.tar.xz  ai-toolkit's files, unmodified, without what training never
#                                reads (ui/, assets/, notebooks/, docker/, .git, *.md): its
#                                keymaps are 8 MB of JSON, 1 MB compressed
#   .gpu/aitk/wheels/            Python 3.12 manylinux wheels the GPU machine lacks or has in
#                                another version: ai-toolkit's pins on the path run.py -> its
#                                sd_trainer -> the FLUX.1 and Wan 2.1 classes, lorac's own
#                                run-time dependencies, pytest, and a bitsandbytes trimmed to its
#                                CPU and CUDA 13 libraries (the shipped profiles use AdamW8bit)
#
# Usage: scripts/gpu_kit_aitk.sh [AI_TOOLKIT_DIR]   (default: $LORAC_AI_TOOLKIT)
#        KIT_PY=3.11 KIT_DIR=/tmp/kit311 scripts/gpu_kit_aitk.sh ...: the same wheels for
#        another Python, elsewhere (to check the import closure on a machine without a GPU)
#
# On the GPU machine (tests/gpu/aitk_proof.sh setup does this):
#   tar -C /tmp -xJf .gpu/aitk/ai-toolkit.tar.xz
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
#       .gpu/aitk/wheels/*.whl
#   export PYTHONPATH=/tmp/site:$PWD LORAC_AI_TOOLKIT=/tmp/ai-toolkit
# Nothing here is ever committed: .gpu/ is in .gitignore.
set -euo pipefail

kit_name=gpu_kit_aitk
source "$(dirname "${BASH_SOURCE[0]}")/gpu_kit_common.sh"
src="${1:-${LORAC_AI_TOOLKIT:-}}"
kit="${KIT_DIR:-$here/.gpu/aitk}"
kit_py="${KIT_PY:-3.12}"

if [[ -z "$src" || ! -f "$src/toolkit/config_modules.py" || ! -f "$src/run.py" ]]; then
    echo "gpu_kit_aitk: ${src:-(none given)} is not an ai-toolkit checkout" >&2
    exit 2
fi

rm -rf "$kit"
mkdir -p "$kit/wheels" "$kit/build"
stage="$kit/build/ai-toolkit"
mkdir -p "$stage"
tar -C "$src" --exclude='__pycache__' --exclude='.git' --exclude='*.md' \
    --exclude=./ui --exclude=./assets --exclude=./notebooks --exclude=./docker \
    --exclude=./build_and_push_docker --exclude=./build_and_push_docker_dev \
    --exclude=./output --exclude=./testing \
    -cf - . | tar -C "$stage" -xf -
if [[ ! -f "$stage/.lorac-commit" ]] && git -C "$src" rev-parse HEAD > /dev/null 2>&1; then
    git -C "$src" rev-parse HEAD > "$stage/.lorac-commit"
fi
# every file as it is in the checkout, so the machine can show it ran ai-toolkit unmodified
(cd "$stage" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum) \
    > "$stage/SHA256SUMS"
tar -C "$kit/build" -cJf "$kit/ai-toolkit.tar.xz" ai-toolkit

# ai-toolkit's pins (requirements_base.txt at 27a03a91) that the path to its FLUX.1 and Wan 2.1
# LoRA training imports. diffusers: ai-toolkit pins git commit c943837899b1, which release
# v0.39.0 contains. The machine's torch, torchvision, accelerate, safetensors, numpy, pillow,
# opencv, sentencepiece, protobuf, einops, tensorboard and rich serve. Not carried: albumentations
# (scikit-image, scipy), lpips (scipy), controlnet_aux (scikit-image), torchaudio and av (40 MB):
# stand-ins, see lorac/trainers/ai_toolkit/synth.py STAND_INS.
wheels=(
    transformers==5.5.3
    diffusers==0.39.0
    huggingface_hub==1.23.0
    "tokenizers>=0.22,<0.23"  # transformers 5.5.3 requires <=0.23.0
    peft==0.18.1
    optimum-quanto==0.2.4
    torchao==0.10.0
    timm==1.0.22              # lycoris 1.8.3 imports it at module level (hypernet)
    open_clip_torch           # the same
    ftfy
    wcwidth
    oyaml
    python-dotenv
    # huggingface_hub 1.x and diffusers' pipelines
    httpx
    httpcore
    anyio
    h11
    typer
    shellingham
    requests
    urllib3
    idna
    certifi
    charset_normalizer
    regex                     # transformers; the machine has it with its own transformers
    tqdm
    "${lorac_wheels[@]}"
    # tests/gpu/aitk_proof.sh runs the proof as a pytest test
    "${pytest_wheels[@]}"
)
kit_platforms=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64
               manylinux_2_28_x86_64)
kit_download "$kit/wheels" "${wheels[@]}"
# lycoris-lora 1.8.3 (ai-toolkit's pin) is on PyPI as a source archive only: pure Python
python3 -m pip wheel -q --no-deps --no-binary=:all: -w "$kit/wheels" lycoris-lora==1.8.3
kit_download "$kit/build" bitsandbytes
kit_trim_bnb "$kit"/build/bitsandbytes-*.whl "$kit/wheels"
rm -rf "$kit/build"

kit_one_version "$kit/wheels"
echo "gpu_kit_aitk: ai-toolkit $(( $(size_kib "$kit/ai-toolkit.tar.xz") / 1024 )) MiB" \
     "(tar.xz), wheels $(( $(size_kib "$kit/wheels") / 1024 )) MiB" \
     "($(ls "$kit/wheels" | wc -l) files)"
for w in "$kit"/wheels/*.whl; do
    printf '  %6d KiB  %s\n' "$(size_kib "$w")" "$(basename "$w")"
done | sort -rn | head -8
kit_check_carry .gpu/aitk "$(size_kib "$kit")"
exit $kit_status
