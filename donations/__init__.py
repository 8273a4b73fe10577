"""Donations, sponsor matching, campaign goals, disbursements and the transparency log."""
