"""Finding credentials in text, and hiding them.

Two kinds of evidence are recognised:

* **known token formats** — values whose prefix and shape identify a credential wherever they
  appear (Hugging Face ``hf_…``, GitHub ``ghp_…``/``github_pat_…``, AWS ``AKIA…``, OpenAI
  ``sk-…``, Slack ``xox?-…``, GitLab ``glpat-…``, Google ``AIza…``, Replicate ``r8_…``, PEM
  private keys);
* **secret-like assignments** — a name that reads like a credential (``HF_TOKEN``,
  ``R2_SECRET_ACCESS_KEY``, ``wandb_api_key``, ``password``) assigned a literal, high-entropy
  value (not a ``$VAR``/``${…}`` reference, a path or a placeholder).

The functions here never return the secret itself: :func:`find_secrets` gives positions and a
kind, :func:`fingerprint` shows at most the first four characters and the length, and
:func:`redact` rewrites text for logs and manifests. Only the standard library is imported.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: (kind, pattern) of credential formats recognisable by their shape alone.
TOKEN_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("GitHub token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b")),
    ("GitHub fine-grained token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{32,}")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("Replicate token", re.compile(r"\br8_[A-Za-z0-9]{30,}\b")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
)

_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_SECRET_WORDS = frozenset({"secret", "secrets", "password", "passwd", "pwd", "passphrase",
                           "apikey", "credential", "credentials", "privatekey"})
_KEY_QUALIFIERS = frozenset({"api", "access", "private", "secret", "auth", "signing",
                             "encryption", "master", "client", "account"})
_PLACEHOLDER = re.compile(r"your|xxxx|changeme|change_me|example|placeholder|dummy|redacted|"
                          r"<[^>]*>|\*\*\*|\.\.\.|…|todo|fixme|none|null|secret_here|token_here",
                          re.I)
_PATHLIKE = re.compile(r"^(?:/|\./|\.\./|~|[A-Za-z]:\\)|\.(?:safetensors|ckpt|pt|bin|json|toml|"
                       r"ya?ml|txt|sh|py|png|jpe?g)$", re.I)
_REFERENCE = re.compile(r"\$\{|\$\(|^\$[A-Za-z_]|`")

# NAME=value, NAME: value, "name": "value", name = "value", --name=value, --name value
_ASSIGN = re.compile(
    r"""(?:\b(?:export|set|setx|local|declare|readonly|typeset)\s+(?:-[a-zA-Z]+\s+)?)?"""
    r"""(?<![A-Za-z0-9_])(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,127})["']?[ \t]*"""
    r"""(?:=|:(?!//)|[ \t](?=["']?[^\s"'=:]))"""
    r"""[ \t]*(?P<q>["']?)(?P<value>[^\s"'#,;:}\]]+)(?P=q)""")


@dataclass(frozen=True)
class Secret:
    """One credential found in a text: its span (0-based offsets), 1-based position, kind."""

    start: int
    end: int
    line: int
    col: int
    kind: str
    name: str = ""
    origin: int = -1  # where the evidence starts: an assignment's name; -1: ``start``

    def __post_init__(self) -> None:
        if self.origin < 0:
            object.__setattr__(self, "origin", self.start)


@lru_cache(maxsize=4096)
def looks_secret_name(name: str) -> bool:
    """True when ``name`` reads like the name of a credential.

    ``HF_TOKEN``, ``huggingface_token``, ``wandb_api_key``, ``R2_SECRET_ACCESS_KEY``,
    ``password`` do; ``max_token_length``, ``token_warmup_step``, ``class_tokens``,
    ``cache_key`` do not: *token* counts only as the last word, *key* only after a word such as
    *api*, *access*, *private* or *secret*.
    """

    words = [w.lower() for w in _WORDS.findall(name)]
    if not words:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    if words[-1] in ("token", "pat") or (len(words) >= 2 and words[-2:] == ["auth", "token"]):
        return True
    for i, word in enumerate(words):
        if word in ("key", "keyid") and i > 0 and words[i - 1] in _KEY_QUALIFIERS:
            return True
        if word == "token" and i + 1 < len(words) and words[i + 1] in ("id", "value"):
            return True
    return False


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""

    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_secret_value(value: str) -> bool:
    """True for a literal that could be a credential: long, dense, no reference, path or
    placeholder, and mixing letters with digits (or long hex)."""

    if len(value) < 16 or len(value) > 512 or any(c.isspace() for c in value):
        return False
    if _REFERENCE.search(value) or _PATHLIKE.search(value) or _PLACEHOLDER.search(value):
        return False
    if "://" in value:
        return False
    has_alpha = any(c.isalpha() for c in value)
    has_digit = any(c.isdigit() for c in value)
    if not (has_alpha and has_digit):
        return False
    return entropy(value) >= 3.0


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def scan(text: str) -> list[Secret]:
    """Every credential in ``text``, in order, without overlaps."""

    found: list[Secret] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for kind, pattern in TOKEN_FORMATS:
        for m in pattern.finditer(text):
            if free(m.start(), m.end()):
                taken.append(m.span())
                found.append(Secret(m.start(), m.end(), *_position(text, m.start()), kind))
    for m in _ASSIGN.finditer(text):
        name, value = m.group("name"), m.group("value")
        start, end = m.span("value")
        if not looks_secret_value(value):  # (the cheap test first: most values are short)
            continue
        if not free(start, end) or not looks_secret_name(name.lstrip("-")):
            continue
        taken.append((start, end))
        found.append(Secret(start, end, *_position(text, start), "secret-like value",
                            name.lstrip("-"), m.start()))
    return sorted(found, key=lambda s: s.start)


def find_secrets(text: str) -> list[tuple[int, int, str]]:
    """``(line, col, kind)`` of every credential in ``text`` (1-based positions)."""

    return [(s.line, s.col, s.kind if not s.name else f"{s.kind} of {s.name}")
            for s in scan(text)]


def fingerprint(value: str) -> str:
    """What may be shown of a secret: its first four characters and its length."""

    return f"{value[:4]}… ({len(value)} chars)"


def redact(text: str) -> str:
    """``text`` with every credential replaced by its first four characters and a marker."""

    out: list[str] = []
    last = 0
    for s in scan(text):
        out.append(text[last:s.start])
        out.append(f"{text[s.start:s.start + 4]}…[redacted]")
        last = s.end
    out.append(text[last:])
    return "".join(out)


# --------------------------------------------------------------------------- masking values

#: What a hidden value is shown as (followed by its fingerprint).
MASK = "***"


def mask(value: str) -> str:
    """``***`` and the fingerprint of ``value``: what output shows instead of a secret."""

    return f"{MASK} ({fingerprint(value)})"


#: Variables whose names read like credentials but never hold one (``pwd`` is a word of both).
_NOT_SECRET_VARS = frozenset({"PWD", "OLDPWD"})


def environment_secrets(env: Mapping[str, str] | None = None) -> set[str]:
    """Values (8+ characters) of the variables in ``env`` (default: this process's
    environment) whose names read like credentials (``HF_TOKEN``, ``WANDB_API_KEY``, …)."""

    import os

    env = os.environ if env is None else env
    return {v for k, v in env.items() if len(v) >= 8 and k not in _NOT_SECRET_VARS
            and looks_secret_name(k) and not _PATHLIKE.search(v)}


def scrub(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with every ``known`` secret value masked, then :func:`redact`-ed."""

    for value in sorted({k for k in known if len(k) >= 8}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, f"{value[:4]}…[redacted]")
    return redact(text)


def redact_data(data: Any, known: Iterable[str] = (), *, _name: str = "") -> Any:
    """A copy of ``data`` (dicts, lists, scalars) fit to print: a non-empty string under a
    credential-like key becomes :func:`mask`, every other string and every key is
    :func:`scrub`-bed."""

    known = known if isinstance(known, (set, frozenset)) else set(known)
    if isinstance(data, Mapping):  # a key may be a token too
        return {scrub(k, known) if isinstance(k, str) else k: redact_data(v, known, _name=str(k))
                for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v, known, _name=_name) for v in data]
    if isinstance(data, str) and data:
        if _name and looks_secret_name(_name) and not _REFERENCE.search(data):
            return mask(data)
        return scrub(data, known)
    return data


def credential_values(data: Any, *, _name: str = "") -> set[str]:
    """Every non-empty string in ``data`` held under a credential-like key and not a
    reference (what :func:`redact_data` masks), without scanning for token formats."""

    out: set[str] = set()
    if isinstance(data, Mapping):
        for k, v in data.items():
            out |= credential_values(v, _name=str(k))
    elif isinstance(data, (list, tuple)):
        for v in data:
            out |= credential_values(v, _name=_name)
    elif isinstance(data, str) and data and _name and looks_secret_name(_name) \
            and not _REFERENCE.search(data):
        out.add(data)
    return out


def secret_values(data: Any, *, _name: str = "") -> set[str]:
    """Every non-empty string in ``data`` held under a credential-like key, or matching a
    known token format (to :func:`scrub` from text that does not name the key)."""

    out: set[str] = set()
    if isinstance(data, Mapping):
        for k, v in data.items():
            out |= secret_values(v, _name=str(k))
    elif isinstance(data, (list, tuple)):
        for v in data:
            out |= secret_values(v, _name=_name)
    elif isinstance(data, str) and data:
        if _name and looks_secret_name(_name) and not _REFERENCE.search(data):
            out.add(data)
        out |= {data[s.start:s.end] for s in scan(data) if not s.name}
    return out


# --------------------------------------------------------------------------- what is printed

#: Credentials found in what this process read (:func:`remember`); every printed text hides them.
_REMEMBERED: set[str] = set()


def remember(values: Iterable[str]) -> None:
    """Hide ``values`` in everything :func:`scrub_message` sees from now on.

    The readers call it with the credentials they find — the values under credential-like keys
    of every TOML file loaded (:func:`credential_values`), the secrets an import withholds — so
    that a message, key path or table that quotes one is masked however it was built. Values
    shorter than 8 characters are left out: they would mask ordinary words.
    """

    _REMEMBERED.update(v for v in values if isinstance(v, str) and len(v) >= 8)


def remembered_count() -> int:
    """How many values :func:`remember` holds (it only grows): text scrubbed while it held as
    many needs no second scrub."""

    return len(_REMEMBERED)


def known_secrets() -> set[str]:
    """The values :func:`scrub_message` hides besides token formats: those remembered and
    those of this environment's secret-looking variables."""

    return environment_secrets() | _REMEMBERED


_CANDIDATE = re.compile(r"[A-Za-z0-9_+/=.-]{16,}")


def scrub_message(text: str) -> str:
    """``text`` — a message, hint, path, key or value lorac prints — with credentials masked:
    recognisable tokens, secret-like assignments, the values :func:`remember`-ed and those of
    this environment's secret-looking variables. The one scrubber of printed text.

    A cheap test comes first (no remembered value in it, no run of 16+ token characters mixing
    letters and digits, no PEM header: returned as it is), so that ordinary text costs next to
    nothing.
    """

    if len(text) < 8:  # shorter than any value remembered, any token, a PEM header
        return text
    if "PRIVATE KEY" not in text and not (
            _REMEMBERED and any(v in text for v in _REMEMBERED)) and not any(
            any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
            for run in _CANDIDATE.findall(text)):
        return text
    return scrub(text, known_secrets())


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters (ending in ``...``) for a message or a
    comment, masked (:func:`scrub_message`) *before* it is cut: a cut through a token would
    leave a fragment that no scrubber recognises afterwards."""

    text = scrub_message(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def safe_cut(text: str, known: Iterable[str] = (), *, keep: int = 4096) -> int:
    """Where a stream's ``text`` may be cut when it has to be written before its line ends: an
    offset at most ``len(text) - keep`` that splits no credential :func:`scrub` would mask
    (neither a token, nor a secret-like assignment from its name on, nor a ``known`` value).

    The ``keep`` characters left after the cut are carried over to the next write, so a token
    still arriving at the end of ``text`` is never cut before it is complete: a credential is
    far shorter than ``keep`` (a match longer than that is not one). 0 means there is no such
    place, or ``text`` is not longer than ``keep``.
    """

    cut = max(len(text) - keep, 0)
    if cut == 0:
        return 0
    spans = [(s.origin, s.end) for s in scan(text)]
    for value in {k for k in known if 8 <= len(k) <= keep}:
        start = text.find(value)
        while start >= 0:
            spans.append((start, start + len(value)))
            start = text.find(value, start + 1)
    spans = [(start, end) for start, end in spans if end - start <= keep]  # no credential is longer
    moved = True
    while moved and cut > 0:
        moved = False
        for start, end in spans:
            if start < cut < end:
                cut, moved = start, True
    return cut
