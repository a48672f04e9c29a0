"""An order's profit for Meta's value optimization for profit: ``custom_data.net_revenue``, from Lightspeed's lines.

Meta's guide ("Value optimization for profit: integration guide", developers.facebook.com/documentation/
ads-commerce/conversions-api/guides/value-optimization-for-profit/integration-guide) adds the order's profit to
the Purchase as ``net_revenue``, in the event's currency (there is no currency field of its own). Here, per line:
what the shopper paid for the goods without VAT, after discounts (``priceExcl``), minus their cost price
(``priceCost``, which Lightspeed keeps without VAT, as a business buys), summed over the order's lines.

- VAT is left out on both sides: it is the state's money, not the shop's, and the cost price has none.
- Shipping and payment fees are left out: Lightspeed knows what the shopper paid for them but not what the
  carrier or the payment provider charged, so counting them would report the fee as pure profit.
- A line without a cost price (missing, null, not a number, or 0 on a line sold for money, which is how a
  shop that never entered one shows up: Lightspeed's own example line sold for 19.95 has priceCost 0) makes
  the whole order send no ``net_revenue``: a profit that leaves out a line's cost would be too high, and
  no value is better than a wrong one. Lines without ``priceExcl`` count the same way.
- A negative total (sold below cost) is sent as nothing, never as a negative number Meta's guide does not show.
"""

from decimal import Decimal

from relay.core.order import Line


def net_revenue(lines: tuple[Line, ...]) -> Decimal | None:
    """Σ (priceExcl − priceCost) over the lines, or None when any line lacks either, or the sum is below 0."""
    if not lines:
        return None
    total = Decimal(0)
    for line in lines:
        if line.price_excl is None or line.cost is None or line.cost < 0:
            return None
        if line.cost == 0 and line.price_excl > 0:
            return None
        total += line.price_excl - line.cost
    return total if total >= 0 else None
