"""Sample emails as the pipeline makes them: the shipped policy, ``build_command``, the renderer.

Each shipped locale has a shopper of its own (name, time zone, currency), so a test or a
screenshot sees what that shopper would receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from senders.messages.templates import DEFAULT_DIRECTORY, RenderedEmail, Renderer
from streams.contract.commands import SendCommand
from streams.contract.journey import Profile
from streams.core.journey_state import CustomerState, Journey, StepState
from streams.core.messages import build_command
from streams.core.policy import Policy, parse_policy
from streams.runtime.policy_file import default_policy_text

SECRET: Final = b"sample-coupon-secret"
DUE_MS: Final = 1_749_304_800_000  # 2025-06-07T14:00:00Z
UNSUBSCRIBE_URL: Final = "https://shop.example.com/unsubscribe?token=sample"
EMAILS: Final = ("cart_email_1", "cart_email_2", "browse_email_1")
LOCALES: Final = ("en", "de", "fr", "es")
# One email per locale for docs/img and README.md
SCREENSHOTS: Final = (
    ("cart_email_2", "en"),
    ("cart_email_1", "de"),
    ("cart_email_2", "fr"),
    ("browse_email_1", "es"),
)
_STEPS: Final = {
    "cart_email_1": ("cart", 1),
    "cart_email_2": ("cart", 2),
    "browse_email_1": ("browse", 0),
}


@dataclass(frozen=True, slots=True)
class Shopper:
    first_name: str
    locale: str
    timezone: str
    currency: str


SHOPPERS: Final = {
    "en": Shopper("Ann", "en-US", "America/Chicago", "USD"),
    "de": Shopper("Jonas", "de-DE", "Europe/Berlin", "EUR"),
    "fr": Shopper("Camille", "fr-FR", "Europe/Paris", "EUR"),
    "es": Shopper("Lucía", "es-ES", "Europe/Madrid", "EUR"),
}


def cart(currency: str) -> dict[str, Any]:
    """A cart as the detector writes it (prices are strings, empty fields None)."""
    base = "https://shop.example.com"
    items = [
        ("mug-ocean", "Stoneware Mug, Ocean Blue", 2, "18.00"),
        (
            "pour-over",
            "Pour-Over Coffee Set with Glass Carafe and Reusable Steel Filter",
            1,
            "64.00",
        ),
        ("tea-towel", "Linen Tea Towel", 1, "12.50"),
    ]
    return {
        "items": [
            {
                "product_id": pid,
                "quantity": quantity,
                "price": price,
                "name": name,
                "url": f"{base}/p/{pid}",
                "image_url": f"{base}/img/{pid}.jpg",
            }
            for pid, name, quantity, price in items
        ],
        "value": "112.50",
        "currency": currency,
        "url": f"{base}/cart/c-1",
    }


VIEWED: Final = [
    {"product_id": "kettle", "views": 3, "price": "89.00", "name": "Gooseneck Kettle",
     "url": "https://shop.example.com/p/kettle"},
    {"product_id": "grinder", "views": 1, "price": None, "name": "Hand Coffee Grinder",
     "url": None},
]  # fmt: skip


@cache
def policy() -> Policy:
    return parse_policy(default_policy_text(), "default.toml")


def sample_journey(
    template: str, locale: str, profile: Profile | None = None
) -> tuple[CustomerState, Journey, StepState]:
    """The ``locale`` shopper's journey, at the step that sends ``template``."""
    flow, index = _STEPS[template]
    shopper = SHOPPERS[locale]
    state = CustomerState("c-1")
    state.profile = profile or Profile(
        "c-1",
        email="shopper@example.com",
        first_name=shopper.first_name,
        locale=shopper.locale,
        timezone=shopper.timezone,
    )
    step = StepState(index, DUE_MS, DUE_MS + 72 * 3_600_000)
    steps = [StepState(i, DUE_MS, DUE_MS + 1) for i in range(index)] + [step]
    journey = Journey(
        "j-sample", flow, flow, "ab-1", "s-1", "default", DUE_MS - 48 * 3_600_000, DUE_MS,
        "control", False,
        cart(shopper.currency) if flow == "cart" else
        {"items": [], "value": None, "currency": None, "url": None},
        VIEWED if flow == "browse" else [], steps,
    )  # fmt: skip
    return state, journey, step


def sample_command(
    template: str, locale: str, *, coupon: bool = True, profile: Profile | None = None
) -> SendCommand:
    """The command the journey engine emits for ``template`` to the ``locale`` shopper."""
    state, journey, step = sample_journey(template, locale, profile)
    the_policy = policy()
    if not coupon:
        the_policy = parse_policy(
            default_policy_text().replace("incentive = true", "incentive = false"), "p.toml"
        )
    return build_command(the_policy, SECRET, "live", state, journey, step, "shopper@example.com")


def sample_variables(command: SendCommand) -> dict[str, Any]:
    """The variables the email sender renders with (it adds the unsubscribe link)."""
    return {**command.variables, "unsubscribe_url": UNSUBSCRIBE_URL}


@cache
def renderer() -> Renderer:
    return Renderer(DEFAULT_DIRECTORY)


def render_sample(
    template: str, locale: str, *, coupon: bool = True
) -> tuple[RenderedEmail, SendCommand]:
    command = sample_command(template, locale, coupon=coupon)
    return renderer().render_email(template, command.locale, sample_variables(command)), command
