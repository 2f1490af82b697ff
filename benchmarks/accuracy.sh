#!/usr/bin/env bash
# P1 and P2 (K = 5, 12; min and mean fusion) on the CEDAR and BHSig260-Bengali test splits for one model, then a
# markdown table of the results: bash benchmarks/accuracy.sh [MODEL] [DATA_DIR]
set -euo pipefail
model=${1:-effnet-lite0-imagenet}
data=${2:-../shared/data}
out=out/$(basename "$model" .onnx)
for ds in cedar bhsig260-bengali; do
  signver evaluate "$data/$ds" --split "$ds" --protocol p1 --model "$model" --out "$out/$ds-p1" > /dev/null
  for k in 5 12; do
    for fusion in scaled min mean; do
      signver evaluate "$data/$ds" --split "$ds" --protocol p2 --references "$k" --fusion "$fusion" --model "$model" --out "$out/$ds-p2-k$k-$fusion" > /dev/null
    done
  done
done
python "$(dirname "$0")/metrics_table.py" "$out"/*/metrics.json
