"""Invoice and credit-note documents: HTML and PDF from the same templates, Factur-X XML.

Everything renders from frozen data (`issued_snapshot`, stored lines and totals), so an
issued document can be regenerated identically; nothing here fetches from the network.
"""
