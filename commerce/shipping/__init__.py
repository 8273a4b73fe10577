"""Shipping: buyers' addresses, farmers' fees, and the shipments that carry the produce."""
