"""TEMP: registers donations' listeners with commerce.hooks (replaced by explicit flows)."""

from donations.charity import pledges
from donations.energy import earning
from donations.gifts import service

pledges.register()
service.register()
earning.register()
