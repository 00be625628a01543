"""The one place that reads the environment (see README, "Configuration")."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def dev_encryption_key(secret_key: str) -> str:
    """A Fernet key derived from SECRET_KEY, for the embedded default only.

    Production refuses to start without TARIF_ENCRYPTION_KEYS (see production.py).
    """
    digest = hashlib.sha256(f"tarif-dev-encryption:{secret_key}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()
