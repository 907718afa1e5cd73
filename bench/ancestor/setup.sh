#!/usr/bin/env bash
# Installs the Python ancestor for bench/compare.sh: a virtual environment with ltprotocol 0.2.1
# and Twisted from the Python package registry, and the two Python 3 edits the ancestor needs,
# made in place in the installed copy (bench/ancestor/patch_ancestor.py; none of the ancestor's
# GPL code is kept in this repository).
#
#   bench/ancestor/setup.sh          # prints the interpreter to run ltp_ancestor_bench.py with
#
# Idempotent and quick when already done (a stamp records what was installed; the patcher
# re-checks the installed file and its self-test each time). Fails loudly, with the step that
# failed, when Python, venv or the registry is not there. Environment:
#   LTP_ANCESTOR_VENV   where the environment lives (default bench/ancestor/.venv, git-ignored)
#   PYTHON              the interpreter that creates it (default python3; needs 3.9 or later)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${LTP_ANCESTOR_VENV:-$HERE/.venv}
PYTHON=${PYTHON:-python3}
# The versions DESIGN.md's figures were measured with.
LTPROTOCOL=ltprotocol==0.2.1
TWISTED=Twisted==26.10.0

say() { echo "ancestor setup: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

WANT="$LTPROTOCOL $TWISTED patcher $(sha256sum "$HERE/patch_ancestor.py" | cut -c1-16)"
STAMP=$VENV/.ltp-ancestor-stamp
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ] \
    && "$VENV/bin/python" "$HERE/patch_ancestor.py" > /dev/null; then
    echo "$VENV/bin/python"
    exit 0
fi

command -v "$PYTHON" > /dev/null || die "no $PYTHON on PATH (set PYTHON=/path/to/python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || die "$("$PYTHON" --version 2>&1) is too old: Twisted needs Python 3.9 or later"
say "creating $VENV with $("$PYTHON" --version 2>&1)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" \
    || die "'$PYTHON -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
say "installing $LTPROTOCOL $TWISTED"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$LTPROTOCOL" "$TWISTED" \
    || die "pip could not install $LTPROTOCOL $TWISTED (is the Python package registry reachable?)"
"$VENV/bin/python" "$HERE/patch_ancestor.py" >&2 || die "patching the ancestor for Python 3"
echo "$WANT" > "$STAMP"
say "ready: $("$VENV/bin/python" --version 2>&1), $LTPROTOCOL, $TWISTED"
echo "$VENV/bin/python"
