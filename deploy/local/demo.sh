#!/usr/bin/env bash
# The demo (`make demo`, after install and stack-up): cartpulse end to end in live mode against
# local Twilio and SMTP test servers, with a live view, the report and the messages written to
# .cartpulse/demo-<ts>/; then the real REES46 sample offline. See deploy/local/demo.py.
# Knobs: DEMO_SECONDS (traffic, 110), DEMO_RATE (events/s, 40), DEMO_SHOPPERS (100), DEMO_SEED (6).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python deploy/local/demo.py "$@"
