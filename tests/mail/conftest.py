"""Fixtures for the mail tests: a real aiosmtpd server from tests/support/smtp.py."""

from tests.support.smtp import smtp_server, smtp_server_factory, smtp_tls

__all__ = ["smtp_server", "smtp_server_factory", "smtp_tls"]
