"""The archive storage class as ECR's model says: `UpdateImageStorageClass`
both ways, archived images listed only when asked (`imageStatus`), refused
to pulls through both doors and to scans, restored by the API or by pushing
them again, and moved by lifecycle `transition` rules."""

import json
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import basic_auth, client
from test_lifecycle import idle_berth, subprocess_run  # noqa: F401 (a fixture)
from test_scanning import layer, push

OCI = "application/vnd.oci.image.manifest.v1+json"


def pull_status(berth, repo, ref):
    req = urllib.request.Request(f"{berth.url}/v2/{repo}/manifests/{ref}",
                                 headers={"Authorization": basic_auth(), "Accept": OCI})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["errors"][0]["code"]


def statuses(ecr, repo, which="ANY"):
    details = ecr.describe_images(repositoryName=repo, filter={"imageStatus": which})["imageDetails"]
    return {d["imageDigest"]: d for d in details}


def test_archive_and_restore(idle_berth):  # noqa: F811
    berth = idle_berth
    ecr = client(berth, "ecr")
    ecr.create_repository(repositoryName="cold")
    old = push(berth, "cold", "old", [layer({"o": b"old"})])
    new = push(berth, "cold", "new", [layer({"n": b"new"})])

    moved = ecr.update_image_storage_class(repositoryName="cold", imageId={"imageTag": "old"},
                                           targetStorageClass="ARCHIVE")
    assert moved["imageStatus"] == "ARCHIVED" and moved["imageId"] == {"imageDigest": old, "imageTag": "old"}
    # Listed only when asked for.
    assert [d["imageDigest"] for d in ecr.describe_images(repositoryName="cold")["imageDetails"]] == [new]
    archived = statuses(ecr, "cold", "ARCHIVED")
    assert list(archived) == [old] and archived[old]["imageStatus"] == "ARCHIVED"
    assert "lastArchivedAt" in archived[old]
    assert {i["imageDigest"] for i in ecr.list_images(repositoryName="cold", filter={"imageStatus": "ANY"})[
        "imageIds"]} == {old, new}
    assert [i["imageDigest"] for i in ecr.list_images(repositoryName="cold")["imageIds"]] == [new]

    # Not pulled, by either door, nor scanned.
    assert pull_status(berth, "cold", "old") == (404, "MANIFEST_UNKNOWN")
    assert pull_status(berth, "cold", old) == (404, "MANIFEST_UNKNOWN")
    assert pull_status(berth, "cold", "new")[0] == 200
    got = ecr.batch_get_image(repositoryName="cold", imageIds=[{"imageTag": "old"}])
    assert got["images"] == [] and got["failures"][0]["failureCode"] == "ImageNotFound"
    with pytest.raises(ClientError) as e:
        ecr.start_image_scan(repositoryName="cold", imageId={"imageDigest": old})
    assert e.value.response["Error"]["Code"] == "ImageArchivedException"
    # Archiving again changes nothing.
    assert ecr.update_image_storage_class(repositoryName="cold", imageId={"imageDigest": old},
                                          targetStorageClass="ARCHIVE")["imageStatus"] == "ARCHIVED"

    # Restored: ACTIVATING, then ACTIVE and pullable.
    restoring = ecr.update_image_storage_class(repositoryName="cold", imageId={"imageDigest": old},
                                               targetStorageClass="STANDARD")
    assert restoring["imageStatus"] == "ACTIVATING"
    deadline = time.time() + 30
    while statuses(ecr, "cold")[old]["imageStatus"] != "ACTIVE":
        assert time.time() < deadline
        time.sleep(0.2)
    assert "lastActivatedAt" in statuses(ecr, "cold")[old]
    assert pull_status(berth, "cold", "old")[0] == 200

    # Pushed again, an archived image is active at once, as on ECR.
    ecr.update_image_storage_class(repositoryName="cold", imageId={"imageDigest": new},
                                   targetStorageClass="ARCHIVE")
    assert pull_status(berth, "cold", "new")[0] == 404
    manifest = statuses(ecr, "cold")[new]
    assert manifest["imageStatus"] == "ARCHIVED"
    content = ecr.batch_get_image(repositoryName="cold", imageIds=[{"imageDigest": old}])["images"][0]
    assert content["imageId"]["imageDigest"] == old
    push(berth, "cold", "new", [layer({"n": b"new"})])
    assert statuses(ecr, "cold")[new]["imageStatus"] == "ACTIVE"
    assert pull_status(berth, "cold", "new")[0] == 200

    with pytest.raises(ClientError) as e:
        ecr.update_image_storage_class(repositoryName="cold", imageId={"imageTag": "nope"},
                                       targetStorageClass="ARCHIVE")
    assert e.value.response["Error"]["Code"] == "ImageNotFoundException"


def test_lifecycle_transitions_to_the_archive(idle_berth):  # noqa: F811
    berth = idle_berth
    ecr = client(berth, "ecr")
    ecr.create_repository(repositoryName="aging")
    digests = [push(berth, "aging", f"v{n}", [layer({"n": str(n).encode()})]) for n in range(4)]
    policy = {"rules": [{
        "rulePriority": 1, "description": "keep the newest two in standard storage",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2},
        "action": {"type": "transition", "targetStorageClass": "archive"}}]}
    # What ECR refuses: expiring archived images before 90 days.
    too_soon = {"rules": [{
        "rulePriority": 1, "description": "expire archived images after a month, too soon",
        "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned",
                      "countUnit": "days", "countNumber": 30},
        "action": {"type": "expire"}}]}
    with pytest.raises(ClientError) as e:
        ecr.put_lifecycle_policy(repositoryName="aging", lifecyclePolicyText=json.dumps(too_soon))
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    ecr.put_lifecycle_policy(repositoryName="aging", lifecyclePolicyText=json.dumps(policy))

    ecr.start_lifecycle_policy_preview(repositoryName="aging")
    preview = ecr.get_lifecycle_policy_preview(repositoryName="aging")
    assert preview["summary"]["transitioningImageTotalCounts"] == [
        {"targetStorageClass": "ARCHIVE", "imageTotalCount": 2}]
    assert preview["summary"]["expiringImageTotalCount"] == 0
    assert {r["imageDigest"] for r in preview["previewResults"]} == set(digests[:2])
    assert all(r["action"] == {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"}
               and r["storageClass"] == "STANDARD" for r in preview["previewResults"])

    out = subprocess_run(berth, "lifecycle", "--repository", "aging")
    assert "archived" in out
    now = statuses(ecr, "aging")
    assert {d for d, i in now.items() if i["imageStatus"] == "ARCHIVED"} == set(digests[:2])
    assert {d for d, i in now.items() if i["imageStatus"] == "ACTIVE"} == set(digests[2:])
    # Applied again, nothing more moves: archived images are not counted among the standard ones.
    subprocess_run(berth, "lifecycle", "--repository", "aging")
    assert len(statuses(ecr, "aging", "ARCHIVED")) == 2


def test_archived_blobs_move_to_the_archive_store_and_come_back(tmp_path):
    """With `--archive-storage`, an archived image's blobs move there — but
    a layer an active image shares stays — and come back on restore; the
    bytes pulled afterwards are the bytes pushed."""
    import hashlib
    import os

    from conftest import ACCOUNT, Berth, root_env

    cold = tmp_path / "archive"
    berth = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()},
                  extra=["--create-on-push", "--archive-storage", str(cold), "--job-backoff", "1s"])
    try:
        ecr = client(berth, "ecr")
        shared = layer({"base": b"a base layer both images use"})
        own = layer({"app": b"only the archived image has this"})
        archived = push(berth, "tiers/app", "old", [shared, own])
        push(berth, "tiers/app", "new", [shared, layer({"app": b"the active one"})])
        digest = lambda data: "sha256:" + hashlib.sha256(data).hexdigest()  # noqa: E731

        def in_cold(data):
            hex = hashlib.sha256(data).hexdigest()
            return (cold / "blobs" / "sha256" / hex[:2] / hex).exists()

        def hot_file(data):
            hex = hashlib.sha256(data).hexdigest()
            return os.path.join(berth.data, "blobs", "blobs", "sha256", hex[:2], hex)

        def until(check, timeout=30):
            deadline = time.time() + timeout
            while not check():
                assert time.time() < deadline
                time.sleep(0.3)

        ecr.update_image_storage_class(repositoryName="tiers/app", imageId={"imageTag": "old"},
                                       targetStorageClass="ARCHIVE")
        until(lambda: in_cold(own))
        assert not in_cold(shared)
        if not os.environ.get("BERTH_TEST_STORAGE_URL"):
            assert not os.path.exists(hot_file(own)) and os.path.exists(hot_file(shared))
        # The active image is untouched, whole.
        manifest = ecr.batch_get_image(repositoryName="tiers/app", imageIds=[{"imageTag": "new"}])["images"][0]
        for l in json.loads(manifest["imageManifest"])["layers"]:
            req = urllib.request.Request(f"{berth.url}/v2/tiers/app/blobs/{l['digest']}",
                                         headers={"Authorization": basic_auth()})
            with urllib.request.urlopen(req) as r:
                assert digest(r.read()) == l["digest"]

        ecr.update_image_storage_class(repositoryName="tiers/app", imageId={"imageTag": "old"},
                                       targetStorageClass="STANDARD")
        until(lambda: statuses(ecr, "tiers/app")[archived]["imageStatus"] == "ACTIVE"
              if archived in statuses(ecr, "tiers/app") else False)
        assert not in_cold(own)
        if not os.environ.get("BERTH_TEST_STORAGE_URL"):
            assert os.path.exists(hot_file(own))
        assert pull_status(berth, "tiers/app", "old")[0] == 200
        req = urllib.request.Request(f"{berth.url}/v2/tiers/app/blobs/{digest(own)}",
                                     headers={"Authorization": basic_auth()})
        with urllib.request.urlopen(req) as r:
            assert r.read() == own
    finally:
        berth.stop()
