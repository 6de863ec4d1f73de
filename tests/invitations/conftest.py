"""Fixtures for the invitation tests: a real aiosmtpd server (tests/support/smtp.py)."""

from tests.support.smtp import smtp_server, smtp_server_factory

__all__ = ["smtp_server", "smtp_server_factory"]
