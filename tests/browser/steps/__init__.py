"""Walk steps of the console, one module per area (issue 15): plain functions over a Playwright page."""
