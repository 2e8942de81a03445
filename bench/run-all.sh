#!/usr/bin/env bash
# Runs larkgate's benchmarks end to end and renders the report.
#
#   bash bench/run-all.sh [--build] [bench.py options...]
#   bash bench/run-all.sh --quick            # 1 run, small counts (a smoke test)
#   bash bench/run-all.sh --runs 5           # the full benchmark (default 5 runs)
#
# Checks the release binaries (target/release/lark-emulator, larkgate,
# examples/bench_ingest); with --build it builds them when missing, else it
# prints the cargo command and stops. Installs the Node SDK client
# (`npm ci` in bench/node) when node_modules is missing, makes the Python SDK
# venv (tools/sdk-venv.sh), runs bench/bench.py with the remaining arguments
# (results in bench/results/<UTC timestamp>.json, copied to
# docs/bench/results.json), then bench/report.py (docs/bench/tables.md and
# the SVG plots). Run it on a quiet machine: every process shares the cores.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

build=0
args=()
for a in "$@"; do
    if [ "${a}" = "--build" ]; then
        build=1
    else
        args+=("${a}")
    fi
done

build_cmd="cargo build --release -p lark-emulator -p larkgate && cargo build --release -p lark-client --example bench_ingest"
missing=()
for bin in target/release/lark-emulator target/release/larkgate target/release/examples/bench_ingest; do
    [ -x "${bin}" ] || missing+=("${bin}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "${build}" -eq 1 ]; then
        echo "run-all: building ${missing[*]}" >&2
        cargo build --release -p lark-emulator -p larkgate
        cargo build --release -p lark-client --example bench_ingest
    else
        echo "run-all: missing ${missing[*]}" >&2
        echo "build them with:" >&2
        echo "  ${build_cmd}" >&2
        echo "(or pass --build)" >&2
        exit 2
    fi
fi

if [ ! -d bench/node/node_modules ]; then
    echo "run-all: npm ci in bench/node" >&2
    (cd bench/node && npm ci --no-audit --no-fund)
fi

python="$(bash tools/sdk-venv.sh)"
echo "run-all: Python SDK venv: ${python}" >&2

status=0
python3 bench/bench.py --python "${python}" ${args[@]+"${args[@]}"} || status=$?
if [ -f docs/bench/results.json ]; then
    python3 bench/report.py
fi
exit "${status}"
