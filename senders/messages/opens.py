"""Open tracking for emails (pure): the address of the 1x1 pixel an email's HTML loads.

Opens follow clicks: with ``CARTPULSE_EMAIL_CLICK_TRACKING`` on and
``CARTPULSE_EMAIL_OPEN_TRACKING`` not turned off, an email whose links are tracked (its store
has hosts, its own or every store's, in ``CARTPULSE_WEBHOOKS_REDIRECT_HOSTS``) gets the template
variable ``open_pixel_url``: the webhooks service's ``/o/`` route with a sealed, expiring token
(``senders.messages.tokens``) naming the customer, the store and the command. Loading it puts
``email_opened`` on ``engagement``.

An open is a weak signal, never proof: mail apps that block images never load the pixel, and
Apple Mail Privacy Protection (and some security scanners) load every image of a message when
it arrives, read or not. Flow conditions should prefer ``engagement.clicked``.
"""

from __future__ import annotations

from senders.messages.tokens import OpenToken, make_open_token, open_url
from streams.contract.commands import SendCommand


class OpenPixels:
    """Open pixel addresses under the webhooks' public URL, signed with the click key."""

    def __init__(self, secret: bytes, public_url: str, ttl_ms: int) -> None:
        self._secret = secret
        self._public_url = public_url
        self._ttl_ms = ttl_ms

    def url(self, command: SendCommand, now_ms: int) -> str:
        """The pixel of ``command``'s email, valid for the token lifetime from ``now_ms``."""
        token = OpenToken(
            command.customer_id, command.store_id, command.command_id, now_ms + self._ttl_ms
        )
        return open_url(self._public_url, make_open_token(self._secret, token))
