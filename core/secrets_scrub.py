"""The one secret scrubber: configured secrets out of any text we store, raise or print.

Owns: `Scrubber` (replaces every configured secret, whole or by any fragment of
`FRAGMENT_LEN` characters or more, by `REDACTED`), the process-wide `SECRETS` instance that
config loading fills and exception construction reads (`scrub`, `register_secrets`), and
`header_secrets` (which configured header values count as secrets) and `config_secrets`.
Must not: read the environment or any file but a configured key file, log, or keep anything
but the secret values themselves (never written anywhere).

Speed: the hot path (one call per log record, per exception) must stay cheap. Every 4-gram of
every secret is kept in a set; the text is probed only with the 4-grams starting at every 5th
position, which is enough: a shared run of 8 or more characters always contains one. The
probes are built and looked up in C (`frozenset.isdisjoint` over a zip of strided slices);
only on a hit are the 8-character windows around it checked in Python. Secrets of 8 or more
characters need no separate whole-string pass: a whole secret is a run of its own windows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from schemas.config import LLMConfig

REDACTED = "[REDACTED]"
FRAGMENT_LEN = 8  # a shared run this long (or longer) of a secret counts as the secret
MIN_SECRET_LEN = 6  # shorter values would blank ordinary words; replaced only when exact
_PROBE = 4  # probe length: a run of FRAGMENT_LEN holds one at every _STRIDE-th position
_STRIDE = FRAGMENT_LEN - _PROBE + 1


def _probes(text: str) -> Iterator[tuple[str, ...]]:
    """The _PROBE-character tuples of `text` starting at every _STRIDE-th position, built in C
    (zip of strided slices; no bytecode runs per probe)."""
    return zip(*(text[j::_STRIDE] for j in range(_PROBE)), strict=False)  # shorter tail: fine


class Scrubber:
    """Replaces configured secrets, and any `FRAGMENT_LEN`-character fragment of one.

    Thread-safe: `add` swaps immutable tables in one assignment; `scrub` reads them once.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._short: tuple[str, ...] = ()  # under FRAGMENT_LEN: replaced only when whole
        self._probe_set: frozenset[tuple[str, ...]] = frozenset()
        self._windows: frozenset[str] = frozenset()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Add secret values (blank and too-short ones are ignored)."""
        with self._lock:
            merged = self._secrets | {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
            if merged != self._secrets:
                self._build(merged)

    def _build(self, merged: frozenset[str]) -> None:
        probes: set[tuple[str, ...]] = set()
        windows: set[str] = set()
        for s in merged:
            probes.update(tuple(s[i : i + _PROBE]) for i in range(len(s) - _PROBE + 1))
            windows.update(s[i : i + FRAGMENT_LEN] for i in range(len(s) - FRAGMENT_LEN + 1))
        short = tuple(s for s in merged if len(s) < FRAGMENT_LEN)
        # one assignment each, windows last: a reader sees old or new tables, never a mix
        # that misses a secret (extra probes without windows only cost a lookup)
        self._probe_set, self._short = frozenset(probes), short
        self._windows, self._secrets = frozenset(windows), merged

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def snapshot(self) -> frozenset[str]:
        """The secrets held now (for `restore`: a test leaving the process as it found it)."""
        return self._secrets

    def restore(self, secrets: frozenset[str]) -> None:
        """Hold exactly `secrets` again (a `snapshot`)."""
        with self._lock:
            self._build(frozenset(secrets))

    def scrub(self, text: str) -> str:
        """`text` with every secret and every long-enough fragment of one replaced."""
        for secret in self._short:
            if secret in text:
                text = text.replace(secret, REDACTED)
        windows = self._windows
        if not windows or len(text) < FRAGMENT_LEN or self._probe_set.isdisjoint(_probes(text)):
            return text  # the common case: no probe of the text is any secret's
        if not _window_hit(text, self._probe_set, windows):
            return text
        return _redact_fragments(text, windows)


def _window_hit(text: str, probes: frozenset[tuple[str, ...]], windows: frozenset[str]) -> bool:
    """Whether a probe hit is a real FRAGMENT_LEN-character match (not a chance 4-gram)."""
    for n, gram in enumerate(_probes(text)):
        if gram in probes:
            at = n * _STRIDE
            for j in range(max(0, at - (FRAGMENT_LEN - _PROBE)), at + 1):
                if text[j : j + FRAGMENT_LEN] in windows:
                    return True
    return False


def _redact_fragments(text: str, windows: frozenset[str]) -> str:
    """Replace each maximal run covered by secret windows with one `REDACTED`."""
    covered_until = -1
    spans: list[list[int]] = []
    for j in range(len(text) - FRAGMENT_LEN + 1):
        if text[j : j + FRAGMENT_LEN] in windows:
            end = j + FRAGMENT_LEN
            if spans and j <= covered_until:
                spans[-1][1] = end
            else:
                spans.append([j, end])
            covered_until = end
    out: list[str] = []
    last = 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(REDACTED)
        last = end
    out.append(text[last:])
    return "".join(out)


SECRETS = Scrubber()  # every secret this process has loaded (filled by the workers' loader)


def register_secrets(secrets: Iterable[str]) -> None:
    """Add values to the process-wide scrubber (config loading calls this with every key)."""
    SECRETS.add(secrets)


def scrub(text: str) -> str:
    """`text` scrubbed of every secret this process has registered."""
    return SECRETS.scrub(text)


# Header values that are never credentials; every other configured header value is treated as
# one (a gateway's own auth header may have any name).
PUBLIC_HEADERS = frozenset(
    {
        "accept",
        "anthropic-beta",
        "anthropic-version",
        "content-type",
        "http-referer",
        "openai-beta",
        "openai-organization",
        "openai-project",
        "referer",
        "user-agent",
        "x-title",
    }
)


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The configured header values to treat as secrets (all but `PUBLIC_HEADERS`)."""
    return [v for k, v in headers.items() if v and k.lower() not in PUBLIC_HEADERS]


def config_secrets(config: LLMConfig) -> list[str]:
    """Every secret an LLMConfig holds: keys (per provider and per model, listed or in a key
    file readable now) and configured header values that are not `PUBLIC_HEADERS`."""
    found: list[str] = []
    for settings in config.providers.values():
        keys = [settings.api_key, *settings.api_keys]
        found.extend(k.get_secret_value() for k in keys if k is not None)
        found.extend(header_secrets(settings.headers))
        if settings.api_key_file:
            try:
                text = Path(settings.api_key_file).read_text(encoding="utf-8")
            except (OSError, UnicodeError):
                continue
            found.append(text[:-2] if text.endswith("\r\n") else text.removesuffix("\n"))
    for model in config.models:
        keys = [model.api_key, *model.api_keys]
        found.extend(k.get_secret_value() for k in keys if k is not None)
    return found
