"""Reading a TOML policy: durations, and errors that name the file, the line and the field."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Set
from typing import Any, Final

from streams.contract.durations import parse_duration_ms
from streams.contract.errors import ConfigurationError

_HTTPS_URL: Final = re.compile(r"^https://[^\s/]+(/\S*)?$")
_HEX_COLOR: Final = re.compile(r"^#[0-9a-fA-F]{6}$")


class Reader:
    """Walks the TOML tree and raises errors that name the line and the field."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def fail(self, path: str, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.where(path)}: {path}: {message}")

    def where(self, path: str) -> str:
        """``file:line`` of ``path`` (just the file when the line cannot be found)."""
        line = self._line_of(path)
        return f"{self.source}:{line}" if line else self.source

    def _line_of(self, path: str) -> int | None:
        """The line of ``path`` (``flows.cart.steps[1].after``): its header, then its key."""
        tokens = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        names: list[str] = []
        start, found = 0, False
        for i, token in enumerate(tokens):
            if token.startswith("["):
                continue
            names.append(token)
            header = re.escape(".".join(names))
            following = tokens[i + 1] if i + 1 < len(tokens) else ""
            if following.startswith("["):  # the n-th [[array.of.tables]]
                pattern = re.compile(rf"^\s*\[\[\s*{header}\s*\]\]")
                hits = [n for n, line in enumerate(self.lines) if pattern.match(line)]
                index = int(following[1:-1])
                if index < len(hits):
                    start, found = hits[index], True
                continue
            pattern = re.compile(rf"^\s*\[\s*{header}\s*\]")
            for n in range(start, len(self.lines)):
                if pattern.match(self.lines[n]):
                    start, found = n, True
                    break
        key = re.compile(rf"^\s*\"?{re.escape(names[-1])}\"?\s*=") if names else None
        for n in range(start, len(self.lines)):
            if key is not None and key.match(self.lines[n]):
                return n + 1
        return start + 1 if found else None

    def table(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(path, "must be a table")
        return value

    def duration(self, data: Mapping[str, Any], key: str, path: str, default: str | None) -> int:
        value = data.get(key, default)
        if value is None:
            raise self.fail(path, "is required (a duration like 1h)")
        # A TOML integer is seconds; a string is a duration (1h30m, PT1H, 90).
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str):
            raise self.fail(path, f"{value!r} is not a duration (a string like 1h or PT1H)")
        try:
            return parse_duration_ms(text)
        except ConfigurationError as exc:
            raise self.fail(path, str(exc)) from None

    def string(self, data: Mapping[str, Any], key: str, path: str, default: str | None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(path, "is required (a non-empty string)")
        return value

    def optional_string(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        accepts: Callable[[str], object],
        refusal: str,
    ) -> str | None:
        """``data[key]`` when it is a string ``accepts`` takes, ``None`` when absent; anything
        else fails with the value and ``refusal`` (``'#12' is not a colour like ...``)."""
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not accepts(value):
            raise self.fail(f"{path}.{key}", f"{value!r} {refusal}")
        return value

    def https_url(self, data: Mapping[str, Any], key: str, path: str) -> str | None:
        """An optional ``https://`` URL (an email's images load from the shopper's mail app)."""
        return self.optional_string(
            data,
            key,
            path,
            _HTTPS_URL.match,
            "is not an https:// URL like 'https://shop.example.com/logo.png'",
        )

    def color(self, data: Mapping[str, Any], key: str, path: str) -> str | None:
        """An optional ``#rrggbb`` colour, lower-cased."""
        value = self.optional_string(
            data, key, path, _HEX_COLOR.match, "is not a colour like '#0f766e' (#rrggbb)"
        )
        return None if value is None else value.lower()

    def known(self, data: Mapping[str, Any], keys: Set[str], path: str) -> None:
        for key in data:
            if key not in keys:
                raise self.fail(
                    f"{path}.{key}" if path else key, f"unknown field; use {sorted(keys)}"
                )
