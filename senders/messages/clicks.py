"""Click tracking for the links of an email (pure).

With ``CARTPULSE_EMAIL_CLICK_TRACKING`` on, each link a template shows — ``cart_url``,
``product_url`` and the ``url`` of every cart item and viewed product — is rewritten to the
webhooks service's ``/c/`` redirect with a sealed, expiring token (``senders.messages.tokens``),
so a click is recorded on ``engagement`` before the shopper lands. A link the redirect would
refuse (a host the store does not allow, anything but absolute http(s)) is left as it is: an
untracked link still works, a refused one would not. Images are not links and stay direct.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from senders.messages.tokens import (
    ClickToken,
    allowed_hosts,
    click_url,
    make_click_token,
    redirect_target,
)
from streams.contract.commands import SendCommand
from streams.contract.errors import InvalidRecord

LINKS: Final = ("cart_url", "product_url")
LISTS_OF_LINKS: Final = ("cart_items", "viewed_products")


class ClickLinks:
    def __init__(
        self,
        secret: bytes,
        public_url: str,
        redirect_hosts: Mapping[str, tuple[str, ...]],
        ttl_ms: int,
    ) -> None:
        self._secret = secret
        self._public_url = public_url
        self._ttl_ms = ttl_ms
        # Fixed by the settings: each configured store's hosts, and those of any other store.
        self._allowed = {store: allowed_hosts(redirect_hosts, store) for store in redirect_hosts}
        self._anywhere = allowed_hosts(redirect_hosts, "*")

    def tracks(self, store_id: str) -> bool:
        """Whether any link of ``store_id`` can be tracked (it has allowed hosts)."""
        return bool(self._allowed.get(store_id, self._anywhere))

    def rewrite(
        self, variables: Mapping[str, Any], command: SendCommand, now_ms: int
    ) -> dict[str, Any]:
        """``variables`` with every followable link tracked; the input is not changed."""
        allowed = self._allowed.get(command.store_id, self._anywhere)
        expires_ms = now_ms + self._ttl_ms

        def track(url: object) -> object:
            if not isinstance(url, str):
                return url
            try:
                redirect_target(url, allowed)
            except InvalidRecord:
                return url  # the redirect would refuse it: a direct link beats a broken one
            token = ClickToken(
                command.customer_id, command.store_id, command.command_id, url, expires_ms
            )
            return click_url(self._public_url, make_click_token(self._secret, token))

        out = dict(variables)
        for key in LINKS:
            if key in out:
                out[key] = track(out[key])
        for key in LISTS_OF_LINKS:
            items = out.get(key)
            if isinstance(items, list):
                out[key] = [
                    {**item, "url": track(item["url"])}
                    if isinstance(item, dict) and "url" in item
                    else item
                    for item in items
                ]
        return out
