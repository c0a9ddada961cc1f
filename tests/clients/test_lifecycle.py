"""Lifecycle policies with the real aws CLI: validation, previews, and
enforcement by the background job and by `berth lifecycle`."""

import hashlib
import json
import time
import urllib.request

import pytest

from conftest import ACCOUNT, Berth, aws, basic_auth, failure, ok, root_env

KEEP_800 = {"rules": [{"rulePriority": 10, "description": "Expire old images",
                       "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 800},
                       "action": {"type": "expire"}}]}


@pytest.fixture
def berth():
    """berth applying lifecycle policies every second."""
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, "BERTH_LIFECYCLE_INTERVAL": "1s", **root_env()})
    yield server
    server.stop()


@pytest.fixture
def idle_berth():
    """berth that applies lifecycle policies only when told (`berth lifecycle`)."""
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, "BERTH_LIFECYCLE_INTERVAL": "24h", **root_env()})
    # The first enforcement runs at start-up (within a worker's 1 s poll):
    # let it pass before the test sets a policy, so only `berth lifecycle`
    # applies one.
    time.sleep(2)
    yield server
    server.stop()


def request(berth, method, path, data=None, headers=None):
    req = urllib.request.Request(f"{berth.url}{path}", data=data, method=method,
                                 headers={"Authorization": basic_auth(), **(headers or {})})
    with urllib.request.urlopen(req) as r:
        return r.status, r.headers, r.read()


def push(berth, repo, seed, tag=None):
    """Pushes a one-layer image, tagged or (by digest) untagged; returns its digest."""
    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        request(berth, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        return {"digest": digest, "size": len(data)}

    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **blob(json.dumps({"seed": seed}).encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(f"layer {seed}".encode())}],
    }).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    request(berth, "PUT", f"/v2/{repo}/manifests/{tag or digest}", manifest,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    return digest


def images(berth, repo):
    details = ok(aws(berth, "ecr", "describe-images", "--repository-name", repo))["imageDetails"]
    return {d["imageDigest"]: sorted(d.get("imageTags", [])) for d in details}


def age(berth, repo, digest, days):
    """Moves an image's push time `days` into the past (the injected clock)."""
    berth.sql(
        f"UPDATE manifests SET pushed_at = pushed_at - {days * 86_400_000} "
        f"WHERE digest = '{digest}' AND repository_id = (SELECT id FROM repositories WHERE name = '{repo}')"
    )


def wait_for(predicate, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("timed out")


def put_policy(berth, repo, policy):
    return aws(berth, "ecr", "put-lifecycle-policy", "--repository-name", repo,
               "--lifecycle-policy-text", json.dumps(policy))


def test_keep_the_newest_images(berth):
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "web"))
    pushed = [push(berth, "web", f"web-{i}", tag=f"v{i}") for i in range(10)]
    for i, digest in enumerate(pushed):
        age(berth, "web", digest, 10 - i)  # distinct push times, oldest first

    failure(aws(berth, "ecr", "get-lifecycle-policy", "--repository-name", "web"),
            "LifecyclePolicyNotFoundException")
    stored = ok(put_policy(berth, "web", KEEP_800))
    assert json.loads(stored["lifecyclePolicyText"]) == KEEP_800
    time.sleep(2.5)
    assert len(images(berth, "web")) == 10  # 10 images are fewer than 800

    keep_3 = json.loads(json.dumps(KEEP_800))
    keep_3["rules"][0]["selection"]["countNumber"] = 3
    ok(put_policy(berth, "web", keep_3))
    wait_for(lambda: len(images(berth, "web")) == 3)
    assert set(images(berth, "web")) == set(pushed[-3:])
    got = ok(aws(berth, "ecr", "get-lifecycle-policy", "--repository-name", "web"))
    assert got["registryId"] == ACCOUNT and "lastEvaluatedAt" in got

    deleted = ok(aws(berth, "ecr", "delete-lifecycle-policy", "--repository-name", "web"))
    assert json.loads(deleted["lifecyclePolicyText"]) == keep_3
    failure(aws(berth, "ecr", "delete-lifecycle-policy", "--repository-name", "web"),
            "LifecyclePolicyNotFoundException")


def test_preview_and_enforcement_agree_image_for_image(idle_berth):
    berth = idle_berth
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "svc"))
    digests = {}
    for name, tag in [("prod-1", "prod-1"), ("prod-2", "prod-2"), ("prod-3", "prod-3"),
                      ("pr-11", "pr-11"), ("pr-12", "pr-12"), ("feature-a-1", "feature-a-1"),
                      ("feature-b-1", "feature-b-1"), ("u1", None), ("u2", None), ("u3", None)]:
        digests[name] = push(berth, "svc", name, tag=tag)
    ages = {"prod-1": 30, "prod-2": 20, "prod-3": 1, "pr-11": 9, "pr-12": 2, "feature-a-1": 40,
            "feature-b-1": 3, "u1": 15, "u2": 8, "u3": 1}
    for name, days in ages.items():
        age(berth, "svc", digests[name], days)

    policy = {"rules": [
        {"rulePriority": 1, "description": "keep two prod",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan",
                       "countNumber": 2}, "action": {"type": "expire"}},
        {"rulePriority": 2, "description": "pull requests live a week",
         "selection": {"tagStatus": "tagged", "tagPatternList": ["pr-*"], "countType": "sinceImagePushed",
                       "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}},
        {"rulePriority": 3, "description": "untagged live a week",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": 7}, "action": {"type": "expire"}},
        {"rulePriority": 4, "description": "everything else: the newest",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}},
    ]}
    ok(put_policy(berth, "svc", policy))
    failure(aws(berth, "ecr", "get-lifecycle-policy-preview", "--repository-name", "svc"),
            "LifecyclePolicyPreviewNotFoundException")
    started = ok(aws(berth, "ecr", "start-lifecycle-policy-preview", "--repository-name", "svc"))
    assert started["status"] == "IN_PROGRESS"
    code, _, err = aws(berth, "ecr", "wait", "lifecycle-policy-preview-complete", "--repository-name", "svc")
    assert code == 0, err
    preview = ok(aws(berth, "ecr", "get-lifecycle-policy-preview", "--repository-name", "svc"))
    assert preview["status"] == "COMPLETE"
    expected = {
        digests["prod-1"]: 1,       # third-newest prod
        digests["pr-11"]: 2,        # 9 days old
        digests["u1"]: 3, digests["u2"]: 3,
        # Rules 1-3 took every prod, pr and untagged image, expired or not;
        # of the rest only the newest stays.
        digests["feature-a-1"]: 4,
    }
    assert {r["imageDigest"]: r["appliedRulePriority"] for r in preview["previewResults"]} == expected
    assert preview["summary"]["expiringImageTotalCount"] == len(expected)
    assert all(r["action"]["type"] == "EXPIRE" for r in preview["previewResults"])

    # Paged, as the CLI pages it.
    first = ok(aws(berth, "ecr", "get-lifecycle-policy-preview", "--repository-name", "svc",
                   "--max-results", "2", "--no-paginate"))
    assert len(first["previewResults"]) == 2 and "nextToken" in first

    before = images(berth, "svc")
    run = subprocess_run(berth, "lifecycle", "--repository", "svc", "--dry-run")
    assert f"{len(expected)} image(s) would expire" in run
    assert images(berth, "svc") == before
    run = subprocess_run(berth, "lifecycle")
    assert f"{len(expected)} image(s) expired" in run
    after = images(berth, "svc")
    assert set(before) - set(after) == set(expected)

    # Each expiry is recorded as an ECR Image Action naming its rule; each
    # push as a PUSH.
    pushes = subprocess_run(berth, "events", "--limit", "1000", "--action", "PUSH").splitlines()
    assert len(pushes) >= len(expected)
    events = [json.loads(line) for line in subprocess_run(berth, "events", "--limit", "1000", "--action", "DELETE").splitlines()]
    assert {e["detail"]["image-digest"]: e["detail"]["lifecycle-rule-priority"] for e in events} == expected
    for event in events:
        assert event["source"] == "aws.ecr" and event["detail-type"] == "ECR Image Action"
        assert event["account"] == ACCOUNT and event["detail"]["action-type"] == "DELETE"
        assert event["detail"]["repository-name"] == "svc" and event["detail"]["result"] == "SUCCESS"


def subprocess_run(berth, *args):
    import subprocess

    from conftest import BINARY

    result = subprocess.run([BINARY, *args, *berth.install_args], capture_output=True, text=True,
                            env=berth.env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_invalid_policies_are_refused_with_reasons(idle_berth):
    berth = idle_berth
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "app"))

    def rule(priority=1, **selection):
        base = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}
        base.update(selection)
        return {"rulePriority": priority, "description": "a rule for the test " * 2,
                "selection": base, "action": {"type": "expire"}}

    cases = [
        ({"rules": [rule(), rule()]}, "rulePriority must be unique"),
        ({"rules": [rule(1, tagStatus="untagged"), rule(2, tagStatus="untagged")]}, "untagged"),
        ({"rules": [rule(1), rule(2, tagStatus="tagged", tagPrefixList=["v"])]}, "any"),
        ({"rules": [rule(1, tagStatus="tagged")]}, "tagPrefixList"),
        ({"rules": [rule(1, tagStatus="untagged", tagPrefixList=["v"])]}, "tagPrefixList"),
        ({"rules": [rule(1, tagStatus="tagged", tagPatternList=["a*b*c*d*e*f"])]}, "wildcard"),
        ({"rules": [rule(1, countNumber=0)]}, "countNumber"),
        ({"rules": [rule(1, countType="sinceImagePushed", countNumber=3)]}, "countUnit"),
        ({"rules": [rule(1, countUnit="days")]}, "countUnit"),
        ({"rules": [rule(1, countType="sinceImagePushed", countUnit="hours", countNumber=3)]}, "days"),
        ({"rules": [dict(rule(1), action={"type": "delete"})]}, "expire"),
        ({"rules": [dict(rule(1), extra=1)]}, "not valid"),
        ({"rules": []}, "between"),
    ]
    for policy, reason in cases:
        # Padded to the model's 100-character minimum, so the server judges it.
        text = json.dumps(policy).ljust(100)
        err = failure(aws(berth, "ecr", "put-lifecycle-policy", "--repository-name", "app",
                          "--lifecycle-policy-text", text), "InvalidParameterException")
        assert reason in err, (policy, err)
    err = failure(put_policy(berth, "missing", KEEP_800), "RepositoryNotFoundException")
    assert "missing" in err
    failure(aws(berth, "ecr", "start-lifecycle-policy-preview", "--repository-name", "app"),
            "LifecyclePolicyNotFoundException")
    failure(aws(berth, "ecr", "start-lifecycle-policy-preview", "--repository-name", "app",
                "--lifecycle-policy-text", json.dumps({"rules": [rule(1, countNumber=-1)]})),
            "InvalidParameterException")
