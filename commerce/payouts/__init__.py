"""Farmer payouts: where a farmer is paid, and paying each their settled balance."""
