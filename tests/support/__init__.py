"""Real local servers for tests (SMTP, S3), started on loopback inside the test process."""
