-- GET /orders?number= and POST /orders/replay find an order by its number (what a shop owner reads on the
-- order, e.g. ORD00042), case-insensitively, without scanning the shop's rows (D1 bills rows read).
CREATE INDEX IF NOT EXISTS outbox_by_number ON outbox (shop, order_number COLLATE NOCASE);
