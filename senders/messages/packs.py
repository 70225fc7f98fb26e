"""Template packs: which template files a store's message is read from (docs/semantics.md).

Three folders are searched, most specific first: the store's own (``templates`` in its policy
table), the deployment's pack (``CARTPULSE_TEMPLATES_DIR``), then the shipped defaults. A
locale falls back ``de-AT`` → ``de`` → the store's locale → ``en``, and the shopper's language
comes first: a German shopper gets the shipped German text before the store's English one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from streams.contract.commands import Channel
from streams.contract.errors import ConfigurationError
from streams.core.policy import Policy
from streams.runtime.settings import Settings

SHIPPED: Final = Path(__file__).resolve().parent / "templates"
FALLBACK_LOCALE: Final = "en"
DEFAULT_STORE: Final = "default"
PARTS: Final[Mapping[Channel, tuple[str, ...]]] = {
    "sms": ("sms",),
    "email": ("subject", "txt", "html"),
}
OPT_OUT_PART: Final = "_opt_out"


@dataclass(frozen=True, slots=True)
class StorePack:
    folder: Path | None = None
    locale: str = FALLBACK_LOCALE


@dataclass(frozen=True, slots=True)
class Packs:
    """Where each store's templates are found; plain data, safe to share."""

    shipped: Path = SHIPPED
    pack: Path | None = None
    stores: Mapping[str, StorePack] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings, policy: Policy) -> Packs:
        """The packs a deployment's settings and policy describe."""
        stores = {
            store_id: StorePack(Path(s.templates) if s.templates else None, s.locale)
            for store_id, s in policy.stores.items()
        }
        for store_id, pack in stores.items():
            if pack.folder is not None and not pack.folder.is_dir():
                raise ConfigurationError(
                    f"stores.{store_id}.templates: {pack.folder} is not a folder"
                )
        if settings.templates_dir is not None and not settings.templates_dir.is_dir():
            raise ConfigurationError(
                f"CARTPULSE_TEMPLATES_DIR: {settings.templates_dir} is not a folder"
            )
        return cls(SHIPPED, settings.templates_dir, stores)

    def store(self, store_id: str) -> StorePack:
        return self.stores.get(store_id) or self.stores.get(DEFAULT_STORE) or StorePack()

    def folders(self, store_id: str) -> list[Path]:
        """The folders searched for ``store_id``, most specific first."""
        own = self.store(store_id).folder
        return [f for f in (own, self.pack, self.shipped) if f is not None]

    def locales(self, locale: str, store_id: str) -> list[str]:
        """``de-AT`` → ``de-AT, de``, then the store's locale (and its language), then ``en``."""
        chain: list[str] = []
        for candidate in (locale, self.store(store_id).locale, FALLBACK_LOCALE):
            for loc in (candidate, candidate.replace("_", "-").split("-", 1)[0]):
                if loc not in chain:
                    chain.append(loc)
        return chain

    def names(self, template: str, locale: str, part: str, store_id: str) -> list[str]:
        """File names to try, in order (each is looked for in every folder before the next)."""
        return [f"{template}.{loc}.{part}.j2" for loc in self.locales(locale, store_id)]

    def find(self, template: str, locale: str, part: str, store_id: str) -> Path | None:
        """The file a message would be read from, or None."""
        folders = self.folders(store_id)
        for name in self.names(template, locale, part, store_id):
            for folder in folders:
                if (folder / name).is_file():
                    return folder / name
        return None


@dataclass(frozen=True, slots=True)
class Missing:
    """A step's template that no folder has for a store."""

    store_id: str
    path: str  # the policy field, e.g. flows.cart.steps[1].template
    template: str
    part: str
    locale: str
    fallback: str | None  # the locale it would be sent in instead, when one exists


def check_templates(policy: Policy, packs: Packs) -> list[Missing]:
    """Every (store, step, part) whose template is not there in the store's locale.

    ``fallback`` says which locale would be used instead (its language, or ``en``); when it is
    None nothing can be rendered at all and the policy must be refused.
    """
    missing: list[Missing] = []
    for store_id, store in policy.stores.items():
        for flow in policy.flows.values():
            for index, step in enumerate(flow.steps):
                path = f"flows.{flow.name}.steps[{index}].template"
                variants = flow.experiment.variants if flow.experiment else ()
                templates = {step.template} | {
                    v.templates[step.template] for v in variants if step.template in v.templates
                }
                parts = PARTS[step.channel]
                for template in sorted(templates):
                    for part in parts:
                        found = _found_in(packs, template, part, store.locale, store_id)
                        if not _same_language(found, store.locale):
                            missing.append(
                                Missing(store_id, path, template, part, store.locale, found)
                            )
        if any(s.channel == "sms" for f in policy.flows.values() for s in f.steps):
            found = _found_in(packs, OPT_OUT_PART, "sms", store.locale, store_id)
            if not _same_language(found, store.locale):
                missing.append(
                    Missing(store_id, "stores", OPT_OUT_PART, "sms", store.locale, found)
                )
    return missing


def _found_in(packs: Packs, template: str, part: str, locale: str, store_id: str) -> str | None:
    """The locale ``template`` is found in for a shopper of ``locale``, or None."""
    path = packs.find(template, locale, part, store_id)
    if path is None:
        return None
    return path.name[len(template) + 1 :].split(".", 1)[0]


def _language(locale: str) -> str:
    return locale.replace("_", "-").split("-", 1)[0].lower()


def _same_language(found: str | None, locale: str) -> bool:
    return found is not None and _language(found) == _language(locale)


def require_templates(policy: Policy, packs: Packs, where: Callable[[str], str]) -> list[str]:
    """Raise ``ConfigurationError`` listing every step no folder can render for a store.

    ``where(field)`` gives ``file:line`` of a policy field. Returns the warnings: templates
    sent in a fallback language because the store's own is missing.
    """
    missing = check_templates(policy, packs)
    errors = [_describe(m, packs, where) for m in missing if m.fallback is None]
    if errors:
        raise ConfigurationError("\n".join(errors))
    return [_describe(m, packs, where) for m in missing]


def _describe(m: Missing, packs: Packs, where: Callable[[str], str]) -> str:
    looked = ", ".join(str(f) for f in packs.folders(m.store_id))
    what = f"{m.template}.<locale>.{m.part}.j2"
    if m.fallback is None:
        problem = f"no {what} for locale {m.locale!r} or any fallback (looked in {looked})"
    else:
        problem = f"no {what} in {m.locale!r}: its shoppers get the {m.fallback!r} text"
    return f"{where(m.path)}: store {m.store_id!r}: {m.path}: {problem}"


def checked_policy(settings: Settings, path: Path | None = None) -> tuple[Policy, list[str]]:
    """The policy (``path``, else the settings'), after ``require_templates`` on it, and the
    warnings that check gave."""
    from streams.runtime.policy_file import load_policy, policy_location

    source = path or settings.policy_file
    policy = load_policy(source)
    warnings = require_templates(policy, Packs.of(settings, policy), policy_location(source))
    return policy, warnings
