#!/usr/bin/env bash
# Debian's Chromium, for the email layout tests (tests/senders/test_email_browser.py): installed
# with apt-get when missing, the way deploy/local/stack.sh installs redis-server. Playwright
# drives this browser; it never downloads one of its own.
#
#   bash deploy/local/chromium.sh     # idempotent; prints the browser's version
set -euo pipefail

log() { printf '[chromium] %s\n' "$*" >&2; }
die() { printf '[chromium] ERROR: %s\n' "$*" >&2; exit 1; }

# Run as root, or through sudo when available.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (not root and no sudo); install chromium by hand"
  fi
}

if ! command -v chromium >/dev/null; then
  command -v apt-get >/dev/null || die "apt-get not found; install chromium by hand"
  log "installing chromium with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
fi
chromium --version 2>/dev/null
