import json, time, js
from pyodide.ffi import to_js
row = {"order_id": 123456789, "event_name": "Purchase", "order_number": "ORD00042", "event_id": "ls-123456789-purchase-abcdef",
       "event_time": 1765000000, "state": "sent", "payment_status": "paid", "attempts": 1, "next_attempt_at": 1765000000,
       "last_status": 200, "last_code": None, "last_subcode": None, "last_fbtrace_id": "AbCdEfGhIjKlMnOp", "last_error": None,
       "sent_at": 1765000100, "source": "listing", "match_keys": "em,ph,fn,ln,ct,st,zp,country,external_id,client_ip_address",
       "needs_lines": 0, "created_at": 1765000000, "updated_at": 1765000100, "cancelled_at": None, "consent": "granted é ü 😀",
       "consent_source": "bridge", "event_time_iso": "2025-12-06T05:46:40Z"}
def mk(n):
    rows = json.dumps([dict(row, order_id=row["order_id"] + i) for i in range(n)], separators=(",", ":"), ensure_ascii=False)
    return js.JSON.parse(json.dumps([{"results": [{"rows": rows}], "success": True, "meta": {"changes": 0, "duration": 0.2}}], ensure_ascii=False))
small = js.JSON.parse(json.dumps([{"results": [{"n": 3, "x": "abc"}], "success": True, "meta": {"changes": 0}}, {"results": [], "success": True, "meta": {"changes": 1}}]))
stringify = js.JSON.stringify
_kit = None
def kit():
    global _kit
    if _kit is None:
        box = js.Array.new()
        holder = js.Object.new()
        holder.toString = js.Function.prototype.bind.call(stringify, js.JSON, box)
        _kit = (box, holder, js.TextEncoder.new().encode)
    return _kit
def plain_old(v):
    return json.loads(stringify(v))
def plain_new(v):
    box, holder, encode = kit()
    box[0] = v
    return json.loads(encode(holder).to_bytes().decode())[0]
for name, v in (("small", small), ("1 row", mk(1)), ("2 rows", mk(2)), ("5 rows", mk(5)), ("51 rows", mk(51))):
    assert plain_old(v) == plain_new(v), name
    for fn in (plain_old, plain_new) * 2:
        best = 1e9
        for _ in range(100):
            t = time.perf_counter(); fn(v); best = min(best, time.perf_counter() - t)
        print(name, len(stringify(v)), fn.__name__, round(best * 1000, 4), "ms")
