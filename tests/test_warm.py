"""The import-time warm-up (src/entry.py runs it before the Worker's snapshot) goes through the whole
webhook path and builds a complete event, so a change that breaks the hot path breaks it too."""

from relay.core.warm import warm_up


def test_the_warm_up_builds_a_full_purchase_event_without_io():
    event = warm_up()
    assert event["event_name"] == "Purchase" and event["custom_data"]["contents"]
    assert {"em", "ph", "fn", "ln", "ct", "zp", "country", "db", "ge", "external_id"} <= set(event["user_data"])
