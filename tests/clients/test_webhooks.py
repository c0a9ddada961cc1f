"""Events delivered to webhooks: a receiver in the test verifies every
signature (`Berth-Signature: t=…,v1=HMAC-SHA256("t.body")`) and sees every
event of a scripted session, in order, in EventBridge's shape; it fails for
a while and then receives the backlog with no gap. A receiver that never
answers turns events into dead letters, shown by the API, `berth events
--webhooks` and the metrics."""

import hashlib
import hmac
import http.server
import json
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import ACCOUNT, BINARY, REGION, ROOT_KEY, Berth, root_env
from test_scanning import layer, push, request

SECRET = "a-signing-secret-of-some-length"


def berth_call(berth, operation, body):
    """One of berth's own operations, SigV4-signed with botocore."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = json.dumps(body)
    req = AWSRequest(method="POST", url=berth.url + "/", data=data, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"BerthRegistry_20261130.{operation}"})
    SigV4Auth(Credentials(*ROOT_KEY), "ecr", REGION).add_auth(req)
    r = urllib.request.Request(req.url, data=data.encode(), headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class Receiver:
    def __init__(self):
        self.events, self.bad, self.failing = [], [], False
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                t, v1 = (kv.split("=", 1)[1] for kv in self.headers["Berth-Signature"].split(","))
                expected = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, v1) or abs(time.time() - int(t)) > 300:
                    receiver.bad.append(body)
                if receiver.failing:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                event = json.loads(body)
                assert self.headers["Berth-Event-Id"] == event["id"]
                receiver.events.append(event)
                self.send_response(204)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def berth():
    server = Berth(extra=["--create-on-push", "--webhook-backoff", "50ms"],
                   env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    yield server
    server.stop()


def test_a_receiver_sees_every_event_in_order_signed(berth):
    receiver = Receiver()
    try:
        status, created = berth_call(berth, "PutWebhook", {
            "name": "ci", "url": receiver.url, "signingSecret": SECRET,
            "detailTypes": ["ECR Image Action"], "repositoryFilter": "team/*"})
        assert status == 200 and "signingSecret" not in json.dumps(created), created
        status, again = berth_call(berth, "PutWebhook", {"name": "ci", "url": receiver.url, "signingSecret": SECRET})
        assert status == 400 and again["__type"] == "WebhookAlreadyExistsException"

        receiver.failing = True
        a1 = push(berth, "team/a", "v1", [layer({"a": b"1"})])
        b1 = push(berth, "team/b", "v1", [layer({"b": b"1"})])
        push(berth, "other/c", "v1", [layer({"c": b"1"})])
        time.sleep(1.5)
        assert receiver.events == []
        receiver.failing = False
        a2 = push(berth, "team/a", "v2", [layer({"a": b"2"})])
        request(berth, "DELETE", f"/v2/team/a/manifests/{a1}")
        deadline = time.time() + 60
        while len(receiver.events) < 4 and time.time() < deadline:
            time.sleep(0.2)
        got = [(e["detail"]["repository-name"], e["detail"]["action-type"], e["detail"]["image-digest"])
               for e in receiver.events]
        assert got == [("team/a", "PUSH", a1), ("team/b", "PUSH", b1), ("team/a", "PUSH", a2),
                       ("team/a", "DELETE", a1)], got
        assert receiver.bad == []
        ids = [int(e["id"].split("-")[1]) for e in receiver.events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        first = receiver.events[0]
        assert first["source"] == "aws.ecr" and first["account"] == ACCOUNT and first["region"] == REGION
        assert first["detail-type"] == "ECR Image Action" and first["detail"]["result"] == "SUCCESS"
        assert first["detail"]["image-tag"] == "v1"
    finally:
        receiver.stop()


def test_a_receiver_that_never_answers_gets_dead_letters(berth):
    status, _ = berth_call(berth, "PutWebhook", {"name": "gone", "url": "http://127.0.0.1:9/nothing",
                                                  "signingSecret": SECRET})
    assert status == 200
    push(berth, "team/x", "v1", [layer({"x": b"1"})])
    deadline = time.time() + 90
    while True:
        _, listed = berth_call(berth, "DescribeWebhooks", {})
        hook = listed["webhooks"][0]
        if hook["deadLetters"]:
            break
        assert time.time() < deadline, hook
        time.sleep(0.5)
    assert hook["name"] == "gone" and hook["deadLetters"][0]["eventId"].startswith("berth-")
    shown = subprocess.run([BINARY, "events", *berth.install_args, "--webhooks"], capture_output=True,
                           text=True, env=berth.env, timeout=60)
    assert json.loads(shown.stdout.splitlines()[0])["deadLetters"], shown.stdout
    with urllib.request.urlopen(berth.url + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert "berth_webhook_dead_letters_total 1" in metrics
    status, _ = berth_call(berth, "DeleteWebhook", {"name": "gone"})
    assert status == 200
    status, missing = berth_call(berth, "DeleteWebhook", {"name": "gone"})
    assert status == 400 and missing["__type"] == "WebhookNotFoundException"
