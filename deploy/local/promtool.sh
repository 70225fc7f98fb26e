#!/usr/bin/env bash
# Checks cartpulse's monitoring config with promtool (Prometheus' own checker):
#
#   bash deploy/local/promtool.sh           # install promtool when missing, then run every check
#   bash deploy/local/promtool.sh install   # only make sure promtool is there; print its path
#
# The checks: `promtool check rules` on the alert rules, `promtool check config` on the scrape
# config (which also checks the rule files it names), and `promtool test rules` on the alerts'
# unit tests. Any failure, including a promtool that cannot be had, exits non-zero: in CI a
# missing tool is a failure, never a skip.
#
# Where promtool comes from, first found wins:
#   $PROMTOOL                         an explicit path
#   promtool on PATH                  e.g. from a Prometheus release or the OS package
#   $CARTPULSE_TOOLS_DIR/promtool     unpacked by this script (default ~/.cache/cartpulse/tools)
# When none is there, the script downloads Debian's `prometheus` package with apt (it ships
# /usr/bin/promtool, a static binary) and unpacks only promtool from it into the tools dir:
# no Prometheus server, service or dependencies get installed. `apt-get update` runs first
# when apt does not know the package yet (that needs root, as CI and the dev machines are).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS_DIR=${CARTPULSE_TOOLS_DIR:-$HOME/.cache/cartpulse/tools}
RULES="$ROOT/deploy/prometheus/alerts.yml"
RULE_TESTS="$ROOT/deploy/prometheus/alerts_test.yml"
CONFIG="$ROOT/deploy/prometheus/prometheus.yml"

log() { echo "promtool.sh: $*" >&2; }

find_promtool() {
  if [[ -n "${PROMTOOL:-}" ]]; then
    [[ -x "$PROMTOOL" ]] || { log "PROMTOOL=$PROMTOOL is not an executable"; return 1; }
    echo "$PROMTOOL"
  elif command -v promtool > /dev/null 2>&1; then
    command -v promtool
  elif [[ -x "$TOOLS_DIR/promtool" ]]; then
    echo "$TOOLS_DIR/promtool"
  else
    return 1
  fi
}

install_promtool() {
  if ! command -v apt-get > /dev/null 2>&1 || ! command -v dpkg-deb > /dev/null 2>&1; then
    log "promtool is missing and this is no Debian/Ubuntu machine: install promtool from a"
    log "Prometheus release (or your OS package) and put it on PATH, or set PROMTOOL=/path"
    return 1
  fi
  local work
  work=$(mktemp -d)
  log "downloading Debian's prometheus package for its promtool"
  if ! (cd "$work" && apt-get download -q prometheus > /dev/null 2>&1); then
    log "apt does not know the package yet: apt-get update"
    apt-get update -q > /dev/null
    (cd "$work" && apt-get download -q prometheus > /dev/null)
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
  mkdir -p "$TOOLS_DIR"
  # Unpack next to the target, then rename: several shells may install at once.
  install -m 0755 "$work/root/usr/bin/promtool" "$TOOLS_DIR/promtool.$$"
  mv -f "$TOOLS_DIR/promtool.$$" "$TOOLS_DIR/promtool"
  rm -rf "$work"
  log "installed $TOOLS_DIR/promtool ($("$TOOLS_DIR/promtool" --version 2>&1 | head -n 1))"
}

ensure_promtool() {
  if [[ -n "${PROMTOOL:-}" ]]; then
    find_promtool  # an explicit choice: never replaced by a download
  else
    find_promtool || { install_promtool && find_promtool; }
  fi
}

check() {
  local promtool
  promtool=$(ensure_promtool) || { log "no promtool: the checks cannot run"; exit 1; }
  log "using $promtool ($("$promtool" --version 2>&1 | head -n 1))"
  "$promtool" check rules "$RULES"
  "$promtool" check config "$CONFIG"
  "$promtool" test rules "$RULE_TESTS"
}

case "${1:-check}" in
  check) check ;;
  install) ensure_promtool || exit 1 ;;
  *)
    log "usage: $0 [check|install]"
    exit 2
    ;;
esac
