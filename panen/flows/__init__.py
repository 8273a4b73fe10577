"""The money path's flows, each one function that reads top to bottom.

A flow composes the domains in a fixed order inside one transaction — the order the locks
are taken in, written down in docs/architecture.md — and does its network calls (the
payment provider, Redis) only after the transaction commits:

- `payment`: a provider's event arrives (webhook, or the sandbox's approve/decline);
- `settle`: paid orders are split in the ledger, their pledges reach the charities;
- `refund`: an order is cancelled, or refunded after payment;
- `expire`: reservations nobody paid for give their stock back.

They live above `commerce` and `donations` because they join the two; nothing below
registers itself with anything.
"""
