"""Midtrans's formats as documented: the notification signature, and what each transaction
status means for a payment."""

from __future__ import annotations

import pytest

from commerce.payments.midtrans import amount_of, kind, signature
from commerce.payments.providers import FAILED, PENDING, SUCCEEDED
from core.errors import ApiError


def test_the_notification_signature_is_the_documented_sha512():
    # The example of Midtrans's own integration fixtures: order_id, status_code,
    # gross_amount as the notification carries them, then the server key.
    assert signature("ORDER-sandbox-0001", "200", "150000.00", "SB-Mid-server-test") == (
        "d65b4adf15335095fe1bfafe24964d48009dcc2989393e13570b0c9852ea60df"
        "0040b1a9646b9c9ef9433317f77acc8e387c59998dc20f5bd93fff93d23672e4"
    )


@pytest.mark.parametrize(
    ("status", "fraud", "means"),
    [
        ("settlement", None, SUCCEEDED),
        ("capture", "accept", SUCCEEDED),
        ("capture", "challenge", PENDING),
        ("pending", None, PENDING),
        ("deny", None, FAILED),
        ("cancel", None, FAILED),
        ("expire", None, FAILED),
        ("failure", None, FAILED),
        ("refund", None, PENDING),
        ("partial_refund", None, PENDING),
    ],
)
def test_each_transaction_status_maps_onto_the_payment_lifecycle(status, fraud, means):
    assert kind(status, fraud) == means


def test_gross_amounts_are_whole_rupiah():
    assert amount_of("150000.00") == 150_000
    for bad in ("150000.50", "abc", "-5.00", "0.00"):
        with pytest.raises(ApiError):
            amount_of(bad)


@pytest.mark.parametrize("order_id", ["pay_1\nX", "pay 1", "../v2/other", "pay_" + "x" * 60])
async def test_a_signed_notification_for_an_order_id_that_is_no_payment_id_is_400_not_a_call(
    order_id,
):
    """Even correctly signed, an order_id we could not have issued is refused before the
    status API is asked (it would have been put into that URL)."""
    from dataclasses import replace

    import orjson

    from commerce.payments.midtrans import MidtransProvider
    from core.settings import Settings

    provider = MidtransProvider(replace(Settings(), midtrans_server_key="SB-Mid-server-test"))
    note = {
        "order_id": order_id,
        "status_code": "200",
        "gross_amount": "150000.00",
        "transaction_status": "settlement",
        "signature_key": signature(order_id, "200", "150000.00", "SB-Mid-server-test"),
    }
    try:
        with pytest.raises(ApiError) as refused:
            await provider.verify({}, orjson.dumps(note), 0.0)
        assert (refused.value.status, refused.value.code) == (400, "malformed_webhook")
    finally:
        await provider.aclose()
