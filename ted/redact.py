"""Scrub credentials out of URLs before anything is stored, printed or shown.

Users reach proxied servers with credentials in the URL (`http://alice:PASSWORD@host/v1`) or in
its query string (`?api-key=…`, `?token=…`). The live request needs them; nothing else does.
`scrub_url` is the one boundary: library `config`, checkpoints, cards, Hub uploads, error lines,
logs and the Space's page all go through it (`scrub_text` for free text holding URLs,
`scrub_value` for nested JSON-like records). A scrubbed URL still names the host, port and path,
so an error line stays useful.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are credentials: any name containing one of these words.
SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "passwd", "pwd", "auth", "signature", "sig", "credential", "session")
_SECRET_PARAM = re.compile("|".join(SECRET_PARAM_WORDS), re.IGNORECASE)
# A URL inside free text: a scheme, then everything up to whitespace, a quote or a bracket.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}`]+")
# An Authorization header quoted back by a careless server or proxy (Basic carries user:password).
_AUTH_HEADER = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}")


# Secret values this process holds (API keys, URL passwords): a server or proxy may echo one back
# in an error or a reply, where no URL or header pattern would find it. Too short a value would
# mask ordinary words, so only values of `MIN_SECRET_CHARS` or more are remembered.
MIN_SECRET_CHARS = 8
_KNOWN_SECRETS: set[str] = set()


def remember_secret(value: str | None) -> None:
    """Mask `value` wherever `scrub_text` sees it from now on (a model's API key, as it is loaded)."""
    if value and len(value) >= MIN_SECRET_CHARS:
        _KNOWN_SECRETS.add(value)
# Environment variables whose values are credentials (HF_TOKEN, OPENAI_API_KEY, MY_SECRET…): a server
# or the Hub may quote them back in an error, and free text has no URL or header to find them by.
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)


def _secrets() -> list[str]:
    """Remembered values and those of credential variables, longest first (a secret holding another is masked whole)."""
    found = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= MIN_SECRET_CHARS}
    return sorted(found | _KNOWN_SECRETS, key=len, reverse=True)


def is_secret_param(name: str) -> bool:
    return bool(_SECRET_PARAM.search(name))


def split_credentials(url: str) -> tuple[str, dict[str, str], str | None]:
    """`url` without its credentials; its secret query parameters (sent as the request's query); and
    its userinfo as a Basic `Authorization` header value, which replaces the API key's Bearer header
    as httpx did (aiohttp, the transport, refuses userinfo beside an Authorization header)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not is_secret_param(k)]
    secret = {k: v for k, v in pairs if is_secret_param(k)}
    userinfo, _, host_port = parts.netloc.rpartition("@")
    basic = None
    if userinfo:
        user, _, password = userinfo.partition(":")
        basic = "Basic " + base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    query = urlencode(kept) if secret else parts.query
    return urlunsplit(parts._replace(netloc=host_port, query=query)), secret, basic


def scrub_url(url: str) -> str:
    """`url` with its userinfo and the values of secret-looking query parameters replaced by ***."""
    try:
        parts = urlsplit(url)
        host_port = parts.netloc.rpartition("@")[2]
    except ValueError:  # not parseable as a URL (a bad IPv6 literal…): mask whatever sits before an '@'
        return re.sub(r"//[^/@]*@", f"//{MASK}@", url)
    netloc = f"{MASK}@{host_port}" if "@" in parts.netloc else parts.netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_param(k) for k, _ in pairs):
            query = "&".join(f"{k}={MASK if is_secret_param(k) else v}" for k, v in pairs)
    fragment = MASK if parts.fragment and "=" in parts.fragment and is_secret_param(parts.fragment.split("=", 1)[0]) else parts.fragment
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=fragment))


def scrub_text(text: str) -> str:
    """Free text (an error line, a model spec, a log message) with every URL, quoted Authorization
    header, remembered secret value and credential variable's value scrubbed."""
    return _scrub_text(text, _secrets())


def _scrub_text(text: str, secrets: list[str]) -> str:
    if "Basic" in text or "Bearer" in text:  # the pattern's own words: most texts need no regex pass
        text = _AUTH_HEADER.sub(rf"\1 {MASK}", text)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: scrub_url(match.group(0)), text)


def scrub_value(value: Any) -> Any:
    """A JSON-like record (dicts, lists, strings) with every string scrubbed as `scrub_text` does.

    The secrets are read once per record, not once per string: reading them walks the environment,
    and a call log's records hold a dozen strings each (`make bench` measures the cost per call)."""
    return _scrub_value(value, _secrets())


def _scrub_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, dict):
        return {key: _scrub_value(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub_value(item, secrets) for item in value)
    return value


class ScrubFilter(logging.Filter):
    """Scrubs every log record a handler writes: HTTP clients log full request URLs at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_text(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def scrub_logs() -> None:
    """Put a ScrubFilter on every handler of the root logger (and on logging's last-resort handler)."""
    for handler in [*logging.getLogger().handlers, logging.lastResort]:
        if handler is not None and not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
