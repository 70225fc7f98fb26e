"""SMS keywords (pure): which inbound messages opt out, opt in or ask for help.

A message is a keyword when, once surrounding whitespace and trailing punctuation are gone, it
is exactly one (case ignored): "stop", " Stop. " and "STOP" opt out; "stop texting me" does
not (carriers and Twilio match whole messages too). Extra opt-out words come from
``CARTPULSE_WEBHOOKS_OPT_OUT_KEYWORDS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

KeywordKind = Literal["opt_out", "opt_in", "help"]
KEYWORD_KINDS: Final[tuple[KeywordKind, ...]] = ("opt_out", "opt_in", "help")

OPT_OUT: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN: Final = frozenset({"START", "UNSTOP", "YES"})
HELP: Final = frozenset({"HELP", "INFO"})
# Twilio's Advanced Opt-Out names the kind of a keyword it matched (its own custom ones too).
TWILIO_OPT_OUT_TYPES: Final[dict[str, KeywordKind]] = {
    "STOP": "opt_out",
    "START": "opt_in",
    "HELP": "help",
}


@dataclass(frozen=True, slots=True)
class Keyword:
    kind: KeywordKind
    word: str  # normalised: upper case, trimmed


def normalise(body: str) -> str:
    return body.strip().rstrip(".!").strip().upper()


@dataclass(frozen=True, slots=True)
class Keywords:
    opt_out: frozenset[str] = OPT_OUT
    opt_in: frozenset[str] = OPT_IN
    help: frozenset[str] = HELP

    @classmethod
    def with_extra_opt_outs(cls, extra: Iterable[str]) -> Keywords:
        words = {normalise(word) for word in extra} - {""}
        return cls(opt_out=OPT_OUT | frozenset(words))

    def classify(self, body: str, twilio_opt_out_type: str = "") -> Keyword | None:
        """The keyword ``body`` is, or None for an ordinary message.

        An opt-out word wins over everything (a configured extra that shadows an opt-in or
        help word still opts out): when in doubt, stop texting.
        """
        word = normalise(body)
        if word in self.opt_out:
            return Keyword("opt_out", word)
        if word in self.opt_in:
            return Keyword("opt_in", word)
        if word in self.help:
            return Keyword("help", word)
        kind = TWILIO_OPT_OUT_TYPES.get(twilio_opt_out_type.strip().upper())
        return Keyword(kind, word) if kind is not None else None
