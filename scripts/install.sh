#!/usr/bin/env bash
# Installs lowbench (editable, with its test extra) into the Python that runs `python3`.
#
# Torch: an installed torch is reused as it is (on a Jetson it is NVIDIA's wheel; replacing it
# would lose CUDA). Where none is installed, the CPU build is installed: from a local wheel
# folder in PIP_FIND_LINKS when one holds a +cpu build, else from PyTorch's CPU index. A bare
# `pip install torch` would pull a multi-GB CUDA build on Linux x86-64, so it is never used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TORCH_VERSION="${LOWBENCH_TORCH_VERSION:-2.13.0}"

if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "install: reusing torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    local_cpu_wheel=""
    IFS=' ' read -r -a links <<< "${PIP_FIND_LINKS:-}"
    for dir in "${links[@]}"; do
        if compgen -G "$dir/torch-${TORCH_VERSION}+cpu-*.whl" >/dev/null; then
            local_cpu_wheel="$dir"
        fi
    done
    if [ -n "$local_cpu_wheel" ]; then
        echo "install: torch ${TORCH_VERSION} CPU build from $local_cpu_wheel"
        "$PY" -m pip install --quiet "torch==${TORCH_VERSION}"
    else
        echo "install: torch ${TORCH_VERSION} CPU build from PyTorch's CPU index"
        "$PY" -m pip install --quiet "torch==${TORCH_VERSION}" \
            --index-url https://download.pytorch.org/whl/cpu
    fi
fi
"$PY" -m pip install --quiet -e ".[test]"
echo "install: lowbench $("$PY" -c 'import lowbench; print(lowbench.__version__)') ready"
