"""Encryption at rest for personal data (tax IDs, IBANs, bank details).

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`,
through MultiFernet so keys can rotate: the first key of TARIF_ENCRYPTION_KEYS
encrypts, every key decrypts. Encrypted columns cannot be searched or filtered;
store a searchable non-secret companion (e.g. the last 4 digits) when needed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("TARIF_ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(f"TARIF_ENCRYPTION_KEYS holds an invalid Fernet key: {error}") from error


def encryptor() -> MultiFernet:
    return _fernet(tuple(settings.TARIF_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return PREFIX + encryptor().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        raise ValueError("value is not encrypted")
    try:
        return encryptor().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as error:
        raise ImproperlyConfigured(
            "An encrypted value cannot be decrypted with any key in TARIF_ENCRYPTION_KEYS"
        ) from error


def rotate(stored: str) -> str:
    """Re-encrypt with the newest key (used by the key-rotation command)."""
    return PREFIX + encryptor().rotate(stored[len(PREFIX) :].encode()).decode()


class EncryptedTextField(models.TextField):
    description = "Text encrypted at rest with the Tarif encryption keys"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(PREFIX):
            return decrypt(value)
        return value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))
