#!/usr/bin/env bash
# The seven leave-one-class-out models of benchmarks/open_vocabulary.py heldout and
# benchmarks/unknown_scores.py: the default recipe without one class, in two single-thread
# lanes (the most work per second on a 2-core CPU). Re-running resumes unfinished runs.
#   benchmarks/train_heldout.sh [EPOCHS]     (default 8; runs go to runs/heldout/without-CLASS)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${1:-8}"
ALL="angry disgust fear happy sad surprise neutral"
lane() {
  for held in "$@"; do
    keep=$(for c in $ALL; do [ "$c" != "$held" ] && printf "%s," "$c"; done | sed 's/,$//')
    spherefer train --config default "name=heldout/without-$held" "data.classes=[$keep]" "epochs=$EPOCHS" threads=1 --no-progress
  done
}
lane angry fear sad neutral &
lane disgust happy surprise &
wait
