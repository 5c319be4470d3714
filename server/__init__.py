"""Koppi aiohttp server: handlers -> services -> repositories; it keeps ciphertext only."""
