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

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
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
limit_mib=60

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
    # lorac's own run-time dependencies, which a bare machine lacks (tomlkit at least)
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
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$kit/wheels" "${wheels[@]}"

if (( with_bnb )); then
    # bitsandbytes ships one library per CUDA/ROCm/XPU release; the machine runs CUDA 13.x.
    rm -rf "$here/.gpu-bnb" && mkdir -p "$here/.gpu-bnb"
    tmp="$(mktemp -d)"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_24_x86_64 -d "$tmp" "bitsandbytes==0.50.2"
    python3 - "$tmp"/bitsandbytes-*.whl "$here/.gpu-bnb" <<'PY'
import os, re, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
keep = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
out = os.path.join(dest, os.path.basename(src))
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
    dropped = {n for n in zin.namelist() if "libbitsandbytes_" in n and not keep.search(n)}
    for info in zin.infolist():
        if info.filename in dropped:
            continue
        data = zin.read(info.filename)
        if info.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(x for x in lines if x.split(",")[0] not in dropped).encode()
        zout.writestr(info, data)
print(f"gpu_kit: bitsandbytes without {len(dropped)} libraries: {os.path.getsize(out) >> 20} MiB")
PY
    rm -rf "$tmp"
fi

# Keep one version of each distribution: two stop `pip install --target` on the machine.
dups="$(ls "$kit/wheels" | sed 's/-[0-9].*//' | sort | uniq -d)"
if [[ -n "$dups" ]]; then
    echo "gpu_kit: several versions of: $dups (delete the old ones in $kit/wheels)" >&2
    exit 1
fi

kit_mib=$(( $(du -sk "$kit/sd-scripts" "$kit/wheels" | awk '{s += $1} END {print s}') / 1024 ))
if [[ -d "$here/.gpu-bnb" ]]; then
    kit_mib=$(( kit_mib + $(du -sk "$here/.gpu-bnb" | cut -f1) / 1024 ))
fi
repo_mib=$(( $(git -C "$here" ls-files -co --exclude-standard -z | xargs -0 du -ck 2>/dev/null \
    | tail -1 | cut -f1) / 1024 ))
echo "gpu_kit: .gpu is ${kit_mib} MiB, the rest of the working tree ${repo_mib} MiB"
if (( kit_mib + repo_mib >= limit_mib )); then
    echo "gpu_kit: over ${limit_mib} MiB together; the run tool carries 64 MiB at most" >&2
    exit 1
fi
