"""The delivery log: what a line may hold, where it is written, and ``relay logs`` reading it back."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest

from conftest import PAID_HEADERS, PAID_RAW, TOKEN
from relay.outbox.delivery_log import DeliveryLog, log_key
from relay_tools import logs_cli
from relay_tools.cli import main
from relay_tools.edges import FolderBlobs
from relay_tools.fakes import graph_error

KEY_SHAPE = re.compile(r"logs/vik/2025/11/18/\d{6}-[0-9a-f]{12}\.ndjson")


def webhook(relay) -> None:
    assert httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"]).status_code == 200
    relay.drain()


def log_files(relay) -> list[Path]:
    root = relay.relay.blobs.root
    return sorted(root.rglob("*.ndjson"))


def lines_of(files: list[Path]) -> list[dict]:
    return [json.loads(raw) for f in files for raw in f.read_text().splitlines()]


# --- what a line may hold -----------------------------------------------------------------------------------


def test_fields_outside_the_whitelist_and_objects_are_dropped():
    log = DeliveryLog()
    log.add("vik", 1763498829, kind="decision", order_id=1, email="marielle@example.nl", user_data={"em": "x"},
            error={"body": "raw"}, match_keys="em,ph", scopes=["ads_management"])
    (line,) = log.lines["vik"]
    assert line == {"t": 1763498829, "shop": "vik", "kind": "decision", "order_id": 1, "match_keys": "em,ph",
                    "scopes": ["ads_management"]}


def test_free_text_is_scrubbed_of_emails_and_tokens_and_capped():
    log = DeliveryLog()
    log.add("vik", 0, kind="attempt", error=f"Meta said marielle.vandenbroek@example.nl and {TOKEN} " + "x" * 400)
    error = log.lines["vik"][0]["error"]
    assert "example.nl" not in error and TOKEN not in error
    assert "[email]" in error and "[token]" in error
    assert len(error) <= 300


def test_identifiers_are_kept_as_they_are():
    log = DeliveryLog()
    log.add("vik", 0, kind="attempt", fbtrace_id="AZ0kEAAlNxXyQ1234567", event_id="purchase_ORD04217")
    line = log.lines["vik"][0]
    assert (line["fbtrace_id"], line["event_id"]) == ("AZ0kEAAlNxXyQ1234567", "purchase_ORD04217")


def test_attempt_lines_carry_the_state_transition():
    log = DeliveryLog()
    log.add("vik", 0, kind="decision", order_id=7, state="due")
    log.add("vik", 0, kind="attempt", order_id=7, verdict="sent", attempts=1)
    log.add("vik", 0, kind="attempt", order_id=8, verdict="hold", attempts=3)
    log.add("vik", 0, kind="attempt", order_id=9, verdict="failed", attempts=1)
    _, sent, held, failed = log.lines["vik"]
    assert (sent["from_state"], sent["state"]) == ("due", "sent")
    assert (held["from_state"], held["state"]) == ("retry", "retry")
    assert (failed["from_state"], failed["state"]) == ("due", "failed")


def test_a_failed_write_does_not_raise_into_the_send_path(tmp_path, caplog):
    class Refusing:
        async def put(self, key, data, content_type="application/x-ndjson"):
            raise OSError("bucket unavailable")

    log = DeliveryLog()
    log.add("vik", 0, kind="decision", order_id=1, state="due")
    assert asyncio.run(log.flush(Refusing(), 0)) == []
    assert "not written (OSError)" in caplog.text
    assert log.lines == {}


def test_one_object_per_invocation_and_shop_under_a_dated_key(tmp_path):
    log = DeliveryLog()
    log.add("vik", 1763498829, kind="decision", order_id=1, state="due")
    log.add("vik", 1763498829, kind="attempt", order_id=1, verdict="sent", attempts=1)
    log.add("other", 1763498829, kind="decision", order_id=2, state="waiting")
    keys = asyncio.run(log.flush(FolderBlobs(tmp_path), 1763498829))
    assert len(keys) == 2
    (vik,) = [k for k in keys if k.startswith("logs/vik/")]
    assert KEY_SHAPE.fullmatch(vik)
    assert vik.startswith(log_key("vik", 1763498829, "x")[:len("logs/vik/2025/11/18/204709")])
    assert len((tmp_path / vik).read_text().splitlines()) == 2


# --- the relay writes them ----------------------------------------------------------------------------------


def test_a_webhook_writes_one_object_with_the_decision_and_the_attempt(relay, meta):
    webhook(relay)
    files = log_files(relay)
    assert len(files) == 1
    assert KEY_SHAPE.fullmatch(files[0].relative_to(relay.relay.blobs.root).as_posix())
    decision, attempt = lines_of(files)
    assert decision["kind"] == "decision" and decision["state"] == "due" and decision["source"] == "webhook"
    assert attempt["kind"] == "attempt"
    assert (attempt["from_state"], attempt["state"], attempt["status"], attempt["events_received"]) == \
        ("due", "sent", 200, 1)
    assert attempt["fbtrace_id"] == "FakeTrace000001"
    assert attempt["event_id"] == "purchase_ORD04217" and attempt["order_id"] == 384271665
    assert "em" in attempt["match_keys"].split(",")
    assert isinstance(attempt["ms"], int)


def test_a_refused_event_logs_the_error_code_and_message(relay, meta):
    meta.script.append(graph_error(400, 100, "Invalid parameter", subcode=2804050))
    webhook(relay)
    attempt = [line for line in lines_of(log_files(relay)) if line["kind"] == "attempt"][0]
    assert (attempt["state"], attempt["code"], attempt["subcode"]) == ("failed", 100, 2804050)
    assert "Invalid parameter" in attempt["error"]


# --- relay logs ---------------------------------------------------------------------------------------------


def test_relay_logs_prints_a_table_of_the_day(relay, meta, capsys):
    webhook(relay)
    root = relay.relay.blobs.root
    assert main(["logs", "--shop", "vik", "--date", "2025-11-18", "--root", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:6] == ["time", "kind", "order", "id", "event_id", "transition"]
    attempt = next(line for line in out if " attempt " in line)
    for expected in ("384271665", "purchase_ORD04217", "due → sent", "200", "FakeTrace000001", "em"):
        assert expected in attempt


def test_relay_logs_passes_ndjson_through_unchanged(relay, meta, capsys):
    webhook(relay)
    root = relay.relay.blobs.root
    assert main(["logs", "--shop", "vik", "--date", "2025-11-18", "--root", str(root), "--format", "ndjson",
                 "--kind", "attempt"]) == 0
    printed = capsys.readouterr().out.splitlines()
    stored = [raw for f in log_files(relay) for raw in f.read_text().splitlines() if '"attempt"' in raw]
    assert printed == stored


def test_relay_logs_reads_a_downloaded_bucket_folder(relay, meta, tmp_path, capsys):
    webhook(relay)
    bucket = tmp_path / "bucket-copy"
    shutil.copytree(relay.relay.blobs.root / "logs", bucket / "logs")
    for root in (bucket, bucket / "logs"):           # the bucket folder, or its logs/ folder
        assert main(["logs", "--shop", "VIK", "--date", "2025-11-18", "--root", str(root),
                     "--order", "384271665"]) == 0
        assert "purchase_ORD04217" in capsys.readouterr().out


def test_relay_logs_says_where_it_looked_when_the_day_is_empty(relay, meta, capsys):
    webhook(relay)
    root = relay.relay.blobs.root
    assert main(["logs", "--shop", "vik", "--date", "2025-11-17", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "no delivery log lines for shop 'vik' on 2025-11-17" in err and str(root) in err


def test_relay_logs_takes_the_order_number_or_the_id(relay, meta, capsys):
    webhook(relay)
    root = str(relay.relay.blobs.root)
    for order in ("ORD04217", "ord04217", "384271665"):
        assert main(["logs", "--shop", "vik", "--date", "2025-11-18", "--root", root, "--order", order]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].split()[:4] == ["time", "kind", "order", "id"]
        assert len(out) == 3 and all("ORD04217" in line and "384271665" in line for line in out[1:])


def test_relay_logs_names_the_folder_it_was_given_and_the_orders_it_has(relay, meta, tmp_path, capsys):
    webhook(relay)
    root = relay.relay.blobs.root
    assert main(["logs", "--shop", "vik", "--date", "2025-11-18", "--root", str(root), "--order", "ORD99999"]) == 1
    err = capsys.readouterr().err
    assert f"under {root} has 2 line(s), none for order ORD99999; orders in it: ORD04217 (id 384271665)" in err
    fresh = tmp_path / ".relay" / "logs"                # relay serve's default folder, before it logged anything
    assert main(["logs", "--shop", "vik", "--root", str(fresh), "--order", "ORD04217"]) == 1
    err = capsys.readouterr().err
    assert f"under {fresh}: relay serve and relay backfill write there" in err and "logs/logs" not in err


def test_the_objects_of_one_second_are_read_in_the_order_they_were_written(tmp_path):
    log = DeliveryLog()
    for n in range(20):                                   # twenty invocations within one second
        log.add("vik", 1763498829, kind="decision", order_id=n, state="due")
        asyncio.run(log.flush(FolderBlobs(tmp_path), 1763498829 + n / 25))
    read = [line["order_id"] for _, line in logs_cli.read_lines(tmp_path / "logs" / "vik" / "2025" / "11" / "18")]
    assert read == list(range(20))


@pytest.mark.parametrize("argv, message", [
    (["--date", "18-11-2025"], "is not a day; use YYYY-MM-DD"),
    (["--shop", "../etc"], "shop names are"),
])
def test_relay_logs_refuses_bad_arguments(tmp_path, capsys, argv, message):
    args = {"--shop": "vik", "--date": "2025-11-18", "--root": str(tmp_path)}
    args.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    assert main(["logs", *[x for kv in args.items() for x in kv]]) == 2
    assert message in capsys.readouterr().err


def test_relay_logs_shows_lines_in_time_order_across_objects(tmp_path):
    """The free plan's cron writes staged lines under the first one's time: a later line can sit in an object whose
    name sorts before another object's earlier line; the reader puts every line in time order."""
    folder = tmp_path / "logs" / "vik" / "2025" / "11" / "18"
    folder.mkdir(parents=True)
    (folder / "204700-000aaaaaaaaa.ndjson").write_text(
        json.dumps({"t": 1763498820, "kind": "decision", "order_number": "A"}) + "\n"
        + json.dumps({"t": 1763498890, "kind": "decision", "order_number": "C"}) + "\n", encoding="utf-8")
    (folder / "204730-000bbbbbbbbb.ndjson").write_text(
        json.dumps({"t": 1763498850, "kind": "attempt", "order_number": "B"}) + "\n", encoding="utf-8")
    assert [line["order_number"] for _, line in logs_cli.read_lines(folder)] == ["A", "B", "C"]
