#!/usr/bin/env bash
# Adds a full-matrix run of the current commit on this machine to the published results/ and
# rebuilds the published site/: `lowbench evaluate --publish` for every model x quant (one record
# each), then the asv suite over the same matrix (asv writes into the untracked .asv/results/asv;
# this run's files are copied into results/asv/<machine>/), then `lowbench site build --publish`.
# Run it on a quiet machine from a clean checkout of the commit you want to publish, then commit
# results/ and site/. (A user's own `lowbench evaluate` and `asv run` never touch these folders.)
#   bash scripts/publish_results.sh            (ASV_MACHINE names the asv machine; QUICK=1 for --quick;
#                                               RUNTIMES="openvino ..." picks runtimes; ASV=0 skips asv)
set -euo pipefail
cd "$(dirname "$0")/.."
MACHINE="${ASV_MACHINE:-$(python3 -c 'import platform; print(platform.node())')}"
ASV_RESULTS=".asv/results/asv"  # asv.conf.json's results_dir
sha="$(git rev-parse HEAD)"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "publish: the checkout has uncommitted changes; commit first so records name a real commit" >&2
    exit 2
fi
started=$SECONDS
# the runtime axis: every other runtime x quant that `lowbench list runtimes` says runs here
# (RUNTIMES="onnxruntime openvino" picks some; RUNTIMES=none skips them)
mapfile -t runtime_quants < <(python3 -m lowbench list runtimes --json | python3 -c '
import json, os, sys
chosen = os.environ.get("RUNTIMES", "").split()
for row in json.load(sys.stdin):
    if row["name"] == "torch" or (chosen and row["name"] not in chosen):
        continue
    for quant, why_not in row["quants"].items():
        if why_not is None:
            print(row["name"], quant)')
# one model at a time, eager torch first, so an interrupted run leaves whole models
for m in sid light lighter fire; do
    for q in fp32 fp16 bf16 dynamic static qat; do
        python3 -m lowbench evaluate --model "$m" --quant "$q" --publish \
            || echo "publish: $m/$q did not evaluate (see above)" >&2
    done
    for rq in "${runtime_quants[@]}"; do
        read -r r q <<< "$rq"
        python3 -m lowbench evaluate --model "$m" --quant "$q" --runtime "$r" --publish \
            || echo "publish: $m/$q/$r did not evaluate (see above)" >&2
    done
done
python3 -m lowbench evaluate --model libraw --publish
echo "publish: evaluate of the whole matrix took $((SECONDS - started)) s" >&2
if [ "${ASV:-1}" = "0" ]; then  # ASV=0: evaluate records only (the site still rebuilds)
    python3 -m lowbench site build --publish
    exit 0
fi
python3 -m lowbench asv-machine --name "$MACHINE" >/dev/null
quick=()
[ -n "${QUICK:-}" ] && quick=(--quick)
started=$SECONDS
python3 -m asv run --python=same --set-commit-hash "$sha" --machine "$MACHINE" "${quick[@]}" \
    || echo "publish: asv reported failed benchmarks (see above)" >&2
echo "publish: asv run ${quick[*]} of the whole matrix took $((SECONDS - started)) s" >&2
mkdir -p "results/asv/$MACHINE"
cp "$ASV_RESULTS/benchmarks.json" results/asv/
cp "$ASV_RESULTS/$MACHINE/machine.json" "results/asv/$MACHINE/"
cp "$ASV_RESULTS/$MACHINE/${sha:0:8}"-*.json "results/asv/$MACHINE/"
python3 -m lowbench site build --publish
