"""Walk steps of the console (issue 15): one module per area, plain functions over a Playwright page,
chained by the walk test (tests/browser/test_console_walk.py)."""
