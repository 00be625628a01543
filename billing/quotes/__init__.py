"""Quotes for sales-led deals (issue 17 item 4): drafted in the console, numbered in the
brand's own quote series, sent as a branded PDF with a signed link, accepted online, and
turned into the subscription and first invoice exactly as quoted. See docs/quotes.md."""
