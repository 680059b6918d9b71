"""Error helpers: one place for the project's message format (what was wrong, what was received, how to fix)."""

from __future__ import annotations


def bad_value(name: str, received: object, fix: str) -> ValueError:
    """A ValueError naming the argument, the value received and the fix."""
    text = repr(received)
    if len(text) > 200:
        text = text[:200] + "..."
    return ValueError(f"invalid {name}: got {text}. {fix}")
