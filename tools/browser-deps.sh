#!/usr/bin/env bash
# Installs what the browser test (tests/browser/demo.mjs) needs and a fresh
# Debian machine lacks:
#   - Debian's `chromium` package (/usr/bin/chromium), with apt-get;
#   - the test's npm packages (playwright-core only), with `npm ci`.
# Each step runs only when needed, so a ready machine is left alone and the
# script prints nothing. Needs root (or sudo) for apt-get, and node + npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_DIR="$ROOT/tests/browser"
CHROMIUM=/usr/bin/chromium

log() { printf 'browser-deps: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_chromium() {
    log "installing Debian's chromium (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # A stale package list may not know the current version; refresh once on failure.
    if ! as_root apt-get install -y -qq chromium >/dev/null; then
        as_root apt-get update -qq >/dev/null
        as_root apt-get install -y -qq chromium >/dev/null
    fi
    if [ ! -x "$CHROMIUM" ]; then
        log "apt-get installed chromium but $CHROMIUM is missing"
        exit 1
    fi
}

install_node_modules() {
    if ! command -v npm >/dev/null 2>&1; then
        log "npm is missing: install Node.js 20 or newer (Debian: apt-get install nodejs npm)"
        exit 1
    fi
    log "installing the browser test's npm packages (npm ci)"
    npm ci --prefix "$BROWSER_DIR" --no-audit --no-fund --loglevel=error >/dev/null
}

[ -x "$CHROMIUM" ] || install_chromium
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] || install_node_modules
