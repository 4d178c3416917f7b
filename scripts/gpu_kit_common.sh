# Sourced by scripts/gpu_kit.sh, gpu_kit_musubi.sh and gpu_kit_aitk.sh: what the three kits for
# the GPU machine share. The sourcing script sets kit_name (for its messages) first.
#
#   here                 the repository root
#   kit_py               the Python the wheels are for (3.12)
#   kit_platforms        the manylinux platforms kit_download accepts (the script sets them)
#   lorac_wheels         lorac's own run-time dependencies, which a bare machine lacks
#   pytest_wheels        pytest and its dependencies, for the proofs that run as pytest tests
#   kit_download DIR SPEC...  wheels of SPEC..., without their dependencies, into DIR
#   kit_one_version DIR  stop when DIR holds two versions of one distribution
#   size_kib PATH        the size of PATH in KiB
#   kit_check_carry NAME KIB  say what a call of the run tool carries: NAME (KIB KiB) and the
#                        working tree; kit_status becomes 1 when that reaches limit_mib

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kit_py=3.12
kit_platforms=(manylinux2014_x86_64 manylinux_2_17_x86_64)
limit_mib=60
kit_status=0

lorac_wheels=(
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
pytest_wheels=(
    pytest
    iniconfig
    packaging
)

kit_download() {
    local dir=$1 platform
    local platforms=()
    shift
    for platform in "${kit_platforms[@]}"; do
        platforms+=(--platform "$platform")
    done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$kit_py" \
        --implementation cp "${platforms[@]}" -d "$dir" "$@"
}

# Two versions of one distribution stop `pip install --target` on the machine.
kit_one_version() {
    local dups
    dups="$(ls "$1" | sed 's/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)"
    if [[ -n "$dups" ]]; then
        echo "$kit_name: several versions of: $dups (delete the old ones in $1)" >&2
        exit 1
    fi
}

size_kib() { du -sk "$1" | cut -f1; }

kit_check_carry() {
    local repo_kib total
    repo_kib=$(git -C "$here" ls-files -co --exclude-standard -z | xargs -0 du -ck 2>/dev/null \
        | tail -1 | cut -f1)
    total=$(( ($2 + repo_kib) / 1024 ))
    echo "$kit_name: carry $1: $(( $2 / 1024 )) MiB + the working tree" \
         "$(( repo_kib / 1024 )) MiB = ${total} of 64 MiB per call"
    if (( total >= limit_mib )); then
        echo "$kit_name: over ${limit_mib} MiB; the run tool carries 64 MiB at most" >&2
        kit_status=1
    fi
}

# kit_trim_bnb WHEEL DIR: a copy of the bitsandbytes WHEEL in DIR that keeps only its CPU and
# CUDA 13.x libraries (the machine's; ~43 MB -> 4 to 7 MB); its RECORD loses the dropped
# libraries' lines, so pip installs it as a valid wheel.
kit_trim_bnb() {
    python3 - "$1" "$2" "$kit_name" <<'PY'
import pathlib, re, sys, zipfile
wheel, out_dir = map(pathlib.Path, sys.argv[1:3])
keep = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
def dropped(name):
    return re.search(r"libbitsandbytes_\w+\.so$", name) and not keep.search(name)
out = out_dir / wheel.name
n = 0
with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if dropped(item.filename):
            n += 1
            continue
        data = zin.read(item.filename)
        if item.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(x for x in lines if not dropped(x.split(",", 1)[0])).encode()
        zout.writestr(item, data)
print(f"{sys.argv[3]}: bitsandbytes without {n} libraries: {out.stat().st_size >> 20} MiB")
PY
}
