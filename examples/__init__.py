"""Runnable example programs (``python examples/<name>.py``); a package so tests can import them."""
