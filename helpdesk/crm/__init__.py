"""Crm pages."""
