#!/usr/bin/env bash
# Builds the Python package ltprotocol-rs (an abi3 wheel, CPython 3.9 or later) and tests it
# installed in a fresh virtual environment, from a fresh machine, non-interactively.
#
#   python/build.sh               # build the wheel, then test it
#   python/build.sh --build-only  # build the wheel only (python/dist/)
#   python/build.sh --test-only   # test the wheel already in python/dist/
#   python/build.sh --no-pytest   # build the wheel and install it in python/.venv-test only
#                                 # (what bench/compare.sh runs the package's rows with)
#   python/build.sh -- ARGS       # pass ARGS to pytest (e.g. -- -k broadcast -x)
#
# Steps: a build environment python/.venv (maturin, pytest, Twisted; made once, remade when
# the pins below change), `maturin build --release` into python/dist/ (cargo's own target dir
# python/target/ makes reruns incremental), then a FRESH environment python/.venv-test with the
# wheel, its twisted extra and pytest installed by pip (no Rust toolchain needed there), and
# pytest over python/tests/. Environment:
#   PYTHON   the interpreter that makes the environments (default python3; 3.9 or later)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
BUILD_VENV=$HERE/.venv
TEST_VENV=$HERE/.venv-test
DIST=$HERE/dist
# What the build environment holds; Twisted as bench/ancestor/setup.sh pins it.
BUILD_PINS="maturin>=1.16,<1.17 pytest>=8 Twisted==26.10.0"

say() { echo "python/build.sh: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

BUILD=1
TEST=1
PYTEST=1
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build-only) TEST=0 ;;
        --test-only) BUILD=0 ;;
        --no-pytest) PYTEST=0 ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        *) echo "usage: python/build.sh [--build-only|--test-only|--no-pytest] [-- PYTEST_ARGS...]" >&2; exit 2 ;;
    esac
    shift
done

command -v "$PYTHON" > /dev/null || die "no $PYTHON on PATH (set PYTHON=/path/to/python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || die "$("$PYTHON" --version 2>&1) is too old: the package needs Python 3.9 or later"
"$PYTHON" -c 'import venv, ensurepip' 2> /dev/null \
    || die "$PYTHON has no venv/ensurepip (on Debian/Ubuntu: apt-get install python3-venv)"

pip_install() {
    "$1/bin/python" -m pip install --quiet --disable-pip-version-check "${@:2}"
}

if [ "$BUILD" = 1 ]; then
    command -v cargo > /dev/null || die "no cargo on PATH: building needs the Rust toolchain"
    STAMP=$BUILD_VENV/.ltp-build-stamp
    if [ ! -x "$BUILD_VENV/bin/python" ] || [ "$(cat "$STAMP" 2> /dev/null)" != "$BUILD_PINS" ]; then
        say "making the build environment $BUILD_VENV ($BUILD_PINS)"
        rm -rf "$BUILD_VENV"
        "$PYTHON" -m venv "$BUILD_VENV" || die "making $BUILD_VENV"
        # shellcheck disable=SC2086 # the pins are separate words
        pip_install "$BUILD_VENV" $BUILD_PINS \
            || die "pip could not install $BUILD_PINS (is the Python package registry reachable?)"
        echo "$BUILD_PINS" > "$STAMP"
    fi
    say "building the wheel (maturin build --release)"
    rm -rf "$DIST"
    (cd "$HERE" && "$BUILD_VENV/bin/maturin" build --release --locked --quiet \
        --interpreter "$BUILD_VENV/bin/python" --out "$DIST") || die "maturin build"
fi

if [ "$TEST" = 1 ]; then
    shopt -s nullglob
    wheels=("$DIST"/ltprotocol_rs-*-abi3-*.whl)
    shopt -u nullglob
    [ "${#wheels[@]}" = 1 ] || die "expected one abi3 wheel in $DIST, found ${#wheels[@]} (run without --test-only)"
    WHEEL=${wheels[0]}
    say "installing $(basename "$WHEEL") into a fresh $TEST_VENV"
    rm -rf "$TEST_VENV"
    "$PYTHON" -m venv "$TEST_VENV" || die "making $TEST_VENV"
    pip_install "$TEST_VENV" "$WHEEL[twisted]" "pytest>=8" \
        || die "pip could not install the wheel with its twisted extra and pytest"
    if [ "$PYTEST" = 0 ]; then
        say "installed in $TEST_VENV (no pytest: --no-pytest)"
        exit 0
    fi
    say "testing (pytest python/tests)"
    # From the tests' directory, so that `import ltprotocol` finds the installed wheel, never
    # the source tree's package (which has no native module).
    cd "$HERE/tests"
    "$TEST_VENV/bin/python" -m pytest -p no:cacheprovider "${PYTEST_ARGS[@]}" \
        || die "pytest"
fi
