"""Email: build messages (``messages``), queue them with the change that caused them (``outbox``),
deliver them through a ``MailTransport`` (``transports``: .eml folder or SMTP)."""
