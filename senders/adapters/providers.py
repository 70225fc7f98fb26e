"""The provider adapter of a channel, built the one way the senders and the preview build it."""

from __future__ import annotations

from senders.adapters.phonebook import PhoneIndex
from senders.adapters.short_link_store import LinkRegistry
from senders.adapters.smtp_email import SmtpEmail
from senders.adapters.twilio_sms import TwilioSms
from senders.core.keys import Keys
from senders.messages.packs import Packs
from senders.messages.templates import Renderer
from streams.contract.commands import Channel
from streams.core.policy import Policy
from streams.runtime.settings import Settings


def provider_for(
    settings: Settings,
    channel: Channel,
    policy: Policy,
    links: LinkRegistry | None = None,
    phones: PhoneIndex | None = None,
) -> TwilioSms | SmtpEmail:
    """The adapter for ``channel``, rendering with the policy's stores' template packs.

    ``links`` is where the SMS adapter registers its short links before sending, ``phones``
    where it notes who is texted at a number (a sender passes ``RedisShortLinks`` and
    ``PhoneBook``; the preview, which sends nothing, neither).
    Raises ``ConfigurationError`` when the settings cannot send on the channel.
    """
    keys = Keys(settings.effective_redis_key_prefix)
    renderer = Renderer(Packs.of(settings, policy))
    if channel == "sms":
        return TwilioSms(settings, renderer, keys, policy, links, phones)
    return SmtpEmail(settings, renderer, keys, policy.stores)
