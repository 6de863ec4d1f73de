"""Headless Debian chromium driven by Playwright, with a fake camera and microphone.

Playwright's own browser download is never used: the tests launch /usr/bin/chromium (``make test`` installs
Debian's package). Without it the browser tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.databases import unavailable

CHROMIUM = os.environ.get("DUET_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FAKE_MEDIA_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """One headless chromium per test; open pages with ``await browser.new_context()``."""
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240  (one stat before launching a browser)
        unavailable(f"chromium not found at {CHROMIUM}; `make test` installs Debian's package")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FAKE_MEDIA_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
