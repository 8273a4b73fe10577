"""The shared kernel: settings, database, Redis, money, ids, clock, errors, auth, logging."""
