"""Catalog, live sessions and their listings, orders, payments and the money ledger."""
