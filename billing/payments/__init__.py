"""Payment gateways behind one small interface (see gateway.py and docs/payments.md)."""
