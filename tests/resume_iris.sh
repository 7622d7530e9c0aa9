#!/usr/bin/env bash
# Resume is exact: 10 epochs straight write the same final checkpoint, byte for byte, as 5
# epochs, then a new process that restores the latest checkpoint and trains 5 more.
# Usage: resume_iris.sh IRIS_BINARY MODE
set -euo pipefail
iris=$1
mode=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$iris" --mode "$mode" --epochs 10 --checkpoints "$dir/straight" > "$dir/straight.txt"
"$iris" --mode "$mode" --epochs 5 --checkpoints "$dir/split" > "$dir/first.txt"
"$iris" --mode "$mode" --epochs 5 --resume --checkpoints "$dir/split" > "$dir/second.txt"
cmp "$dir/straight/ckpt-10.safetensors" "$dir/split/ckpt-10.safetensors"
# the printed losses of epochs 6-10 agree too
diff <(grep "Total loss" "$dir/straight.txt" | tail -n 5) <(grep "Total loss" "$dir/second.txt")
# --restore predicts with the latest checkpoint, without training: the same predictions
"$iris" --mode "$mode" --restore --checkpoints "$dir/split" > "$dir/restored.txt"
diff <(grep -A1 "Test set predictions" "$dir/straight.txt") <(grep -A1 "Test set predictions" "$dir/restored.txt")
echo "resume ($mode): 10 epochs straight == 5 + restore + 5, byte for byte"
