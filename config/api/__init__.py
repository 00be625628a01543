"""The integrator API framework: keys, scopes, idempotency, errors, pagination, ids, expand, throttling.

Resources live in each app's `apis.py`; this package holds what they share (docs/api.md).
"""
