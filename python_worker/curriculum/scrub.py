"""Secret scrubbing: replace credentials and personal addresses with placeholders.

Scrubbing rewrites text rather than dropping the file: a config file with a
leaked key is still good code once the key is gone. Each replacement is counted
by kind so the manifest shows how much was found.

Placeholders are fixed strings (<PRIVATE_KEY>, <AWS_KEY>, <SECRET>, <EMAIL>), so
the output is deterministic and a model learns "a secret goes here".

Speed matters (every byte of the corpus passes through here), so each search
starts from something cheap to find: a substring test before a regex, a literal
"@" for e-mail addresses, and plain `str.find` for the secret-like key names,
with the regex only anchored at the hits.
"""

from __future__ import annotations

import re
from collections import Counter

from python_worker.curriculum.config import ScrubConfig

_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
    r".*?-----END \1-----",
    re.DOTALL,
)

# Access key ids: a fixed 4-letter prefix and 16 upper-case alphanumerics.
_AWS_PREFIXES = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA")
_AWS_KEY_ID = re.compile(r"\b(?:" + "|".join(_AWS_PREFIXES) + r")[0-9A-Z]{16}\b")
_AWS_SECRET = re.compile(
    r"(?i)(aws_?secret_?(?:access_?)?key\s*(?:=|:|=>)\s*[\"']?)"
    r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)

# Token formats with a recognisable prefix (GitHub, Slack, Stripe, Google, GitLab).
_TOKEN_PREFIXES = (
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "sk_live_",
    "AIza",
    "glpat-",
)
_KNOWN_TOKENS = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|"
    r"xox[abposr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,}|"
    r"AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})\b"
)

# A quoted literal assigned to a secret-like key, in Elixir keyword/map/assignment
# syntax or env/YAML/JSON style: `password: "..."`, `"api_key" => "..."`,
# `SECRET_KEY_BASE="..."`. `System.get_env("TOKEN")` is not a literal and stays.
_KEY_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "accesskey",
    "access_key",
    "privatekey",
    "private_key",
    "signing_salt",
    "encryption_salt",
    "auth_key",
    "credential",
)
_AFTER_KEY = re.compile(r"""[\w-]*["']?\s*(?::|=>|=)\s*(["'])([^"'\s]{8,})\1""")
# Values that are obviously not secrets (and our own placeholders).
_NOT_SECRET = re.compile(r"(?i)^(?:<\w+>|\$\{?\w+\}?|changeme|password|secret|x+|\*+|your[_-].*)$")

# Anchored on "@" (fast to scan for); the local part is found by looking back.
_EMAIL_DOMAIN = re.compile(r"@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


class Scrubber:
    def __init__(self, config: ScrubConfig) -> None:
        self.config = config
        self._allowed = {d.lower() for d in config.email_allow_domains}

    def scrub(self, text: str) -> tuple[str, Counter[str]]:
        found: Counter[str] = Counter()
        c = self.config
        if c.private_keys and "PRIVATE KEY" in text:
            text, n = _PRIVATE_KEY.subn("<PRIVATE_KEY>", text)
            found["private_key"] += n
        if c.aws_keys:
            if any(p in text for p in _AWS_PREFIXES):
                text, n = _AWS_KEY_ID.subn("<AWS_KEY>", text)
                found["aws_key"] += n
            if "ecret" in text or "ECRET" in text:
                text, n = _AWS_SECRET.subn(r"\1<AWS_KEY>", text)
                found["aws_key"] += n
        if c.config_tokens:
            if any(p in text for p in _TOKEN_PREFIXES):
                text, n = _KNOWN_TOKENS.subn("<SECRET>", text)
                found["token"] += n
            text = self._config_values(text, found)
        if c.emails and "@" in text:
            text = self._emails(text, found)
        return text, +found

    def _config_values(self, text: str, found: Counter[str]) -> str:
        lower = text.lower()
        if len(lower) != len(text):  # a few characters change length when lowered
            lower = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
        spans: set[tuple[int, int]] = set()
        for word in _KEY_WORDS:
            i = lower.find(word)
            while i >= 0:
                m = _AFTER_KEY.match(text, i + len(word))
                if m and not _NOT_SECRET.match(m.group(2)):
                    spans.add(m.span(2))
                i = lower.find(word, i + len(word))
        if not spans:
            return text
        parts: list[str] = []
        pos = 0
        for start, end in sorted(spans):
            if start < pos:  # the same value reached from two key words
                continue
            parts += [text[pos:start], "<SECRET>"]
            pos = end
            found["token"] += 1
        parts.append(text[pos:])
        return "".join(parts)

    def _emails(self, text: str, found: Counter[str]) -> str:
        parts: list[str] = []
        pos = 0
        for m in _EMAIL_DOMAIN.finditer(text):
            start = m.start()
            while start > pos and start > m.start() - 64 and text[start - 1] in _LOCAL_CHARS:
                start -= 1
            local = text[start : m.start()]
            if not local.strip("._%+-") or m.group(1).lower() in self._allowed:
                continue
            parts += [text[pos:start], "<EMAIL>"]
            pos = m.end()
            found["email"] += 1
        if not parts:
            return text
        parts.append(text[pos:])
        return "".join(parts)
