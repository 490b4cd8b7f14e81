"""Mask e-mail addresses and public IP addresses, as FineWeb does (datatrove's PIIFormatter).

Only globally routable IPs are PII: 192.168.x.x or 127.0.0.1 in a tutorial are kept. Version
strings that look like IPs ("1.2.3.4") are masked too when they parse as public addresses; the
same trade-off FineWeb made.
"""

from __future__ import annotations

import ipaddress
import re

from pipeline.filter.config import PIIConfig

# RFC 5322-ish local part @ dotted host (or [IP literal]); the pattern FineWeb's code uses.
EMAIL_RE = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"|\[(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]*[A-Za-z0-9]:)])"
)
# Dotted quads not glued to other digits or dots ("10.1.2.3.4" is not an IP).
IPV4_RE = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)(?![\d]|\.\d)"
)
# Every IPV4_RE match holds this shape (four runs of 1-3 ASCII digits joined by dots). Most pages
# have none, and searching for it costs a tenth of IPV4_RE's scan, so the scan runs only then.
DOTTED_QUAD_RE = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")


def is_public_ip(candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


def mask(text: str, cfg: PIIConfig) -> tuple[str, int, int]:
    """(masked text, e-mails masked, IPs masked)."""
    if not cfg.enabled or ("@" not in text and "." not in text):
        return text, 0, 0
    text, n_emails = EMAIL_RE.subn(cfg.email_replacement, text) if "@" in text else (text, 0)
    n_ips = 0

    def replace_ip(match: re.Match) -> str:
        nonlocal n_ips
        if cfg.only_public_ips and not is_public_ip(match.group(0)):
            return match.group(0)
        n_ips += 1
        return cfg.ip_replacement

    if DOTTED_QUAD_RE.search(text):
        text = IPV4_RE.sub(replace_ip, text)
    return text, n_emails, n_ips
