"""Conversation facts the bot's event broker writes as the core's own rows (no transcript, no text)."""
