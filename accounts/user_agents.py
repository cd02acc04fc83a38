"""A short human label for a device, from its User-Agent (for the sessions list)."""

import re

_BROWSERS = (
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
    ("HTTPie", re.compile(r"^HTTPie/")),
    ("Python", re.compile(r"python-requests|python-httpx|Python-urllib|aiohttp")),
)
_SYSTEMS = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux|X11")),
)


def device_label(user_agent: str) -> str:
    """``"Firefox on Linux"``, ``"curl"``, or ``"Unknown device"``."""
    ua = user_agent or ""
    browser = next((name for name, rx in _BROWSERS if rx.search(ua)), None)
    system = next((name for name, rx in _SYSTEMS if rx.search(ua)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"
