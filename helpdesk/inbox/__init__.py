"""Inbox pages."""
