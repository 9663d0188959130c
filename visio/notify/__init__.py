"""Notifications: composing messages, sending them (SMTP, SMS), dispatching the outbox."""
