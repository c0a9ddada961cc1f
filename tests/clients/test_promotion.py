"""The scan-gated promotion journey, with the real aws CLI and docker: a
contributor with 1-hour STS credentials that can push to one staging
repository only (and cannot list it) pushes with docker; the image is
scanned; a clean image appears in `approved/<user>:<tag>`, a vulnerable one
does not and the findings say why; the approved image leaves when its
lifetime ends. Also berth's promotion API (SigV4, `berth:` actions)."""

import json
import os
import subprocess
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from conftest import ACCOUNT, BINARY, REGION, ROOT_KEY, Berth, aws, client, failure, ok, root_env
from test_docker import docker, docker_env  # noqa: F401  (fixture)
from test_scanning import FIXTURES, layer, push, vulndb_import

CLEAN_STATUS = b"""Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2
"""

VULNERABLE_STATUS = CLEAN_STATUS.replace(b"deb12u2", b"deb12u1")
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


@pytest.fixture
def berth():
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, "BERTH_PROMOTION_INTERVAL": "1s", **root_env()})
    vulndb_import(server, os.path.join(FIXTURES, "osv"))
    yield server
    server.stop()


def build(env, workdir, name, status):
    context = os.path.join(workdir, name)
    os.makedirs(os.path.join(context, "dpkg"))
    with open(os.path.join(context, "dpkg", "status"), "wb") as f:
        f.write(status)
    with open(os.path.join(context, "os-release"), "wb") as f:
        f.write(OS_RELEASE)
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write(textwrap.dedent("""\
            FROM scratch
            COPY os-release /etc/os-release
            COPY dpkg/status /var/lib/dpkg/status
            CMD ["/app"]
        """))
    docker(env, "build", "-t", name, context)


def berth_api(berth, operation, body, key=ROOT_KEY, token=None):
    """Calls one of berth's own operations, SigV4-signed as the SDKs sign ECR's."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=berth.url + "/", data=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"BerthRegistry_20261130.{operation}",
    })
    SigV4Auth(Credentials(key[0], key[1], token), "ecr", REGION).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def image_tags(berth, repository):
    code, out, _ = aws(berth, "ecr", "describe-images", "--repository-name", repository)
    if code != 0:
        return set()
    return {t for image in json.loads(out)["imageDetails"] for t in image.get("imageTags", [])}


def test_scan_gated_promotion_with_expiry(berth, workdir, docker_env):  # noqa: F811
    registry = berth.host
    # The operator: scan on push in staging, promote what has no CRITICAL finding.
    ok(aws(berth, "ecr", "put-registry-scanning-configuration", "--scan-type", "BASIC", "--rules",
           json.dumps([{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "staging/*", "filterType": "WILDCARD"}]}])))
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "staging/alice"))
    status, out = berth_api(berth, "PutPromotionRule", {
        "name": "staging", "sourceRepositoryFilter": "staging/*", "destination": "approved/{1}",
        "maxFindings": {"CRITICAL": 0}, "approvedLifetimeSeconds": 20})
    assert status == 200, out
    assert out["rule"]["destination"] == "approved/{1}" and out["rule"]["onExpiry"] == "DELETE"
    status, out = berth_api(berth, "PutPromotionRule", {
        "name": "bad", "sourceRepositoryFilter": "staging/*", "destination": "approved/{2}"})
    assert status == 400 and out["__type"] == "ValidationException"

    # A contributor whose 1-hour role session may push to staging/alice only.
    iam = client(berth, "iam")
    iam.create_user(UserName="alice")
    iam.put_user_policy(UserName="alice", PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    iam.create_role(RoleName="contributor", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                               "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}}]}))
    iam.put_role_policy(RoleName="contributor", PolicyName="push-staging", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
                                           "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"],
             "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/staging/alice"}]}))
    credentials = client(berth, "sts", (key["AccessKeyId"], key["SecretAccessKey"])).assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/contributor", RoleSessionName="alice",
        DurationSeconds=3600)["Credentials"]
    session = {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
               "AWS_SESSION_TOKEN": credentials["SessionToken"]}
    failure(aws(berth, "ecr", "list-images", "--repository-name", "staging/alice", env=session),
            "AccessDeniedException")
    password = ok_text(aws(berth, "ecr", "get-login-password", env=session))
    docker(docker_env, "login", "--username", "AWS", "--password-stdin", registry, stdin=password)

    build(docker_env, workdir, "tool-clean", CLEAN_STATUS)
    build(docker_env, workdir, "tool-vulnerable", VULNERABLE_STATUS)
    for local, tag in [("tool-clean", "v1"), ("tool-vulnerable", "v2")]:
        docker(docker_env, "tag", local, f"{registry}/staging/alice:{tag}")
        docker(docker_env, "push", f"{registry}/staging/alice:{tag}")
    # The session cannot read what it pushed, nor reach the approved repository.
    failure(aws(berth, "ecr", "describe-images", "--repository-name", "staging/alice", env=session),
            "AccessDeniedException")

    for tag in ["v1", "v2"]:
        ok(aws(berth, "ecr", "wait", "image-scan-complete", "--repository-name", "staging/alice",
               "--image-id", f"imageTag={tag}"))
    wait_for("the clean image in approved/alice", lambda: "v1" in image_tags(berth, "approved/alice"))
    assert "v2" not in image_tags(berth, "approved/alice")
    why = ok(aws(berth, "ecr", "describe-image-scan-findings", "--repository-name", "staging/alice",
                 "--image-id", "imageTag=v2"))["imageScanFindings"]
    assert [(f["name"], f["severity"]) for f in why["findings"]] == [("CVE-2023-0001", "CRITICAL")]
    status, out = berth_api(berth, "DescribePromotions", {"repositoryName": "staging/alice"})
    assert status == 200, out
    decided = {tuple(p["imageTags"]): p for p in out["promotions"]}
    assert decided[("v1",)]["status"] == "APPROVED"
    assert decided[("v1",)]["destinationRepository"] == "approved/alice"
    assert decided[("v2",)]["status"] == "REJECTED"
    assert decided[("v2",)]["reason"] == "1 CRITICAL finding where at most 0 are allowed (CVE-2023-0001)"

    # Workflows pull the approved image (as root here).
    root_password = ok_text(aws(berth, "ecr", "get-login-password"))
    docker(docker_env, "login", "--username", "AWS", "--password-stdin", registry, stdin=root_password)
    docker(docker_env, "pull", f"{registry}/approved/alice:v1")

    # Its lifetime ends: it goes, with an event.
    wait_for("the approved image to expire", lambda: "v1" not in image_tags(berth, "approved/alice"), timeout=60)
    events = subprocess.run([BINARY, "events", *berth.install_args], capture_output=True, text=True,
                            env=berth.env, timeout=60).stdout.splitlines()
    actions = [json.loads(e)["detail"]["action"] for e in events if '"Berth Image Promotion"' in e]
    assert actions.count("APPROVED") == 1 and actions.count("REJECTED") == 1 and actions.count("EXPIRED") == 1

    # The contributor's session may not manage promotion rules.
    status, out = berth_api(berth, "DescribePromotionRules", {},
                            key=(credentials["AccessKeyId"], credentials["SecretAccessKey"]),
                            token=credentials["SessionToken"])
    assert status == 400 and out["__type"] == "AccessDeniedException"
    listed = subprocess.run([BINARY, "promotion", "list", *berth.install_args], capture_output=True,
                            text=True, env=berth.env, timeout=60)
    assert listed.returncode == 0 and "EXPIRED" in listed.stdout


def ok_text(result):
    code, out, err = result
    assert code == 0, err
    return out


def test_a_rescan_that_fails_revokes_and_untag_keeps_the_image(berth):
    """Continuously scanned staging: a new advisory fails an approved image,
    which is revoked (untagged from the destination, as its rule says)."""
    ok(aws(berth, "ecr", "put-registry-scanning-configuration", "--scan-type", "ENHANCED", "--rules",
           json.dumps([{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "team/*", "filterType": "WILDCARD"}]}])))
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "team/web"))
    result = subprocess.run([BINARY, "promotion", "put-rule", *berth.install_args, "--name", "team",
                             "--source", "team/*", "--destination", "released/{1}", "--max", "CRITICAL=0",
                             "--untag"], capture_output=True, text=True, env=berth.env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["onExpiry"] == "UNTAG"
    digest = push(berth, "team/web", "v1", [layer({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": CLEAN_STATUS})])
    wait_for("approval", lambda: "v1" in image_tags(berth, "released/web"))
    vulndb_import(berth, os.path.join(FIXTURES, "osv-revoke.json"))
    wait_for("revocation", lambda: "v1" not in image_tags(berth, "released/web"))
    # Untagged, not deleted: the image is still there by digest.
    images = ok(aws(berth, "ecr", "describe-images", "--repository-name", "released/web"))["imageDetails"]
    assert [i["imageDigest"] for i in images] == [digest]
    status, out = berth_api(berth, "DescribePromotions", {"repositoryName": "team/web"})
    assert out["promotions"][0]["status"] == "REVOKED"
    assert "CVE-2024-0009" in out["promotions"][0]["reason"]
