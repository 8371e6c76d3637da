"""The email channel: parse raw mail into InboundMessage (IMAP/SMTP come later)."""

from channels.email.parse import parse_email

__all__ = ["parse_email"]
