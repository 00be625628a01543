"""The domain event log: a leaf app every product app may import (it imports none of them).

models (DomainEvent, EventCursor), log (event_record, events_record_bulk), consumers (the one
cursor + look-back + dedupe helper every event consumer uses), locks, admin (console pages).
"""
