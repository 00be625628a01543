"""The customer self-service portal (docs/portal.md): views over billing and invoices services."""
