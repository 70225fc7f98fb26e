"""SMS keywords (pure): which inbound messages opt out, opt in or ask for help.

A message is matched as a whole, once normalised (``normalise``): Unicode compatibility forms
folded (NFKC: a full-width STOP, U+FF33 U+FF34 U+FF2F U+FF30, is ``stop``), invisible
characters dropped (zero-width spaces, the BOM, soft hyphens: Unicode's format and control
characters), punctuation and symbols made spaces (``"STOP"``, ``Stop?``, ``opt-out``), spaces
collapsed, case folded.

The normalised message is a keyword when

* its words written together are one (``opt out``, ``OPT-OUT``, ``stop all``, ``S T O P``), or
* every word is a keyword (``stop stop``, ``stop, quit``, ``STOP HELP``): any opt-out word makes
  it an opt-out (when in doubt, stop texting); opt-in words alone an opt-in; a mix of opt-in
  and help words asks for help and changes no consent.

Anything else is an ordinary message, even one that mentions a keyword: ``stop texting me`` and
``I don't want to stop getting these`` are not matched (carriers and Twilio match whole
messages too). Extra opt-out words come from ``CARTPULSE_WEBHOOKS_OPT_OUT_KEYWORDS`` and are
normalised the same way. docs/architecture.md states this rule for operators.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

KeywordKind = Literal["opt_out", "opt_in", "help"]
KEYWORD_KINDS: Final[tuple[KeywordKind, ...]] = ("opt_out", "opt_in", "help")

# The CTIA list and Twilio's default opt-out keywords (REVOKE and OPTOUT since 2025).
OPT_OUT: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN: Final = frozenset({"START", "UNSTOP", "YES"})
HELP: Final = frozenset({"HELP", "INFO"})
# Twilio's Advanced Opt-Out names the kind of a keyword it matched (its own custom ones too).
TWILIO_OPT_OUT_TYPES: Final[dict[str, KeywordKind]] = {
    "STOP": "opt_out",
    "START": "opt_in",
    "HELP": "help",
}
# Unicode categories that become a space (punctuation, symbols) or vanish (format: zero-width
# space, word joiner, BOM, soft hyphen; controls that are not whitespace; unassigned).
_SPACE_CATEGORIES: Final = frozenset(
    {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"}
)
_DROP_CATEGORIES: Final = frozenset({"Cf", "Cc", "Co", "Cn", "Cs"})


@dataclass(frozen=True, slots=True)
class Keyword:
    kind: KeywordKind
    word: str  # the keyword matched, upper case: ``OPTOUT`` for ``opt-out``


def normalise(body: str) -> str:
    """``body`` as keywords are matched: NFKC, invisibles dropped, punctuation and symbols as
    spaces, whitespace collapsed to single spaces, case folded."""
    kept = []
    for char in unicodedata.normalize("NFKC", body):
        if char.isspace():
            kept.append(" ")
            continue
        category = unicodedata.category(char)
        if category in _SPACE_CATEGORIES:
            kept.append(" ")
        elif category not in _DROP_CATEGORIES:
            kept.append(char)
    return " ".join("".join(kept).split()).casefold()


def _key(text: str) -> str:
    """The form keyword sets are held in: upper case, no spaces."""
    return normalise(text).replace(" ", "").upper()


@dataclass(frozen=True, slots=True)
class Keywords:
    opt_out: frozenset[str] = OPT_OUT
    opt_in: frozenset[str] = OPT_IN
    help: frozenset[str] = HELP

    @classmethod
    def with_extra_opt_outs(cls, extra: Iterable[str]) -> Keywords:
        words = {_key(word) for word in extra} - {""}
        return cls(opt_out=OPT_OUT | frozenset(words))

    def _kind(self, word: str) -> KeywordKind | None:
        """An opt-out word wins over everything (a configured extra that shadows an opt-in or
        help word still opts out): when in doubt, stop texting."""
        if word in self.opt_out:
            return "opt_out"
        if word in self.opt_in:
            return "opt_in"
        if word in self.help:
            return "help"
        return None

    def classify(self, body: str, twilio_opt_out_type: str = "") -> Keyword | None:
        """The keyword ``body`` is (see the module's rule), or None for an ordinary message."""
        words = [word.upper() for word in normalise(body).split(" ") if word]
        if words:
            joined = "".join(words)
            kind = self._kind(joined)
            if kind is not None:
                return Keyword(kind, joined)
            kinds = [self._kind(word) for word in words]
            if None not in kinds:
                if "opt_out" in kinds:
                    kind = "opt_out"
                elif "help" in kinds:  # an opt-in needs a clear yes: with HELP, it is help
                    kind = "help"
                else:
                    kind = "opt_in"
                return Keyword(kind, words[kinds.index(kind)])
        kind = TWILIO_OPT_OUT_TYPES.get(twilio_opt_out_type.strip().upper())
        return Keyword(kind, " ".join(words)) if kind is not None else None
