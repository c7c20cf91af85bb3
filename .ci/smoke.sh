#!/usr/bin/env bash
# Smoke checks of the package as a user installs it (called by .ci/run after the test suite).
#
#   wheel   build the sdist, then the wheel from the sdist; twine check; both hold LICENSE (the wheel py.typed)
#   latest  fresh venv outside the checkout, the wheel WITHOUT extras plus the `examples` extra's packages,
#           newest TensorFlow/Keras: every example and the README snippet
#   floor   the same with TensorFlow and Keras pinned to the floors declared in pyproject.toml
#   clang   build the extension with clang (installed with apt-get if absent), warnings as errors,
#           and run tests/metrics against it
#
# Usage: bash .ci/smoke.sh [STEP ...]   (default: all four, in that order). Each step prints one
# "smoke <step>: PASS|FAIL" line; the summary at the end repeats them; exit status 1 if any failed.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${BRIDGE_SMOKE_DIR:-$(mktemp -d /tmp/bridge-smoke.XXXXXX)}
mkdir -p "$work"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(wheel latest floor clang)
summary=()
failed=0

banner() { printf '\n==================== smoke %s: %s ====================\n' "$1" "$2"; }
run() { echo "+ $*"; "$@"; }
pip_quiet() { echo "+ $*"; "$@" -q --disable-pip-version-check 2>&1 | grep -v "is ignored: it is neither a file nor a directory"; return "${PIPESTATUS[0]}"; }

new_venv() {  # new_venv DIR: a fresh venv with an up-to-date pip
    rm -rf "$1" && python3 -m venv "$1" && pip_quiet "$1/bin/pip" install --upgrade pip > /dev/null
}

the_wheel() { ls "$work"/dist/estimator_bridge-*.whl 2>/dev/null | head -n 1; }

step_wheel() {
    rm -rf "$work/dist" && new_venv "$work/tools" && pip_quiet "$work/tools/bin/pip" install build twine || return 1
    run "$work/tools/bin/python" -m build --outdir "$work/dist" "$repo" > "$work/build.log" 2>&1 \
        || { tail -n 40 "$work/build.log"; return 1; }
    local sdist wheel
    sdist=$(ls "$work"/dist/estimator_bridge-*.tar.gz) wheel=$(the_wheel)
    echo "built: $(basename "$sdist") $(basename "$wheel")"
    run "$work/tools/bin/twine" check --strict "$sdist" "$wheel" || return 1  # PyPI renders the description
    "$work/tools/bin/python" - "$sdist" "$wheel" <<'EOF'
import sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
in_sdist = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
in_wheel = set(zipfile.ZipFile(wheel).namelist())
problems = [f"sdist lacks {name}" for name in ("LICENSE", "README.md", "pyproject.toml") if name not in in_sdist]
if not any(name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE") for name in in_wheel):
    problems.append("wheel lacks LICENSE in its .dist-info")
problems += [f"wheel lacks {name}" for name in ("bridge/py.typed",) if name not in in_wheel]
if not any(name.startswith("bridge/_metrics_core") for name in in_wheel):
    problems.append("wheel lacks the compiled bridge/_metrics_core extension")
print("\n".join(problems) or "sdist and wheel hold LICENSE, py.typed and the extension")
sys.exit(1 if problems else 0)
EOF
}

# Runs every example and the README snippet with VENV's python, from a directory outside the checkout
# (a copy of examples/), so only the installed wheel can be imported.
run_examples() {
    local venv=$1 dir=$2
    rm -rf "$dir" && mkdir -p "$dir" && cp -r "$repo/examples" "$dir/examples" || return 1
    (
        set -e
        cd "$dir"
        export TF_CPP_MIN_LOG_LEVEL=2
        "$venv/bin/python" -c "import bridge, keras, tensorflow as tf, sys; \
print('bridge from', bridge.__file__); print('tensorflow', tf.__version__, '| keras', keras.__version__); \
sys.exit(0 if bridge.__file__.startswith(sys.prefix) else 'bridge is not imported from the venv')"
        for script in examples/*.py; do  # every example, as the README runs it (no arguments)
            example=$(basename "$script" .py)
            echo "--- $script"
            "$venv/bin/python" "$script" > "$example.log" 2>&1 || { tail -n 40 "$example.log"; exit 1; }
            tail -n 2 "$example.log"
        done
        echo "--- examples/distributed/launch_local_cluster.py --workers 2 --evaluator"
        "$venv/bin/python" examples/distributed/launch_local_cluster.py --workers 2 --evaluator \
            --model-dir "$dir/cluster" > cluster.log 2>&1 || { tail -n 40 cluster.log; exit 1; }
        tail -n 1 cluster.log
        echo "--- README.md's python snippet"
        "$venv/bin/python" - "$repo/README.md" "$dir/readme" > readme.log 2>&1 <<'EOF' || { tail -n 40 readme.log; exit 1; }
import re, sys
readme, model_dir = sys.argv[1:]
code = re.search(r"```python\n(.*?)```", open(readme).read(), re.S).group(1)
exec(compile(code.replace('"/tmp/digits', f'"{model_dir}'), "README.md", "exec"), {"__name__": "__main__"})
EOF
        grep "'accuracy'" readme.log
    )
}

step_latest() {
    local wheel; wheel=$(the_wheel); [ -n "$wheel" ] || { echo "no wheel: run the wheel step first"; return 1; }
    new_venv "$work/venv-latest" || return 1
    # The wheel without extras, plus what the `examples` extra names.
    pip_quiet "$work/venv-latest/bin/pip" install "$wheel" $(examples_extra) || return 1
    run_examples "$work/venv-latest" "$work/run-latest"
}

step_floor() {
    local wheel; wheel=$(the_wheel); [ -n "$wheel" ] || { echo "no wheel: run the wheel step first"; return 1; }
    local pins; pins=$(floor_pins) || return 1
    echo "floor pins from pyproject.toml: $pins"
    new_venv "$work/venv-floor" || return 1
    pip_quiet "$work/venv-floor/bin/pip" install "$wheel" $(examples_extra) $pins || return 1
    run_examples "$work/venv-floor" "$work/run-floor"
}

step_clang() {
    if ! command -v clang++ > /dev/null; then
        echo "clang++ not found: installing it with apt-get"
        { apt-get update -q && apt-get install -y -q clang; } > "$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log"; return 1; }
    fi
    clang++ --version | head -n 1
    new_venv "$work/venv-clang" || return 1
    # The C++ engine's tests need no TensorFlow (bridge.metrics never imports it): a light venv.
    pip_quiet "$work/venv-clang/bin/pip" install numpy pytest hypothesis scikit-learn || return 1
    # The package itself, compiled by clang with warnings as errors (BRIDGE_WERROR).
    echo "+ CC=clang CXX=clang++ pip install --no-deps -v -Ccmake.define.BRIDGE_WERROR=ON $repo"
    CC=clang CXX=clang++ "$work/venv-clang/bin/pip" install --disable-pip-version-check --no-deps -v \
        -Ccmake.define.BRIDGE_WERROR=ON "$repo" > "$work/clang-build.log" 2>&1 \
        || { tail -n 60 "$work/clang-build.log"; return 1; }
    grep -E "compiler identification is|warning:" "$work/clang-build.log" | head -n 20
    if grep -q "warning:" "$work/clang-build.log"; then echo "clang build has warnings"; return 1; fi
    grep -q "compiler identification is Clang" "$work/clang-build.log" || { echo "the build did not use clang"; return 1; }
    # From outside the checkout, so the tests import the clang-built package.
    (cd "$work" && "$work/venv-clang/bin/python" -c "import bridge.metrics; print('testing', bridge.__file__)" \
        && run "$work/venv-clang/bin/pytest" -q -p no:cacheprovider -m "not slow" "$repo/tests/metrics" \
            --confcutdir "$repo/tests/metrics" --ignore "$repo/tests/metrics/test_vs_keras.py")
}

# Requirement lists read from pyproject.toml, so this script never disagrees with it.
pyproject() { python3 - "$repo/pyproject.toml" "$1" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
what = sys.argv[2]
if what == "examples":
    print(" ".join(project["optional-dependencies"]["examples"]))
elif what == "floors":
    pins = [re.sub(r"\s*>=\s*", "==", req) for req in project["dependencies"]
            if re.match(r"(tensorflow|keras)\s*>=", req)]
    if len(pins) != 2:
        sys.exit("pyproject.toml must declare tensorflow>=X and keras>=Y floors")
    print(" ".join(pins))
EOF
}
examples_extra() { pyproject examples; }
floor_pins() { pyproject floors; }

echo "smoke: checkout $repo, work dir $work"
for step in "${steps[@]}"; do
    banner "$step" start
    start=$SECONDS
    if "step_$step"; then result=PASS; else result=FAIL; failed=1; fi
    line="smoke $step: $result ($((SECONDS - start)) s)"
    echo "$line"
    summary+=("$line")
done
printf '\n==================== smoke summary ====================\n'
printf '%s\n' "${summary[@]}"
exit $failed
