#!/usr/bin/env bash
# Creates (or reuses) a Python venv holding the official Feishu/Lark SDK
# (`lark-oapi` from PyPI) and prints the path of its python interpreter.
#
#   LARK_SDK_VENV   where the venv lives (default ~/.cache/larkgate/sdk-venv)
#   LARK_SDK_SPEC   pip requirement to install (default lark-oapi)
#
# Used by the emulator's interoperability test; safe to run repeatedly.
set -euo pipefail

venv="${LARK_SDK_VENV:-${HOME}/.cache/larkgate/sdk-venv}"
spec="${LARK_SDK_SPEC:-lark-oapi}"
py="${venv}/bin/python"

if ! [ -x "${py}" ] || ! "${py}" -c 'import lark_oapi' >/dev/null 2>&1; then
    base="$(command -v python3 || true)"
    if [ -z "${base}" ]; then
        echo "sdk-venv: python3 not found on PATH; install Python 3.8+ with the venv module" >&2
        exit 2
    fi
    mkdir -p "$(dirname "${venv}")"
    if ! "${base}" -m venv "${venv}" >&2; then
        echo "sdk-venv: '${base} -m venv' failed; install the python3-venv package" >&2
        exit 2
    fi
    if ! "${py}" -m pip install --quiet --disable-pip-version-check "${spec}" >&2; then
        echo "sdk-venv: 'pip install ${spec}' failed; PyPI must be reachable" >&2
        exit 3
    fi
fi

echo "${py}"
