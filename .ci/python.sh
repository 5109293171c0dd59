#!/usr/bin/env bash
# CI of the Python package (python/): on a machine with Python >= 3.9 and a Rust toolchain,
# from the package registry only:
#   1. `pip install ./python` in a fresh venv (the user's command; maturin comes from PyPI),
#      with numpy, pytest, matplotlib and tqdm; runs pytest (python/tests) and the example
#      script on a tiny model;
#   2. a venv with torch and transformer_lens==4.3.0: the TransformerLens tests
#      (TransformerBridge);
#   3. unless ARITHLENS_CI_TL2=0, transformer_lens==2.18.0 installed over it (the same torch):
#      the same tests (HookedTransformer).
# Usage: bash .ci/python.sh   (PYTHON=python3.11 to choose the interpreter; TMPDIR for the
# venvs, ~7 GB). Prints each stage's seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
export CARGO_PROFILE_RELEASE_DEBUG=0 PIP_DISABLE_PIP_VERSION_CHECK=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
stage() { echo "== python CI [$((SECONDS - START)) s] $*"; }

venv() { # venv NAME PACKAGES...: a fresh venv with the packages
    local dir="$WORK/$1"
    shift
    "$PY" -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip
    [ $# -eq 0 ] || "$dir/bin/pip" install -q "$@"
}

stage "building the arithlens binary (the tests compare against it)"
cargo build --release --quiet --bin arithlens
export ARITHLENS_BIN="$ROOT/target/release/arithlens"

stage "pip install ./python in a fresh venv"
venv base numpy pytest matplotlib tqdm
"$WORK/base/bin/pip" install -q ./python
"$WORK/base/bin/pip" wheel -q --no-deps ./python -w "$WORK/wheels"  # for the other venvs (cargo's build is reused)

stage "pytest (TransformerLens tests skip: not installed here)"
"$WORK/base/bin/pytest" -p no:cacheprovider -q -rs python/tests  # not `python -m`: the source folder must not shadow the installed package

stage "example script"
"$WORK/base/bin/python" python/examples/paper_picture.py --train tiny --steps 600 --questions 200 --out "$WORK/picture.png"
test -s "$WORK/picture.png"

stage "venv with torch and transformer_lens==4.3.0"
# torch from PyPI needs its CUDA libraries even on a CPU (it does not import without them),
# so this venv is the big one (~6 GB); TransformerLens 2.18 then reuses its torch.
venv tl transformer_lens==4.3.0 torch pytest
"$WORK/tl/bin/pip" install -q --no-deps "$WORK"/wheels/arithlens-*.whl
tl_tests() { # tl_tests: the TransformerLens tests with the TransformerLens the venv holds
    "$WORK/tl/bin/python" -c "import importlib.metadata as m, torch; print('transformer_lens', m.version('transformer_lens'), 'torch', torch.__version__)"
    "$WORK/tl/bin/pytest" -p no:cacheprovider -q -rs python/tests/test_transformer_lens.py
}
stage "TransformerLens 4.3.0 tests (TransformerBridge)"
tl_tests
if [ "${ARITHLENS_CI_TL2:-1}" != 0 ]; then
    stage "transformer_lens==2.18.0 in the same venv (its torch kept)"
    # pyarrow (of datasets) 21 and later need NumPy 2, which TransformerLens 2.18 does not take.
    "$WORK/tl/bin/pip" install -q transformer_lens==2.18.0 "pyarrow<21"
    stage "TransformerLens 2.18.0 tests (HookedTransformer)"
    tl_tests
fi
stage "done"
