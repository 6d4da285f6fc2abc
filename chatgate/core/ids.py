"""Ids of conversations and messages: random UUIDs, so no instance needs to ask another."""

from __future__ import annotations

import uuid


def new_id() -> str:
    return str(uuid.uuid4())
