"""Secret scrubbing: replace credentials and personal addresses with placeholders.

Scrubbing rewrites text rather than dropping the file: a config file with a
leaked key is still good code once the key is gone. Each replacement is counted
by kind so the manifest shows how much was found.

Placeholders are fixed strings (<PRIVATE_KEY>, <AWS_KEY>, <SECRET>, <EMAIL>), so
the output is deterministic and a model learns "a secret goes here".

What is found:
- exact formats: PEM private keys (also inside JSON with escaped newlines, as in
  Google service-account files), AWS key ids, GitHub/Slack/Stripe/OpenAI/GitLab/
  Google API tokens, JWTs, Slack webhook URLs, passwords in database URLs;
- gitleaks' generic rule: a name containing key, secret, token, passw(or)d, pwd,
  credential, auth, api or salt, an assignment (`name: "v"`, `name = "v"`,
  `"name" => "v"`, `@name "v"`, `:name, "v"`, `{name, <<"v">>}`, `NAME=v`,
  `"name": "v"`, `System.get_env("NAME") || "v"`), then a literal that is not a
  placeholder and whose Shannon entropy is high enough. Names that say "this is
  a secret" (password, secret, token, salt, bearer) need less entropy than names
  that only say "key" or "api", where identifiers and paths are common values;
- a bearer token written after the word itself, as in an HTTP header
  (`"Authorization: Bearer v"`, `curl -H 'authorization: bearer v'`), judged
  like a token's value (so `Bearer #{token}`, `Bearer YOUR_TOKEN` and prose
  stay).

Speed matters (every byte of the corpus passes through here), so each search
starts from something cheap to find: a substring test before a regex, a literal
"@" for e-mail addresses, "://" for URLs, and plain `str.find` for the key
words, with the regexes only anchored at the hits.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from python_worker.dataset.config import ScrubConfig

# `.*?` also spans literal "\n" escapes, so a key inside a JSON string is found too.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
    r".*?-----END \1-----",
    re.DOTALL,
)

# Access key ids: a fixed 4-letter prefix and 16 upper-case alphanumerics.
_AWS_PREFIXES = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA")
# One regex with a literal first character scans far faster than eight `in` tests.
_AWS_PREFIX = re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)")
_AWS_KEY_ID = re.compile(r"\b(?:" + "|".join(_AWS_PREFIXES) + r")[0-9A-Z]{16}\b")
_AWS_SECRET = re.compile(
    r"(?i)(aws_?secret_?(?:access_?)?key\s*(?:=|:|=>)\s*[\"']?)"
    r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)

# Token formats with a recognisable prefix: GitHub classic and fine-grained, Slack,
# Stripe secret/restricted/webhook keys (test mode too: they still open the
# account), OpenAI/Anthropic, Google API keys, GitLab.
# Each prefix is found with str.find and the pattern matched only there: prefixes
# such as "sk_" and "rk_" occur in ordinary code ("task_", "work_"), where a
# whole-text regex scan would cost more than all the other rules together.
_TOKEN_PREFIXES = (
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "sk_",
    "rk_",
    "whsec_",
    "sk-",
    "AIza",
    "glpat-",
)
_KNOWN_TOKENS = re.compile(
    r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|"
    r"xox[abposr]-[A-Za-z0-9-]{10,}|(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{16,}|"
    r"whsec_[A-Za-z0-9+/=]{24,}|sk-(?:[a-z]+-)?[A-Za-z0-9_-]{32,}|"
    r"AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})(?![\w-])"
)
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# Header and payload are base64url JSON, so both start with `{"` = "eyJ".
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_SLACK_WEBHOOK = re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_+-]{16,}")

# `scheme://user:password@host`: only the password is replaced.
_URL_SCHEMES = (
    "ecto",
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "mongodb",
    "mongodb+srv",
    "redis",
    "rediss",
    "amqp",
    "amqps",
    "http",
    "https",
)
_SCHEME_BEFORE = re.compile(r"(?:^|[^\w+.-])([a-z][a-z0-9+.-]{1,15})$", re.IGNORECASE)
_USERINFO = re.compile(r"([^:/@\s\"'<>]*):([^@/\s\"'<>]+)@")
# Passwords every framework's dev config uses; not secrets.
_DEV_PASSWORDS = frozenset({"postgres", "password", "pass", "root", "mysql", "guest", "secret", "admin"})

# --- the generic rule --------------------------------------------------------
_KEY_WORDS = ("key", "secret", "token", "passw", "pwd", "credential", "auth", "api", "salt", "bearer")
# Names whose value is a secret whatever it looks like: Phoenix's salts are 8 random chars.
_SALT_NAMES = ("secret_key_base", "signing_salt", "encryption_salt")
_STRONG_WORDS = ("passw", "pwd", "secret", "token", "credential", "salt", "bearer")
# A name ending in one of these holds a reference to a secret, not the secret.
_REFERENCE_SUFFIXES = frozenset(
    {
        "env",
        "var",
        "file",
        "path",
        "name",
        "type",
        "module",
        "header",
        "field",
        "length",
        "size",
        "ttl",
        "dir",
        "prefix",
        "suffix",
        "query",
    }
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# From the end of the key word: the rest of the name, its closing quote, the
# separator, then a quoted literal (optionally an Erlang binary, optionally after
# "Bearer ") or, for env-style NAME=value only, a bare one.
_ASSIGN = re.compile(
    r"""[\w-]*(["']?)[ \t]*(=>|:=|:(?!:)|=(?![=~])|,|\)[ \t]*\|\||)\s{0,40}(?:<<)?"""
    r"""(?:(["'])((?:Bearer |Basic |Token |token )?)([^"'\s]{8,512})\3|([^\s"'#;,(){}\[\]]{8,512})(?=\s|$))"""
)
# RFC 6750's token68 after "Bearer " and a space, ended by anything else (a quote,
# a space, the end of the line); 16 characters at least, as short ones are words.
_BEARER_VALUE = re.compile(r"[ \t]+([A-Za-z0-9._~+/-]{16,512}=*)(?![A-Za-z0-9._~+/=#{-])")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:<.*|.*>|\[.*\]|\$.*|\{\{.*|%\{.*|.*#\{.*|.*\.\.\..*|x{3,}.*|.*xxxx.*|\*{3,}.*|"
    r"change[_-]?me.*|your[_-].*|my[_-].*|.*[_-]here|replace[_-]?me.*|todo.*|dummy.*|example.*|sample.*|"
    r"fake.*|placeholder.*|redacted.*|insert[_-].*|(?:test|password|secret|null|nil|none|true|false)\d*)$"
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# One part of an identifier, path, module or env-var name: words, not random characters.
# (Upper-case runs are capped: a long one is more likely a random id than a word.)
_WORD = re.compile(r"[A-Z]{0,10}[a-z]*(?:[A-Z]+[a-z]{2,})*|[A-Za-z]{1,12}\d{1,3}|\d{1,4}")
# Punctuation splits too: "&_csrf_token=" and "some!Password" are words, not random.
_WORD_SPLIT = re.compile(r"[_\-.:/@+ &?=,;!#%*]+")
_HEX = re.compile(r"^[0-9a-fA-F]+$")

# Entropy floors in bits per character: gitleaks uses 3.5 for its generic rule;
# random hex tops out at 4.0 (32 hex chars average ~3.7), so hex gets a lower one.
STRONG_ENTROPY = 2.5
WEAK_ENTROPY = 3.5
WEAK_HEX_ENTROPY = 3.0
STRONG_MIN_LEN = 8
WEAK_MIN_LEN = 12

# Anchored on "@" (fast to scan for); the local part is found by looking back.
_EMAIL_DOMAIN = re.compile(r"@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s own character distribution."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def _wordy(value: str) -> bool:
    """True for identifiers, module names, paths and env-var names made of words."""
    parts = [p for p in _WORD_SPLIT.split(value) if p]
    return bool(parts) and all(_WORD.fullmatch(p) for p in parts)


def is_secret_value(name: str, value: str) -> bool:
    """Whether a literal bound to `name` (lower case) looks like a real secret."""
    if _PLACEHOLDER.match(value) or "://" in value:
        return False
    last = re.split(r"[_-]", name.strip("_-"))[-1]
    if last in _REFERENCE_SUFFIXES:
        return False
    # One long word ("hunter2hunter2") is a password; several words are an identifier.
    words = _wordy(value) and len([p for p in _WORD_SPLIT.split(value) if p]) > 1
    if any(s in name for s in _SALT_NAMES):
        return len(value) >= STRONG_MIN_LEN and shannon_entropy(value) >= 2.0 and not words
    if any(w in name for w in _STRONG_WORDS):
        if value.lower() in _DEV_PASSWORDS:
            return False
        return len(value) >= STRONG_MIN_LEN and shannon_entropy(value) >= STRONG_ENTROPY and not words
    floor = WEAK_HEX_ENTROPY if _HEX.match(value) else WEAK_ENTROPY
    return (
        len(value) >= WEAK_MIN_LEN and shannon_entropy(value) >= floor and not _wordy(value) and not _UUID.match(value)
    )


def _lowered(text: str) -> str:
    lower = text.lower()
    if len(lower) != len(text):  # a few characters change length when lowered
        lower = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    return lower


def _replace_spans(text: str, spans: set[tuple[int, int]], found: Counter[str], kind: str) -> str:
    parts: list[str] = []
    pos = 0
    for start, end in sorted(spans):
        if start < pos:  # the same value reached from two key words
            continue
        parts += [text[pos:start], "<SECRET>"]
        pos = end
        found[kind] += 1
    parts.append(text[pos:])
    return "".join(parts)


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
            if _AWS_PREFIX.search(text):
                text, n = _AWS_KEY_ID.subn("<AWS_KEY>", text)
                found["aws_key"] += n
            if ("ecret" in text or "ECRET" in text) and ("aws" in text or "AWS" in text):
                text, n = _AWS_SECRET.subn(r"\1<AWS_KEY>", text)
                found["aws_key"] += n
        if c.config_tokens:
            text = self._known_tokens(text, found)
            if "eyJ" in text:
                text, n = _JWT.subn("<SECRET>", text)
                found["token"] += n
            if "hooks.slack.com" in text:
                text, n = _SLACK_WEBHOOK.subn("<SECRET>", text)
                found["token"] += n
            if "://" in text:
                text = self._url_passwords(text, found)
            text = self._config_values(text, found)
        if c.emails and "@" in text:
            text = self._emails(text, found)
        return text, +found

    @staticmethod
    def _known_tokens(text: str, found: Counter[str]) -> str:
        spans: set[tuple[int, int]] = set()
        for prefix in _TOKEN_PREFIXES:
            i = text.find(prefix)
            while i >= 0:
                if i == 0 or text[i - 1] not in _WORD_CHARS:
                    m = _KNOWN_TOKENS.match(text, i)
                    if m:
                        spans.add(m.span())
                i = text.find(prefix, i + len(prefix))
        return _replace_spans(text, spans, found, "token") if spans else text

    def _url_passwords(self, text: str, found: Counter[str]) -> str:
        spans: set[tuple[int, int]] = set()
        i = text.find("://")
        while i >= 0:
            scheme = _SCHEME_BEFORE.search(text, max(0, i - 17), i)
            if scheme and scheme.group(1).lower() in _URL_SCHEMES:
                m = _USERINFO.match(text, i + 3)
                if m and self._url_password(m.group(1), m.group(2), scheme.group(1).lower()):
                    spans.add(m.span(2))
            i = text.find("://", i + 3)
        return _replace_spans(text, spans, found, "db_password") if spans else text

    @staticmethod
    def _url_password(user: str, password: str, scheme: str = "ecto") -> bool:
        """A database URL's password is a secret unless a dev default; a web URL's (`http://lol:wut@`,
        common in URI tests) only if it would pass as a password value."""
        if password == user or password.lower() in _DEV_PASSWORDS or _PLACEHOLDER.match(password):
            return False
        return not scheme.startswith("http") or is_secret_value("password", password)

    def _config_values(self, text: str, found: Counter[str]) -> str:
        lower = _lowered(text)
        spans: set[tuple[int, int]] = set()
        for word in _KEY_WORDS:
            i = lower.find(word)
            while i >= 0:
                m = _ASSIGN.match(text, i + len(word))
                if m:
                    span = self._secret_span(text, lower, i, m)
                    if span:
                        spans.add(span)
                if word == "bearer":  # also "Bearer v", the token after the word itself
                    m = _BEARER_VALUE.match(text, i + len(word))
                    if m and is_secret_value(word, m.group(1)):
                        spans.add(m.span(1))
                i = lower.find(word, i + len(word))
        return _replace_spans(text, spans, found, "token") if spans else text

    @staticmethod
    def _secret_span(text: str, lower: str, word_at: int, m: re.Match[str]) -> tuple[int, int] | None:
        """The value's span if `m` (an assignment after a key word) binds a secret."""
        start = word_at
        while start > 0 and word_at - start < 64 and text[start - 1] in _NAME_CHARS:
            start -= 1
        before = text[start - 1] if start else ""
        sep = m.group(2)
        if sep == "" and before != "@":  # `@name "v"`: only module attributes bind without a sign
            return None
        if sep == "," and before not in (":", '"', "'", "{"):  # `:name, "v"`, `"name", "v"`, `{name, <<"v">>}`
            return None
        if sep.startswith(")") and before not in ('"', "'"):  # System.get_env("NAME") || "v"
            return None
        name_end = m.start(1)
        name = lower[start:name_end]
        if m.group(6) is not None:  # a bare value: env-style NAME=value only
            if sep != "=" or not text[start:name_end].isupper():
                return None
            return m.span(6) if is_secret_value(name, m.group(6)) else None
        return m.span(5) if is_secret_value(name, m.group(5)) else None

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
