"""The answer to HELP (and INFO): the store's name, what it sends, and how to reach it.

Rendered once at start from each store's ``_help.<locale>.sms.j2`` template (its packs and
locale, docs/semantics.md "Messages"), keyed by the store's own sender identity: an inbound
message names the number or Messaging Service it was sent to, which says whose shoppers ask.
Anything else gets the default store's answer. ``CARTPULSE_WEBHOOKS_HELP_REPLY``, when set,
answers for every store.
"""

from __future__ import annotations

from senders.messages.packs import DEFAULT_STORE
from senders.messages.templates import Renderer
from senders.webhooks.replies import HelpReplies
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.core.policy import Policy

HELP_PART = "_help"


def help_replies(policy: Policy, renderer: Renderer, override: str = "") -> HelpReplies:
    """Every store's HELP answer; raises ``ConfigurationError`` when one cannot be rendered."""
    if override:
        return HelpReplies(override)
    texts: dict[str, str] = {}
    for store_id, store in policy.stores.items():
        variables = {"store_name": store.brand, "store_support": store.support}
        try:
            text = renderer.render_sms(HELP_PART, store.locale, variables, store_id)
        except InvalidRecord as exc:
            raise ConfigurationError(
                f"the HELP reply of store {store_id!r}: {exc.reason}"
            ) from None
        texts[store_id] = " ".join(text.split())
    by_identity = {
        identity: texts[store_id]
        for store_id, store in policy.stores.items()
        for identity in (store.sms_from, store.sms_messaging_service_sid)
        if identity
    }
    return HelpReplies(texts[DEFAULT_STORE], by_identity)
