"""Meta's own view of a pixel's events: the Dataset Quality API's answer for the Purchase event.

The relay counts which match keys it sends; only Meta can say how well they match. Its Dataset Quality
API (https://developers.facebook.com/docs/marketing-api/conversions-api/dataset-quality-api) answers
``GET /{version}/dataset_quality?dataset_id=<pixel>&fields=web{...}`` with one entry per event name:
the Event Match Quality composite score (0-10), per match key the share of events carrying it, the
deduplication keys' coverage, and Meta's diagnostics. This module builds that request and reads the
answer into a ``QualityCheck``; it does no I/O. The product's target is a score of at least ``TARGET``.

A token that may send events but not read the dataset gets a permission error from Meta; that is a
setting to change, not a failure, so it becomes ``no_access`` with the sentence that says what to grant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from relay.core.config import Settings, Shop
from relay.core.ports import HttpRequest, HttpResponse
from relay.core.sentences import Said

TARGET = 5.0                       # "match quality above 5.0 in Events Manager" (docs/OPERATIONS.md)
EVENT = "Purchase"
TIMEOUT = 10.0
FIELDS = ("web{event_name,"
          "event_match_quality{composite_score,match_key_feedback{identifier,coverage{percentage}},"
          "diagnostics{name,solution,percentage}},"
          "event_coverage{percentage,goal_percentage},"
          "dedupe_key_feedback{dedupe_key,server_events_with_dedupe_key{percentage},"
          "browser_events_with_dedupe_key{percentage},overall_browser_coverage_from_dedupe_key{percentage}}}")

# Meta's match-key identifiers, as the relay names the same keys in user_data (relay.core.match).
META_KEYS = {
    "email": "em", "phone": "ph", "first_name": "fn", "last_name": "ln", "gender": "ge", "date_of_birth": "db",
    "city": "ct", "state": "st", "zip_code": "zp", "zip": "zp", "country": "country", "external_id": "external_id",
    "ip_address": "client_ip_address", "user_agent": "client_user_agent", "fbc": "fbc", "click_id": "fbc",
    "fbp": "fbp", "browser_id": "fbp",
}
# Graph error codes that mean "this token may not read this dataset" (permission or unknown object).
NO_ACCESS_CODES = frozenset({10, 200, 283, 294})


@dataclass(frozen=True)
class QualityCheck:
    state: str                                   # ok | no_data | no_access | unknown
    score: float | None = None                   # the Purchase event's EMQ composite score, 0-10
    match_keys: tuple[tuple[str, float], ...] = ()          # (relay key name, percentage of events)
    dedup: tuple[tuple[str, float | None, float | None], ...] = ()   # (key, server %, browser %)
    coverage: float | None = None                # event coverage: % of pixel events the server also sent
    diagnostics: tuple[str, ...] = ()            # Meta's issue names with their fix, shortened
    code: int | None = None
    error: str | None = None
    events: tuple[str, ...] = field(default=())  # event names Meta has figures for


def request(shop: Shop, settings: Settings) -> HttpRequest:
    """The call for one pixel, authorised by the shop's own token in the header (never in the URL)."""
    url = (f"{settings.meta_graph_url}/{settings.meta_api_version}/dataset_quality"
           f"?dataset_id={quote(shop.pixel_id, safe='')}&fields={quote(FIELDS, safe='')}")
    return HttpRequest("GET", url, {"Authorization": f"Bearer {shop.meta_token.reveal()}",
                                    "Accept": "application/json"}, timeout=TIMEOUT)


def no_access_fix(shop: Shop) -> str:
    return Said("quality_no_access", var=f"{shop.prefix}META_ACCESS_TOKEN", pixel=shop.pixel_id)


def parse(response: HttpResponse, shop: Shop) -> QualityCheck:
    body = response.json_object()
    if body is None:
        return QualityCheck("unknown", error=f"Meta dataset_quality answered {response.status} without JSON; "
                                             "will ask again in an hour")
    error = body.get("error")
    if isinstance(error, dict):
        code = _number(error.get("code"))
        subcode = _number(error.get("error_subcode"))
        code = int(code) if code is not None else None
        if code in NO_ACCESS_CODES or (code == 100 and subcode == 33):
            return QualityCheck("no_access", code=code, error=no_access_fix(shop))
        if code in (102, 190):
            return QualityCheck("unknown", code=code, error=f"Meta refused {shop.prefix}META_ACCESS_TOKEN "
                                                            "(code 190); see the token check")
        return QualityCheck("unknown", code=code, error=f"Meta dataset_quality answered {response.status} "
                                                        f"(code {code}); will ask again in an hour")
    entries = [e for e in body.get("web") or () if isinstance(e, dict)]
    names = tuple(str(e.get("event_name")) for e in entries if e.get("event_name"))
    found = [e for e in entries if e.get("event_name") == EVENT]
    if not found:
        return QualityCheck("no_data", events=names, error=Said("quality_no_data"))
    purchase: dict[str, Any] = found[0]
    emq: dict[str, Any] = purchase["event_match_quality"] if isinstance(purchase.get("event_match_quality"), dict) \
        else {}
    keys = tuple(sorted(
        ((META_KEYS.get(str(k.get("identifier")), str(k.get("identifier"))), _pct(k.get("coverage")) or 0.0)
         for k in emq.get("match_key_feedback") or () if isinstance(k, dict) and k.get("identifier")),
        key=lambda kv: (-kv[1], kv[0])))
    feedback = purchase.get("dedupe_key_feedback") or purchase.get("dedup_key_feedback") or ()
    dedup = tuple((str(d.get("dedupe_key")), _pct(d.get("server_events_with_dedupe_key")),
                   _pct(d.get("browser_events_with_dedupe_key")))
                  for d in feedback if isinstance(d, dict) and d.get("dedupe_key"))
    diagnostics = tuple(_diagnostic(d) for d in emq.get("diagnostics") or () if isinstance(d, dict) and d.get("name"))
    return QualityCheck("ok", _number(emq.get("composite_score")), keys, dedup,
                        _pct(purchase.get("event_coverage")), diagnostics, events=names)


def _diagnostic(d: dict[str, Any]) -> str:
    text = str(d["name"])
    if d.get("solution"):
        text += f": {d['solution']}"
    return text if len(text) <= 300 else text[:297] + "..."


def _pct(value: Any) -> float | None:
    return _number(value.get("percentage")) if isinstance(value, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
