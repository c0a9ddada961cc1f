"""The hostile-input corpus (tests/hostile/corpus): every case against one berth.

Each case is one request with the exact answer the OCI distribution spec or AWS
prescribes (status and error code). Whatever the case, berth must never answer
5xx, never hang (a hard timeout per request), never die, and never leave state
behind (the catalog, the fixture's tags, repositories, policies and IAM entities
are compared with the fixture's after every case). After every area, the
fixture's image `hostile/base:v1` must still pull byte for byte.

Cases marked `known_bug` are berth bugs still open: they are xfailed strictly, so
a fix turns them into failures until the mark is removed. See tests/hostile/README.md.
"""

import base64
import datetime
import glob
import hashlib
import json
import os
import re
import socket
import time
import urllib.parse
from unittest import mock

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import requests

from conftest import ACCOUNT, REGION, ROOT, ROOT_KEY, Berth, root_env

CORPUS = os.path.join(ROOT, "tests", "hostile", "corpus")
TIMEOUT = 20  # seconds for any one request: longer is a hang
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

CASE_KEYS = {"id", "why", "request", "auth", "setup", "expect", "known_bug", "sign", "tamper"}
REQUEST_KEYS = {"method", "path", "headers", "body", "body_b64", "json", "form", "gen", "target", "raw",
                "tamper_body"}
EXPECT_KEYS = {"status", "code", "upload_range", "header", "absent", "changes"}
AUTHS = {"basic-root", "sigv4-root", "none"}
SETUPS = {None, "upload", "upload-partial", "ecr-upload", "ecr-upload-part"}


# ---------------------------------------------------------------- the corpus

def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_corpus():
    """All cases, in file order, each with its `area` (the file's name)."""
    cases = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.json")) + glob.glob(os.path.join(CORPUS, "*.jsonl"))):
        area = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as f:
            if path.endswith(".jsonl"):
                data = {"cases": [json.loads(line) for line in f if line.strip()]}
            else:
                data = json.load(f)
        if isinstance(data, list):
            data = {"cases": data}
        defaults = data.get("defaults", {})
        for raw in data["cases"]:
            case = merge(defaults, raw)
            case["area"] = area
            cases.append(case)
    return cases


def merge(defaults, case):
    out = dict(defaults)
    for key, value in case.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def check_shape(case):
    """A corpus case is well formed (a typo must not make a case pass vacuously)."""
    assert set(case) - {"area"} <= CASE_KEYS, f"{case['id']}: unknown keys {set(case) - CASE_KEYS - {'area'}}"
    assert case.get("why"), f"{case['id']}: no why"
    assert case.get("auth") in AUTHS or isinstance(case.get("auth"), dict), f"{case['id']}: auth"
    assert case.get("setup") in SETUPS, f"{case['id']}: setup {case.get('setup')}"
    assert set(case["request"]) <= REQUEST_KEYS, f"{case['id']}: request keys {set(case['request'])}"
    assert set(case["expect"]) <= EXPECT_KEYS, f"{case['id']}: expect keys {set(case['expect'])}"
    assert isinstance(case["expect"]["status"], int), case["id"]
    if case["expect"]["status"] >= 400 and case["request"].get("method") != "HEAD":
        assert "code" in case["expect"], f"{case['id']}: an error case names its code (or null)"


CASES = load_corpus()
AREAS = list(dict.fromkeys(c["area"] for c in CASES))


def expand_runs(text: str) -> str:
    """`{c*N}` stands for the character c N times (N >= 64): keeps long names,
    ids, headers and padded documents small in the corpus files."""
    return re.sub(r"\{(.)\*(\d{2,})\}", lambda m: m.group(1) * int(m.group(2)), text, flags=re.S)


def generate(spec, subst) -> bytes:
    """A body from a small generator: a string, {"repeat": s, "times": n}, {"concat": [...]}."""
    if isinstance(spec, str):
        return subst(spec).encode()
    if "repeat" in spec:
        return subst(spec["repeat"]).encode() * spec["times"]
    if "concat" in spec:
        return b"".join(generate(part, subst) for part in spec["concat"])
    raise AssertionError(f"unknown generator {spec}")


# ---------------------------------------------------------------- talking to berth

class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def code(self):
        """The error class: OCI errors[0].code, ECR __type, or the Query XML <Code>."""
        text = self.body.decode("utf-8", "replace")
        if text.lstrip().startswith("<"):
            m = re.search(r"<Code>([^<]*)</Code>", text)
            return m.group(1) if m else None
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"]:
            return doc["errors"][0].get("code")
        if isinstance(doc, dict) and "__type" in doc:
            return doc["__type"].rsplit("#", 1)[-1].split(":", 1)[0]
        return None

    def __repr__(self):
        return f"{self.status} {self.headers} {self.body[:600]!r}"


class Hostile:
    """One berth, its fixture state, and a connection pool."""

    def __init__(self, server):
        self.server = server
        self.http = harness_session()
        self.cases = requests.Session()  # no retries: a dropped answer to a case is a failure
        self.values = {"account": ACCOUNT, "region": REGION, "host": server.host,
                       "missing_digest": sha256(b"hostile: never pushed"),
                       "root_key": ROOT_KEY[0]}

    # -- plumbing
    def basic(self):
        return "Basic " + base64.b64encode(f"{ROOT_KEY[0]}:{ROOT_KEY[1]}".encode()).decode()

    def oci(self, method, path, body=b"", headers=None):
        h = {"Authorization": self.basic(), **(headers or {})}
        r = self.http.request(method, self.server.url + path, data=body, headers=h, timeout=TIMEOUT,
                              allow_redirects=False)
        return r

    def signed(self, method, path, body, headers, service, sign=None, tamper=None):
        sign = sign or {}
        key = sign.get("key", ROOT_KEY)
        key = (key[0], sign.get("secret", key[1]))
        region = sign.get("region", REGION)
        request = botocore.awsrequest.AWSRequest(method=method, url=self.server.url + path, data=body,
                                                 headers=dict(headers))
        signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(*key), sign.get("service", service), region)
        if "date" in sign:
            when = datetime.datetime.strptime(sign["date"], "%Y%m%dT%H%M%SZ")
        else:
            when = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + \
                datetime.timedelta(seconds=sign.get("skew_seconds", 0))
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
        prepared = request.prepare()
        out = dict(prepared.headers)
        for t in tamper or []:
            name = next((k for k in out if k.lower() == t["header"].lower()), t["header"])
            if t.get("remove"):
                out.pop(name, None)
            elif t.get("flip_last"):
                out[name] = out[name][:-1] + ("0" if out[name][-1] != "0" else "1")
            elif "shift_seconds" in t:
                moved = datetime.datetime.strptime(out[name], "%Y%m%dT%H%M%SZ") + datetime.timedelta(seconds=t["shift_seconds"])
                out[name] = moved.strftime("%Y%m%dT%H%M%SZ")
            elif "replace" in t:
                old, new = t["replace"]
                assert old in out[name], f"tamper: {old!r} not in {out[name]!r}"
                out[name] = out[name].replace(old, new, t.get("count", 1))
            elif "regex" in t:
                out[name] = re.sub(t["regex"][0], t["regex"][1], out[name])
            else:
                out[name] = self.subst(t["value"])
        return out

    def ecr(self, op, payload):
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{ECR_TARGET}.{op}"}
        body = json.dumps(payload).encode()
        h = self.signed("POST", "/", body, headers, "ecr")
        r = self.http.post(self.server.url + "/", data=body, headers=h, timeout=TIMEOUT)
        return r.status_code, r.json()

    def query(self, service, params):
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        body = urllib.parse.urlencode({"Version": "2010-05-08" if service == "iam" else "2011-06-15",
                                       **params}).encode()
        h = self.signed("POST", "/", body, headers, service)
        r = self.http.post(self.server.url + "/", data=body, headers=h, timeout=TIMEOUT)
        return r.status_code, r.text

    def iam(self, action, **params):
        status, text = self.query("iam", {"Action": action, **params})
        assert status == 200, f"{action}: {status} {text}"
        return text

    def subst(self, text: str) -> str:
        def one(m):
            return str(self.values[m.group(1)]) if m.group(1) in self.values else m.group(0)
        return re.sub(r"\{([a-z][a-z0-9_]*)\}", one, expand_runs(text))

    # -- the fixture
    def push_blob(self, repo, data):
        digest = sha256(data)
        r = self.oci("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data,
                     {"Content-Type": "application/octet-stream"})
        assert r.status_code in (201, 202), r.text
        if r.status_code == 202:
            loc = r.headers["Location"]
            loc = loc if loc.startswith("/") else urllib.parse.urlsplit(loc).path + "?" + urllib.parse.urlsplit(loc).query
            r = self.oci("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={digest}", data)
            assert r.status_code == 201, r.text
        return digest

    def open_upload(self, repo):
        r = self.oci("POST", f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        parts = urllib.parse.urlsplit(loc)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return path, parts.path.rstrip("/").rsplit("/", 1)[1]

    def prepare(self):
        for name, extra in [("hostile/base", {}), ("hostile/other", {}),
                            ("hostile/immutable", {"imageTagMutability": "IMMUTABLE"})]:
            status, body = self.ecr("CreateRepository", {"repositoryName": name, **extra})
            assert status == 200, body
        self.config = json.dumps({"architecture": "amd64", "os": "linux",
                                  "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        self.layer = b"hostile corpus layer\n" * 50
        for repo in ("hostile/base", "hostile/immutable", "hostile/other"):
            self.push_blob(repo, self.config)
            self.push_blob(repo, self.layer)
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(self.config), "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(self.layer), "size": len(self.layer)}],
        }, separators=(",", ":")).encode()
        for repo in ("hostile/base", "hostile/immutable"):
            r = self.oci("PUT", f"/v2/{repo}/manifests/v1", self.manifest, {"Content-Type": OCI_MANIFEST})
            assert r.status_code == 201, r.text
        # An index over v1, tagged `multi` in hostile/base.
        self.index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256(self.manifest), "size": len(self.manifest),
             "platform": {"architecture": "amd64", "os": "linux"}}]}, separators=(",", ":")).encode()
        r = self.oci("PUT", "/v2/hostile/base/manifests/multi", self.index, {"Content-Type": OCI_INDEX})
        assert r.status_code == 201, r.text
        self.upload_other_path, upload_other = self.open_upload("hostile/other")
        # A blob only hostile/other holds; an upload cancelled and one finished.
        other_blob = self.push_blob("hostile/other", b"only in hostile/other")
        cancelled_path, upload_cancelled = self.open_upload("hostile/base")
        assert self.oci("DELETE", cancelled_path).status_code == 204
        finished_path, upload_finished = self.open_upload("hostile/base")
        r = self.oci("PUT", f"{finished_path}{'&' if '?' in finished_path else '?'}digest={sha256(self.layer)}", self.layer)
        assert r.status_code == 201, r.text
        # An ECR layer upload open in hostile/other.
        status, body = self.ecr("InitiateLayerUpload", {"repositoryName": "hostile/other"})
        assert status == 200, body
        ecr_upload_other = body["uploadId"]
        # Policies the corpus tries to overwrite with bad ones.
        self.repo_policy = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "pull", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": ["ecr:BatchGetImage"]}]})
        status, body = self.ecr("SetRepositoryPolicy", {"repositoryName": "hostile/base", "policyText": self.repo_policy})
        assert status == 200, body
        self.lifecycle = json.dumps({"rules": [{"rulePriority": 1, "selection": {
            "tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 3650},
            "action": {"type": "expire"}}]})
        status, body = self.ecr("PutLifecyclePolicy", {"repositoryName": "hostile/base",
                                                       "lifecyclePolicyText": self.lifecycle})
        assert status == 200, body
        # IAM: a user, a policy with the maximum of five versions, a user with two keys
        # and one with ten attached policies (the limits the corpus pushes past).
        doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:DescribeRepositories", "Resource": "*"}]})
        self.iam("CreateUser", UserName="hostile-user")
        self.iam("CreateUser", UserName="hostile-keys")
        self.iam("CreateAccessKey", UserName="hostile-keys")
        self.iam("CreateAccessKey", UserName="hostile-keys")
        self.iam("CreatePolicy", PolicyName="hostile-full", PolicyDocument=doc)
        for _ in range(4):
            self.iam("CreatePolicyVersion", PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/hostile-full", PolicyDocument=doc)
        self.iam("CreateUser", UserName="hostile-attached")
        for i in range(10):
            self.iam("CreatePolicy", PolicyName=f"hostile-p{i}", PolicyDocument=doc)
            self.iam("AttachUserPolicy", UserName="hostile-attached", PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/hostile-p{i}")
        self.iam("CreatePolicy", PolicyName="hostile-spare", PolicyDocument=doc)
        self.iam("CreateRole", RoleName="hostile-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                    "Action": "sts:AssumeRole"}]}))
        self.values.update({
            "base_digest": sha256(self.manifest), "base_size": len(self.manifest),
            "base_manifest": self.manifest.decode(), "base_manifest_json": json.dumps(self.manifest.decode())[1:-1],
            "index_digest": sha256(self.index), "index_size": len(self.index),
            "config_digest": sha256(self.config), "config_size": len(self.config),
            "layer_digest": sha256(self.layer), "layer_size": len(self.layer),
            "layer_hex": sha256(self.layer).split(":")[1],
            "upload_other": upload_other, "upload_other_path": self.upload_other_path,
            "other_blob": other_blob, "upload_cancelled": upload_cancelled, "upload_finished": upload_finished,
            "ecr_upload_other": ecr_upload_other,
        })
        self.baseline = {}
        for scope in ("oci", "aws"):
            self.baseline[scope] = self.snapshot(scope)

    def snapshot(self, scope):
        """What no refused request may change."""
        state = {}
        r = self.oci("GET", "/v2/_catalog?n=1000")
        state["catalog"] = r.json().get("repositories")
        for repo in ("hostile/base", "hostile/other", "hostile/immutable"):
            state[f"tags {repo}"] = self.oci("GET", f"/v2/{repo}/tags/list").json().get("tags")
        r = self.oci("HEAD", "/v2/hostile/base/manifests/v1", headers={"Accept": OCI_MANIFEST})
        state["v1"] = r.headers.get("Docker-Content-Digest")
        r = self.oci("GET", self.upload_other_path)
        state["upload in hostile/other"] = (r.status_code, r.headers.get("Range"))
        if scope == "aws":
            _, body = self.ecr("DescribeRepositories", {})
            state["repositories"] = sorted(
                (r["repositoryName"], r["imageTagMutability"], json.dumps(r.get("imageScanningConfiguration")))
                for r in body["repositories"])
            for repo in ("hostile/base", "hostile/other"):
                _, body = self.ecr("GetRepositoryPolicy", {"repositoryName": repo})
                state[f"policy {repo}"] = body.get("policyText", body.get("__type"))
                _, body = self.ecr("GetLifecyclePolicy", {"repositoryName": repo})
                state[f"lifecycle {repo}"] = body.get("lifecyclePolicyText", body.get("__type"))
            _, text = self.query("iam", {"Action": "ListUsers"})
            state["users"] = sorted(re.findall(r"<UserName>([^<]*)</UserName>", text))
            _, text = self.query("iam", {"Action": "ListPolicies", "Scope": "Local"})
            state["policies"] = sorted(re.findall(r"<PolicyName>([^<]*)</PolicyName>", text))
            _, text = self.query("iam", {"Action": "ListPolicyVersions",
                                         "PolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/hostile-full"})
            state["hostile-full versions"] = sorted(re.findall(r"<VersionId>([^<]*)</VersionId>", text))
            _, text = self.query("iam", {"Action": "ListAccessKeys", "UserName": "hostile-keys"})
            state["hostile-keys keys"] = len(re.findall(r"<AccessKeyId>", text))
            _, text = self.query("iam", {"Action": "ListAttachedUserPolicies", "UserName": "hostile-user"})
            state["hostile-user policies"] = sorted(re.findall(r"<PolicyName>([^<]*)</PolicyName>", text))
            _, text = self.query("iam", {"Action": "ListRoles"})
            state["roles"] = sorted(re.findall(r"<RoleName>([^<]*)</RoleName>", text))
        return state

    def alive(self):
        if self.server.proc.poll() is not None:
            code = self.server.proc.returncode
            self.server.start()  # for the cases after this one
            self.http = harness_session()
            return f"berth died (exit {code}) and was restarted"
        return None

    # -- one case
    def send(self, case, extra_values):
        req = case["request"]
        values = dict(extra_values)
        saved = dict(self.values)
        self.values.update(values)
        try:
            method = req.get("method", "POST")
            headers = {k: self.subst(v) for k, v in req.get("headers", {}).items()}
            if "target" in req:
                headers.setdefault("Content-Type", "application/x-amz-json-1.1")
                headers["X-Amz-Target"] = f"{ECR_TARGET}.{req['target']}" if "." not in req["target"] else req["target"]
            if "body" in req:
                body = self.subst(req["body"]).encode()
            elif "body_b64" in req:
                body = base64.b64decode(req["body_b64"])
            elif "json" in req:
                body = self.subst(json.dumps(req["json"], separators=(",", ":"))).encode()
            elif "form" in req:
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
                body = urllib.parse.urlencode({k: self.subst(v) if isinstance(v, str) else v
                                               for k, v in req["form"].items()}).encode()
            elif "gen" in req:
                body = generate(req["gen"], self.subst)
            else:
                body = b""
            self.values["self_digest"] = sha256(body)
            path = self.subst(req["path"])
            auth = case["auth"]
            if auth == "basic-root":
                headers["Authorization"] = self.basic()
            elif auth == "sigv4-root":
                service = "ecr" if "X-Amz-Target" in headers else (case.get("sign", {}).get("service") or "iam")
                if "form" in req and req["form"].get("Action") in ("GetCallerIdentity", "AssumeRole", "GetSessionToken"):
                    service = case.get("sign", {}).get("service", "sts")
                headers = self.signed(method, path, body, headers, service, case.get("sign"), case.get("tamper"))
                if "tamper_body" in req:
                    body = self.subst(req["tamper_body"]).encode()
            if req.get("raw"):
                return self.send_raw(method, path, headers, body, req["raw"])
            # One connection per case: an answer that closes it cannot break the next request.
            headers.setdefault("Connection", "close")
            r = self.cases.request(method, self.server.url + path, data=body, headers=headers, timeout=TIMEOUT,
                                   allow_redirects=False)
            return Answer(r.status_code, r.headers, r.content)
        finally:
            self.values = saved

    def send_raw(self, method, path, headers, body, raw):
        """One request on a socket of its own, for what HTTP libraries refuse to send:
        lying Content-Length, bodies cut short, odd framing."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.server.host}", "Connection: close"]
        names = {k.lower() for k in headers}
        for k, v in headers.items():
            lines.append(f"{k}: {v}")
        for extra in raw.get("headers", []):
            lines.append(extra)
        if "content-length" not in names and "transfer-encoding" not in names and not raw.get("no_length"):
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        host, port = self.server.host.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
            s.sendall(data)
            if raw.get("shutdown_write"):
                s.shutdown(socket.SHUT_WR)
            chunks = []
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                except socket.timeout:
                    raise AssertionError("hang: no answer within the timeout") from None
                if not chunk:
                    break
                chunks.append(chunk)
                whole = b"".join(chunks)
                if b"\r\n\r\n" in whole:
                    head, rest = whole.split(b"\r\n\r\n", 1)
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                    if m and len(rest) >= int(m.group(1)):
                        break
            else:
                raise AssertionError("hang: no complete answer within the timeout")
        whole = b"".join(chunks)
        if not whole:
            return Answer(0, {}, b"")  # closed without an answer
        head, _, rest = whole.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        hdrs = dict(line.split(":", 1) for line in header_lines if ":" in line)
        hdrs = {k.strip(): v.strip() for k, v in hdrs.items()}
        if hdrs.get("transfer-encoding", hdrs.get("Transfer-Encoding", "")).lower() == "chunked":
            rest = dechunk(rest)
        return Answer(int(status_line.split()[1]), hdrs, rest)

    def pull_ok(self):
        """hostile/base:v1 pulls byte for byte: manifest, config and layer."""
        r = self.oci("GET", "/v2/hostile/base/manifests/v1", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
        assert r.status_code == 200, r.text
        assert r.content == self.manifest
        assert r.headers["Docker-Content-Digest"] == sha256(self.manifest)
        for blob in (self.config, self.layer):
            r = self.oci("GET", f"/v2/hostile/base/blobs/{sha256(blob)}")
            if r.status_code in (302, 307):
                r = self.http.get(urllib.parse.urljoin(self.server.url, r.headers["Location"]), timeout=TIMEOUT)
            assert r.status_code == 200, r.text
            assert r.content == blob
        r = self.oci("GET", f"/v2/hostile/base/manifests/{sha256(self.index)}", headers={"Accept": OCI_INDEX})
        assert r.status_code == 200 and r.content == self.index


def harness_session():
    """The runner's own requests (fixture, snapshots, pulls) on one pool, retried
    when berth has closed a pooled connection."""
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=3, connect=3, read=3, status=0, allowed_methods=None, raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


@pytest.fixture(scope="module")
def hostile():
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, "BERTH_REGION": REGION, **root_env()})
    try:
        h = Hostile(server)
        h.prepare()
        yield h
    finally:
        server.stop()


# ---------------------------------------------------------------- the tests

def items():
    out = []
    for area in AREAS:
        for case in (c for c in CASES if c["area"] == area):
            marks = [pytest.mark.xfail(strict=True, reason=case["known_bug"])] if case.get("known_bug") else []
            out.append(pytest.param(case, marks=marks, id=case["id"]))
        out.append(pytest.param({"after_area": area}, id=f"after-{area}"))
    return out


def test_corpus_is_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    for case in CASES:
        check_shape(case)
    assert len(CASES) >= 500, len(CASES)


@pytest.mark.parametrize("item", items())
def test_hostile(hostile, item):
    if "after_area" in item:
        # berth still serves a valid pull, and is still the same berth.
        assert hostile.alive() is None
        hostile.pull_ok()
        return
    case = item
    check_shape(case)
    scope = "aws" if case["area"].startswith(("ecr", "sigv4", "iam", "policies", "lifecycle")) else "oci"
    extra = {}
    if case.get("setup") in ("upload", "upload-partial"):
        path, uid = hostile.open_upload("hostile/base")
        if case["setup"] == "upload-partial":
            r = hostile.oci("PATCH", path, b"01234", {"Content-Type": "application/octet-stream",
                                                       "Content-Range": "0-4"})
            assert r.status_code == 202, r.text
        extra = {"upload": path, "upload_id": uid}
    if case.get("setup") in ("ecr-upload", "ecr-upload-part"):
        status, body = hostile.ecr("InitiateLayerUpload", {"repositoryName": "hostile/base"})
        assert status == 200, body
        extra = {"ecr_upload": body["uploadId"]}
        if case["setup"] == "ecr-upload-part":
            status, body = hostile.ecr("UploadLayerPart", {
                "repositoryName": "hostile/base", "uploadId": extra["ecr_upload"], "partFirstByte": 0, "partLastByte": 4,
                "layerPartBlob": base64.b64encode(b"01234").decode()})
            assert status == 200, body
    failures = []
    answer = None
    try:
        started = time.monotonic()
        try:
            answer = hostile.send(case, extra)
        except requests.exceptions.Timeout:
            answer = None
            failures.append(f"hang: no answer within {TIMEOUT} s")
        except requests.exceptions.ConnectionError as e:
            answer = None
            failures.append(f"connection failed: {e}")
        took = time.monotonic() - started
        died = hostile.alive()
        if died:
            failures.append(died)
        expect = case["expect"]
        if answer is not None:
            if answer.status >= 500 or answer.status == 0:
                failures.append(f"server error or no answer: {answer!r}")
            if answer.status != expect["status"]:
                failures.append(f"status {answer.status}, expected {expect['status']}: {answer!r}")
            if expect.get("code") is not None and case["request"].get("method") != "HEAD":
                got = answer.code()
                if got != expect["code"]:
                    failures.append(f"code {got!r}, expected {expect['code']!r}: {answer!r}")
            for name, value in expect.get("header", {}).items():
                got = answer.headers.get(name.lower())
                if value is None and got is not None or value is not None and (got or "").split(";")[0] != hostile.subst(value):
                    failures.append(f"header {name}: {answer.headers.get(name.lower())!r}, expected {value!r}")
        if "upload_range" in expect:
            r = hostile.oci("GET", extra["upload"])
            got = (r.status_code, r.headers.get("Range"))
            want = (204, expect["upload_range"]) if expect["upload_range"] else (404, None)
            if got != want:
                failures.append(f"upload afterwards: {got}, expected {want}")
        for path in expect.get("absent", []):
            r = hostile.oci("HEAD", hostile.subst(path))
            if r.status_code != 404:
                failures.append(f"HEAD {path} afterwards: {r.status_code}, expected 404 (left behind)")
        if took > TIMEOUT:
            failures.append(f"took {took:.1f} s")
        # Nothing partial: the fixture's state is what it was.
        after = hostile.snapshot(scope)
        before = hostile.baseline[scope]
        changed = {k: (before.get(k), after.get(k)) for k in after if before.get(k) != after.get(k)}
        allowed = set(expect.get("changes", []))
        if changed and set(changed) <= allowed and not failures:
            hostile.baseline[scope] = after
        elif changed:
            failures.append(f"state changed: {changed}")
            hostile.baseline[scope] = after
            hostile.baseline["oci" if scope == "aws" else "aws"] = hostile.snapshot("oci" if scope == "aws" else "aws")
    finally:
        if "upload" in extra:
            hostile.oci("DELETE", extra["upload"])
        if os.environ.get("BERTH_HOSTILE_LOG"):
            # What berth answered, case by case: for triage when adding cases.
            with open(os.environ["BERTH_HOSTILE_LOG"], "a") as log:
                log.write(json.dumps({"id": case["id"], "status": getattr(answer, "status", None),
                                      "code": answer.code() if answer is not None else None,
                                      "body": answer.body[:300].decode("utf-8", "replace") if answer is not None else None,
                                      "failures": [f[:300] for f in failures]}) + "\n")
    assert not failures, "\n".join(failures)
