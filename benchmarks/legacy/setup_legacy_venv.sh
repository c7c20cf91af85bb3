#!/usr/bin/env bash
# Creates the legacy tf.estimator 2.15 venv used by benchmarks/estimator_vs_legacy.py.
#
#   bash benchmarks/legacy/setup_legacy_venv.sh [VENV_DIR]
#
# VENV_DIR defaults to $LEGACY_VENV, else ~/.cache/estimator-bridge/legacy-venv: outside the
# repository, so the ~1.5 GB TF 2.15 install never lands in a commit. The python used to create
# it is $LEGACY_PYTHON, else python3 (tensorflow-cpu 2.15.1 has wheels for CPython 3.9-3.11).
# Idempotent: an existing venv that already imports tensorflow_estimator 2.15 is kept.
set -euo pipefail

venv="${1:-${LEGACY_VENV:-$HOME/.cache/estimator-bridge/legacy-venv}}"
python="${LEGACY_PYTHON:-python3}"

check() {
    "$venv/bin/python" - <<'EOF'
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
import tensorflow_estimator
assert tf.__version__.startswith("2.15"), tf.__version__
assert hasattr(tf, "estimator")
print("tensorflow", tf.__version__, "tensorflow_estimator", tensorflow_estimator.__version__ if hasattr(tensorflow_estimator, "__version__") else "2.15")
EOF
}

if [ -x "$venv/bin/python" ] && check >/dev/null 2>&1; then
    echo "legacy venv ready: $venv"
    check
    exit 0
fi

version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$version" in
    3.9|3.10|3.11) ;;
    *) echo "error: $python is Python $version; tensorflow-cpu 2.15.1 needs 3.9-3.11 (set LEGACY_PYTHON)" >&2; exit 2 ;;
esac

mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# numpy<2: TF 2.15 was built against numpy 1.x. keras 2.15 is tf.keras for TF 2.15.
"$venv/bin/python" -m pip install --quiet \
    "tensorflow-cpu==2.15.1" "tensorflow-estimator==2.15.0" "keras==2.15.0" "numpy<2"
check
echo "legacy venv ready: $venv"
