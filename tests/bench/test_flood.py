"""bench/flood.py: the figures from small synthetic runs, wrk's counting against an in-process server, the
wiring into bench/run.py, and one short run against the real stack whose counts must agree."""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bench import flood, run
from bench.api_load import BenchError
from bench.flood import Flooder, Phase, Post, parse_wrk_output, summarize, windowed, wrk_script

OFFSET = 1_000.0  # time.time() − perf_counter() of the synthetic runs
CALM = Phase(100.0, 10.0, 3)
FLOOD = Phase(200.0, 10.0, 3)
FLOODER = "f"
USERS = {"u0", "u1"}


def normal(phase: Phase, latencies_ms: list[float], tag: str) -> tuple[list[Post], list[tuple[float, str, str]]]:
    """One message per latency, sent evenly over the phase's windows, answered 2 ms later, seen after `ms`."""
    posts, feed = [], []
    step = phase.window_s * phase.windows / len(latencies_ms)
    for i, ms in enumerate(latencies_ms):
        sent = phase.start + i * step
        posts.append(Post(f"u{i % 2}", sent, sent + 0.002, 202, f"{tag}{i}"))
        feed.append((sent + ms / 1000, f"u{i % 2}", f"{tag}{i}"))
    return posts, feed


def synthetic_run():
    calm_posts, calm_feed = normal(CALM, [10.0] * 29 + [20.0], "c")
    flood_posts, flood_feed = normal(FLOOD, [30.0] * 29 + [50.0], "d")
    extra = [
        Post("u0", 150.0, 150.01, 202, "between"),  # between the phases: in no figure, still checked
        Post("u1", 205.0, 205.3, 429),  # a normal user refused during the flood
        Post("u0", 206.0, None, "timeout"),
        Post("u1", 207.0, 207.01, 202, "lost"),  # accepted, never seen
    ]
    # the flooder: 90 messages seen inside the flood's windows, 5 before them and 5 after
    spam = [(FLOOD.start + i / 3, FLOODER, f"s{i}") for i in range(90)]
    spam += [(FLOOD.start - 1 + i / 10, FLOODER, f"b{i}") for i in range(5)]
    spam += [(FLOOD.end + 1 + i, FLOODER, f"a{i}") for i in range(5)]
    feed = sorted(
        calm_feed + flood_feed + spam + [(150.05, "u0", "between"), (215.0, "someone", "o1"), (216.0, "u0", "d3")]
    )  # d3 arrives twice
    # wrk's counts by wall-clock second: warm-up seconds before the windows and one after them are left out
    counts = {int(OFFSET + s): {202: 50, 429: 10} for s in range(195, 231)}
    for s in range(220, 230):  # the third window accepts less
        counts[int(OFFSET + s)] = {202: 40, 429: 20, 503: 1}
    posts = calm_posts + flood_posts + extra
    return summarize(posts, feed, counts, CALM, FLOOD, flooder=FLOODER, users=USERS, wall_offset=OFFSET)


def test_normal_latencies_are_from_the_send_to_the_reader_per_phase_and_their_ratio():
    r = synthetic_run()
    calm, during = r["calm"], r["flood"]
    assert calm["send_to_seen_ms"]["p50"] == 10.0 and calm["send_to_seen_ms"]["max"] == 20.0
    # p99 of 29 × 10 ms and one 20 ms (linear between the two highest ranks)
    assert calm["send_to_seen_ms"]["p99"] == pytest.approx(10 + 10 * 0.71, abs=0.05)
    assert calm["after_202_ms"]["p50"] == 8.0 and calm["post_ms"]["p50"] == 2.0
    assert during["send_to_seen_ms"]["p50"] == 30.0 and during["send_to_seen_ms"]["max"] == 50.0
    assert during["post_ms"]["max"] == pytest.approx(300)  # the refused one's answer took 300 ms
    assert r["normal_p99_ratio"] == pytest.approx(
        during["send_to_seen_ms"]["p99"] / calm["send_to_seen_ms"]["p99"], 0.01
    )
    assert r["ratio_met"] is False and r["p99_met"] is True  # 2.6× the calm p99, under 100 ms
    assert calm["sent"] == calm["accepted"] == calm["seen"] == 30
    assert during["sent"] == 33 and during["accepted"] == 31 and during["seen"] == 30
    assert during["errors"] == {"429": 1, "timeout": 1}
    assert calm["rate"] == 1.0
    # each window's p99: the calm one's slow message came in its last window
    assert calm["window_p99_ms"]["windows"][:2] == [10.0, 10.0] and calm["window_p99_ms"]["windows"][2] > 10


def test_the_flooders_answers_per_second_come_from_wrks_counts_in_the_floods_windows_only():
    f = synthetic_run()["flooder"]
    assert f["accepted_per_s"]["windows"] == [50.0, 50.0, 40.0] and f["accepted_per_s"]["value"] == 50.0
    assert f["accepted_per_s"]["spread"] == 0.2 and f["accepted_per_s"]["unstable"] is True
    assert f["refused_per_s"]["windows"] == [10.0, 10.0, 20.0]
    assert f["accepted"] == 1400 and f["refused"] == 400 and f["other"] == 10
    assert f["answers_per_s_by_status"]["503"]["windows"] == [0.0, 0.0, 1.0]


def test_the_feed_share_counts_each_message_once_inside_the_floods_windows():
    r = synthetic_run()
    feed = r["feed"]
    # 90 flooder messages, the 30 normal ones that arrived in the windows, one from someone else
    assert (feed["flooder"], feed["users"], feed["others"], feed["messages"]) == (90, 30, 1, 121)
    assert feed["share"] == round(90 / 121, 4)
    assert feed["feed_msgs_per_s"] == round(121 / 30, 1)
    checks = r["checks"]
    assert checks["shares_add_up"] is True
    assert checks["normal_accepted"] == 62 and checks["normal_missing"] == 1  # "lost"
    assert checks["normal_seen_once"] == 60 and checks["repeated"] == 1  # d3 came twice
    assert checks["flooder_accepted_total"] == 50 * 26 + 40 * 10 and checks["flooder_seen_total"] == 100


def test_a_run_without_a_flood_answer_or_a_calm_phase_has_no_ratio():
    r = summarize([], [], {}, CALM, FLOOD, flooder=FLOODER, users=USERS, wall_offset=OFFSET)
    assert r["normal_p99_ratio"] is None and r["ratio_met"] is False and r["p99_met"] is False
    assert r["feed"]["share"] is None and r["flooder"]["accepted_per_s"]["windows"] == [0.0, 0.0, 0.0]


def test_windowed_values_of_zero_are_steady_and_no_values_have_no_figure():
    assert windowed([0.0, 0.0, 0.0]) == {"value": 0.0, "windows": [0.0, 0.0, 0.0], "spread": 0.0, "unstable": False}
    assert windowed([])["value"] is None and windowed([])["unstable"] is True
    assert windowed([100, 104, 96])["unstable"] is False


def test_a_phase_places_times_in_its_windows():
    p = Phase(10.0, 5.0, 3)
    assert [p.window_of(t) for t in (9.99, 10.0, 14.99, 15.0, 24.99, 25.0)] == [None, 0, 0, 1, 2, None]
    assert p.end == 25.0


def test_wrk_output_is_parsed_and_its_absence_is_an_error():
    out = (
        "Running 2s test\nFLOOD "
        '{"counts": {"1700000000:202": 5, "1700000000:429": 2, "1700000001:202": 3}, "requests": 10, '
        '"errors": {"connect": 0, "read": 1, "write": 0, "timeout": 0}}\n'
    )
    parsed = parse_wrk_output(out)
    assert parsed["counts"] == {1700000000: {202: 5, 429: 2}, 1700000001: {202: 3}}
    assert parsed["requests"] == 10 and parsed["errors"]["read"] == 1
    with pytest.raises(BenchError, match="no counts"):
        parse_wrk_output("Running 2s test\n")


def test_the_script_takes_only_a_plain_token_and_a_text_lua_can_hold():
    assert 'Bearer abc_DEF-1"' in wrk_script("abc_DEF-1")
    with pytest.raises(BenchError, match="token"):
        wrk_script("abc'..os.exit()..'")
    with pytest.raises(BenchError, match="Lua"):
        wrk_script("abc", text="it's")


def test_the_flood_text_holds_no_listed_word():
    # a strike would block the flooder: the flood must measure the limit, not the moderation
    from pipelines.moderation import word_key
    from pipelines.wordlists import load_word_lists

    keys = {word_key(w) for w in load_word_lists().profane}
    for word in re.findall(r"\w+", flood.FLOOD_TEXT):
        key = word_key(word)
        assert not {key, key.removesuffix("s"), key.removesuffix("es")} & keys, word


@pytest.fixture
def limited_api():
    """An in-process stand-in for POST /messages: every third request answers 429 with Retry-After."""
    numbers = itertools.count()
    requests: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests.append((self.headers["Authorization"], body))
            status = 429 if next(numbers) % 3 == 0 else 202
            out = b'{"error": "too many messages", "code": "rate_limited"}' if status == 429 else b'{"id": "m"}'
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "5")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()
    server.server_close()


def test_the_flooder_counts_202s_and_429s_and_keeps_flooding_through_429s(limited_api):
    url, requests = limited_api
    result = Flooder(url, "token-1", seconds=2, connections=3).result()
    counted = {s: sum(c.get(s, 0) for c in result["counts"].values()) for s in (202, 429)}
    assert counted[429] > 1 and counted[202] > counted[429]  # it went on after the first refusal
    assert counted[202] + counted[429] == result["requests"]
    # the server saw those, and at most one more in flight on each connection when wrk stopped
    assert result["requests"] <= len(requests) <= result["requests"] + 3
    assert {auth for auth, _ in requests} == {"Bearer token-1"}
    # each copy numbered per thread (the repeated-message rule would withhold copies of one text)
    texts = [json.loads(body)["data"] for _, body in requests]
    assert all(re.fullmatch(re.escape(flood.FLOOD_TEXT) + r" #\d+\.\d+", t) for t in texts), texts[:3]
    assert len(set(texts)) == len(texts)


def test_run_flags_the_floods_figures_against_their_targets():
    flat = run.derived({"flood_normal_p99_ratio": 1.8, "flood_normal_p99_ms": 60.0, "flood_share": 0.99})
    rows = {r["figure"]: r for r in run.target_rows(flat)}
    assert rows["flood_normal_p99_ratio"]["met"] is False and rows["flood_normal_p99_ms"]["met"] is True
    shaky = {"flooder": {"accepted_per_s": windowed([100, 150, 120])}}
    assert run.unstable_figures({"flood": shaky}) == ["flood.flooder.accepted_per_s"]
    assert any(h.module == "bench.flood" and run.hook_module(h) is flood for h in run.HOOKS)


@pytest.mark.integration
def test_a_short_flood_against_the_stack_counts_every_message_once_and_the_limit_holds_the_flooder(
    chat_stack, tmp_path, capsys
):
    # through an API host with the product's rate limit, as make bench floods (the test stack runs without it)
    with flood.limited_api(chat_stack, tmp_path) as url:
        limit = requests.get(f"{url}/chat/settings", timeout=10).json()["rate_limit"]
        code = flood.main(
            ["--api", url, "--users", "5", "--warmup", "1", "--window", "5", "--windows", "2"] + ["--connections", "2"]
        )
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and "flooder's share of the feed" in out
    checks, feed = result["checks"], result["feed"]
    assert checks["normal_accepted"] > 0 and checks["normal_seen_once"] == checks["normal_accepted"]
    assert checks["normal_missing"] == 0 and checks["repeated"] == 0
    assert checks["shares_add_up"] and feed["flooder"] + feed["users"] + feed["others"] == feed["messages"]
    assert feed["flooder"] > 0 and feed["users"] > 0
    # the reader never gets more of the flooder's than were accepted (wrk leaves one in flight per connection)
    assert checks["flooder_seen_total"] <= checks["flooder_accepted_total"] + 2
    f = result["flooder"]
    assert f["accepted"] == round(sum(f["accepted_per_s"]["windows"]) * 5)
    assert (
        result["calm"]["seen"] == result["calm"]["accepted"] and result["flood"]["seen"] == result["flood"]["accepted"]
    )
    # the limit: the flooder is refused, and gets at most the limit per window in each of the host's
    # processes (each counts its own posts at once, the others' from `chat`) over the flood's seconds
    assert limit == {"messages": 5, "window_s": 5.0} and f["refused"] > 0
    flood_s = 1 + 2 * 5 + 2  # warm-up, the windows, wrk's start and stop
    processes = os.cpu_count()
    assert checks["flooder_accepted_total"] <= processes * limit["messages"] * (flood_s // limit["window_s"] + 1)
    # the normal users, one message every 2-4 s, stay within it
    assert result["calm"]["errors"] == {} and result["flood"]["errors"] == {}
