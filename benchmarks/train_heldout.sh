#!/usr/bin/env bash
# The seven leave-one-class-out models of benchmarks/open_vocabulary.py heldout and
# benchmarks/unknown_scores.py: the default recipe without one class, in two single-thread
# lanes (the most work per second on a 2-core CPU). Re-running resumes unfinished runs.
#   benchmarks/train_heldout.sh [EPOCHS [GROUP [OVERRIDE...]]]
# EPOCHS defaults to 8, GROUP to heldout (runs go to runs/GROUP/without-CLASS); OVERRIDEs are
# extra `spherefer train` overrides, e.g. the trained other class of issue #15:
#   benchmarks/train_heldout.sh 8 heldout-other data.other_class=other loss.placeholder=0.1
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${1:-8}"
GROUP="${2:-heldout}"
EXTRA=("${@:3}")
ALL="angry disgust fear happy sad surprise neutral"
lane() {
  for held in "$@"; do
    keep=$(for c in $ALL; do [ "$c" != "$held" ] && printf "%s," "$c"; done | sed 's/,$//')
    spherefer train --config default "name=$GROUP/without-$held" "data.classes=[$keep]" "epochs=$EPOCHS" threads=1 --no-progress "${EXTRA[@]}"
  done
}
lane angry fear sad neutral &
lane disgust happy surprise &
wait
