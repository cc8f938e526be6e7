"""Compliance: the audit trail, a user's data export, erasure and retention."""
