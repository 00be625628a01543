"""Issue 16's hand-worked cases: one table per area (test_cases_*.py), each case with its arithmetic and source."""
