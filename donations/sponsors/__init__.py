"""Sponsors' money: top-ups paid through the same payment providers as orders and gifts,
which fund what a sponsor commits to (the matches of their sessions, their energy
pools)."""
