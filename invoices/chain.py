"""The hash chain of each number series: who deletes or rewrites an issued document is found out.

Every issued invoice and credit note stores `chain_previous` (the `chain_hash` of the document
numbered just before it in its series, "" for the first) and

    chain_hash = HMAC-SHA256(key, chain_previous, kind, number, content_hash)

The series' `NumberSequence.chain_head` holds the last link. The key is not in the database,
so someone who can write the tables (even their owner) cannot recompute a link: removing a
document breaks its successor's `chain_previous`, and a "consistent" rewrite (new content and
a recomputed sha256 `content_hash`) no longer matches its `chain_hash`. `verify_integrity`
walks every series (config/ops/integrity.py).

The key is `TARIF_INTEGRITY_KEY`, else one derived from SECRET_KEY. It must stay the same for
the life of the data: after changing it (or SECRET_KEY while the key is derived), every chain
reads as broken. There is no re-linking command yet: key rotation is not supported.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


def integrity_key() -> bytes:
    configured = getattr(settings, "TARIF_INTEGRITY_KEY", "")
    if configured:
        return configured.encode()
    # A key of its own, derived from SECRET_KEY: the two are not interchangeable.
    return hmac.new(settings.SECRET_KEY.encode(), b"tarif.integrity-chain.v1", hashlib.sha256).digest()


def chain_link(*, previous: str, kind: str, number: str, content_hash: str, key: bytes | None = None) -> str:
    """The chain hash of one document, given the one of the document before it in its series."""
    message = "\n".join((previous, kind, number, content_hash)).encode()
    return hmac.new(key if key is not None else integrity_key(), message, hashlib.sha256).hexdigest()
