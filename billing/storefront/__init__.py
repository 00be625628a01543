"""Pricing tables and payment links (issue 17): the public ways into a checkout session.

A pricing table shows chosen products with their monthly and yearly prices and sends the visitor
to a checkout session; a payment link is a shareable URL to a checkout for fixed prices. Both
belong to one brand and one mode (live or test): the session they create inherits both.
"""
