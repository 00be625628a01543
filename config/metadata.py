"""Metadata: the integrator's own key-value pairs on an object, with Stripe's limits.

At most 50 keys, each 1 to 40 characters, each value text of at most 500 characters; no
nesting. The API's `MetadataField` (config/api/serializers.py) applies them to every request
that writes metadata, and services that merge metadata (a subscription update) check the result.

A leaf module: imports no app.
"""

from __future__ import annotations

MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
