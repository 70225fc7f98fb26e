"""The journey engine's test policy and coupon secret, shared by its unit tests."""

from __future__ import annotations

SECRET = b"test-coupon-secret"

# A policy without holdouts, so every customer gets messages; zone New York.
POLICY = """
[eligibility.sms]
quiet_hours = "20:00-08:00"
[eligibility.email]
consent = "opt_in_or_soft"
quiet_hours = ""
[incentives]
tiers = [{ min_value = "100", percent = 10 }, { min_value = "250", percent = 15 }]
[stores.default]
timezone = "America/New_York"
brand = "Shop"
soft_opt_in = true
url = "https://shop.example.com"
[stores.nosoft]
timezone = "Europe/Berlin"
soft_opt_in = false
[flows.cart]
trigger = "cart"
[[flows.cart.steps]]
after = "1h"
channel = "sms"
template = "cart_sms_1"
expires_after = "48h"
[[flows.cart.steps]]
after = "20h"
channel = "email"
template = "cart_email_1"
expires_after = "72h"
[[flows.cart.steps]]
after = "48h"
channel = "email"
template = "cart_email_2"
incentive = true
expires_after = "96h"
[flows.browse]
trigger = "browse"
[[flows.browse.steps]]
after = "2h"
channel = "email"
template = "browse_email_1"
expires_after = "24h"
"""
