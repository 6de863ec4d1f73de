"""A tiny block model rendered twice: plain text and HTML, from the same words.

Writing each email once as blocks keeps the two alternatives (RFC 2046 section
5.1.4, multipart/alternative) saying exactly the same thing, and puts every value
through ``html.escape`` in one place instead of in each template.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

from server.errors import InvalidInput


@dataclass(frozen=True)
class Para:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Button:
    """A link the reader is meant to follow; the plain text shows the full URL."""

    label: str
    url: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


Block = Para | Heading | Button | Bullets


def checked_url(url: str, *, field: str) -> str:
    """Only absolute http(s) links on one line go into an email."""
    if any(c in url for c in "\r\n\t ") or len(url) > 2000:
        raise InvalidInput(f"The {field} is not a single-line URL.", field=field)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidInput(f"The {field} must be an absolute http(s) URL.", field=field)
    return url


def render_text(blocks: Sequence[Block]) -> str:
    """Plain text wrapped at 72 columns; URLs are never wrapped so they stay clickable."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{block.text}\n{'-' * min(len(block.text), 72)}")
        elif isinstance(block, Para):
            out.append(textwrap.fill(block.text, 72, break_long_words=False, break_on_hyphens=False))
        elif isinstance(block, Button):
            out.append(f"{block.label}:\n{block.url}")
        else:
            out.append(
                "\n".join(
                    textwrap.fill(
                        item, 72, initial_indent="* ", subsequent_indent="  ", break_long_words=False
                    )
                    for item in block.items
                )
            )
    return "\n\n".join(out) + "\n"


_STYLE_P = (
    "margin:0 0 14px 0;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.45;color:#1b1b1b"
)
_STYLE_H = "margin:22px 0 10px 0;font-family:Arial,Helvetica,sans-serif;font-size:18px;color:#1b1b1b"
_STYLE_A = (
    "display:inline-block;padding:10px 18px;background:#0b5cad;color:#ffffff;border-radius:4px;"
    "text-decoration:none;font-family:Arial,Helvetica,sans-serif;font-size:16px"
)


def render_html(blocks: Sequence[Block], *, title: str) -> str:
    """A small, inline-styled HTML document (mail clients drop <style> sheets)."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f'<h2 style="{_STYLE_H}">{escape(block.text)}</h2>')
        elif isinstance(block, Para):
            text = escape(block.text)
            if block.strong:
                text = f"<strong>{text}</strong>"
            body.append(f'<p style="{_STYLE_P}">{text}</p>')
        elif isinstance(block, Button):
            href = escape(block.url, quote=True)
            body.append(
                f'<p style="{_STYLE_P}"><a href="{href}" style="{_STYLE_A}">{escape(block.label)}</a><br>'
                f'<span style="font-size:13px;color:#555555">{escape(block.url)}</span></p>'
            )
        else:
            items = "".join(f'<li style="margin:0 0 6px 0">{escape(i)}</li>' for i in block.items)
            body.append(f'<ul style="{_STYLE_P}">{items}</ul>')
    return (
        '<!DOCTYPE html>\n<html lang="en-GB"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n"
        '<body style="margin:0;padding:24px;background:#ffffff">\n'
        '<div style="max-width:600px">\n' + "\n".join(body) + "\n</div>\n</body></html>\n"
    )
