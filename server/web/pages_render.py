"""Pages are static HTML files in the top-level web/ folder; a few get values filled in, always escaped."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from string import Template

from aiohttp import web

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"


@cache
def _template(name: str) -> Template:
    return Template((WEB_ROOT / name).read_text(encoding="utf-8"))


def render(name: str, *, status: int = 200, **values: str) -> web.Response:
    body = _template(name).safe_substitute({k: html.escape(v) for k, v in values.items()})
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def message_page(title: str, detail: str, *, status: int) -> web.Response:
    """A plain page for a person who followed a link that cannot be used."""
    return render("message.html", status=status, title=title, detail=detail)
