"""Checkout sessions: a page hosted by Tarif where a visitor becomes a paying customer (issue 17).

Stripe Checkout's model: a session created by the API, a payment link or the pricing table
names prices and quantities; the hosted page collects the buyer's details, shows the first
invoice computed by the invoice engine, sends the card to the gateway's hosted page, and
`checkout_session_complete` turns the session into a customer, a payment method and a
subscription (or a paid invoice) exactly once. docs/checkout.md.
"""
