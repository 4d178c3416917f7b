# collect_plan DIR WAIT TARBALL TAIL [TAR-OPTION...]: what a GPU plan started detached into DIR
# leaves for the device call to bring back, sourced by proof.sh, aitk_proof.sh and
# musubi_proof.sh. Waits up to WAIT seconds for DIR/matrix.log's DONE, copies records.jsonl and
# matrix.log to $OUT, packs DIR into $OUT/TARBALL (logs, manifests, profiles, the nvidia-smi
# samples; never LoRA files, which the plans delete as they record them) and shows the log's
# last TAIL lines.
collect_plan() {
    local dir=$1 until=$(( SECONDS + $2 )) tarball=$3 lines=$4
    shift 4
    while (( SECONDS < until )) && ! grep -qs '^DONE' "$dir/matrix.log"; do sleep 5; done
    cp "$dir/records.jsonl" "$dir/matrix.log" "$OUT/" 2>/dev/null
    tar -C "$dir" -czf "$OUT/$tarball" --exclude='*.safetensors' "$@" . 2>/dev/null
    wc -l "$OUT/records.jsonl" 2>/dev/null
    tail -n "$lines" "$dir/matrix.log"
}
