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

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${1:-${LORAC_AI_TOOLKIT:-}}"
kit="${KIT_DIR:-$here/.gpu/aitk}"
py="${KIT_PY:-3.12}"
limit_mib=60

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
    # lorac's own run-time dependencies (a bare machine lacked tomlkit)
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
    # tests/gpu/aitk_proof.sh runs the proof as a pytest test
    pytest
    iniconfig
    packaging
)
download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 -d "$@"
}
download "$kit/wheels" "${wheels[@]}"
# lycoris-lora 1.8.3 (ai-toolkit's pin) is on PyPI as a source archive only: pure Python
python3 -m pip wheel -q --no-deps --no-binary=:all: -w "$kit/wheels" lycoris-lora==1.8.3
download "$kit/build" bitsandbytes
python3 - "$kit/build" "$kit/wheels" <<'PY'
"""Copy the bitsandbytes wheel without the libraries of other CUDA versions and of ROCm/XPU
(43 MB -> about 4 MB); its RECORD loses their lines, so pip installs it as a valid wheel."""
import pathlib, re, sys, zipfile
src_dir, out_dir = map(pathlib.Path, sys.argv[1:])
(wheel,) = src_dir.glob("bitsandbytes-*.whl")
keep = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
def dropped(name):
    return re.search(r"libbitsandbytes_\w+\.so$", name) and not keep.search(name)
with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(out_dir / wheel.name, "w",
                                                     zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if dropped(item.filename):
            continue
        data = zin.read(item.filename)
        if item.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(l for l in lines if not dropped(l.split(",", 1)[0])).encode()
        zout.writestr(item, data)
PY
rm -rf "$kit/build"

# One version of each distribution: two stop `pip install --target` on the machine.
dups="$(ls "$kit/wheels" | sed 's/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)"
if [[ -n "$dups" ]]; then
    echo "gpu_kit_aitk: several versions of: $dups" >&2
    exit 1
fi

size_kib() { du -sk "$1" | cut -f1; }
kit_kib=$(size_kib "$kit")
repo_kib=$(git -C "$here" ls-files -co --exclude-standard -z | xargs -0 du -ck 2>/dev/null \
    | tail -1 | cut -f1)
echo "gpu_kit_aitk: ai-toolkit $(( $(size_kib "$kit/ai-toolkit.tar.xz") / 1024 )) MiB" \
     "(tar.xz), wheels $(( $(size_kib "$kit/wheels") / 1024 )) MiB" \
     "($(ls "$kit/wheels" | wc -l) files)"
for w in "$kit"/wheels/*.whl; do
    printf '  %6d KiB  %s\n' "$(size_kib "$w")" "$(basename "$w")"
done | sort -rn | head -8
total=$(( (kit_kib + repo_kib) / 1024 ))
echo "gpu_kit_aitk: carry .gpu/aitk: $(( kit_kib / 1024 )) MiB + the working tree" \
     "$(( repo_kib / 1024 )) MiB = ${total} of 64 MiB per call"
if (( total >= limit_mib )); then
    echo "gpu_kit_aitk: over ${limit_mib} MiB; the run tool carries 64 MiB at most" >&2
    exit 1
fi
