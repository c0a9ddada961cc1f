"""Replication as ECR's model says, between two real berths: the
configuration through the aws CLI (and its errors), pushes covered by a
rule copied to the destination (its repository created there through its
ECR API), the status per image and destination, and a destination that is
down catching up with nothing lost once it is back."""

import json
import time

import pytest

from conftest import ACCOUNT, REGION, ROOT_KEY, Berth, aws, failure, ok, root_env
from test_scanning import layer, push

DEST_ACCOUNT, DEST_REGION = "222222222222", "us-west-2"


def wait_status(berth, repo, tag, want, timeout=60):
    deadline = time.time() + timeout
    while True:
        got = ok(aws(berth, "ecr", "describe-image-replication-status", "--repository-name", repo,
                     "--image-id", f"imageTag={tag}"))
        statuses = got["replicationStatuses"]
        if statuses and all(s["status"] == want for s in statuses):
            return got
        assert time.time() < deadline, got
        time.sleep(0.5)


def test_pushes_replicate_to_another_berth_and_catch_up_after_an_outage():
    import socket
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # A fixed port: it comes back where it was after the outage.
    destination = Berth(env={**root_env(), "BERTH_ACCOUNT_ID": DEST_ACCOUNT, "BERTH_REGION": DEST_REGION},
                        listen=f"127.0.0.1:{port}")
    source = None
    try:
        source = Berth(extra=["--create-on-push", "--job-backoff", "1s",
                              "--replication-destination",
                              f"{DEST_REGION}/{DEST_ACCOUNT}={destination.url},ecr-replication/west"],
                       env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
        ok(aws(source, "secretsmanager", "create-secret", "--name", "ecr-replication/west",
               "--secret-string", json.dumps({"username": ROOT_KEY[0], "accessToken": ROOT_KEY[1]})))
        rule = {"rules": [{"destinations": [{"region": DEST_REGION, "registryId": DEST_ACCOUNT}],
                           "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}]}]}
        failure(aws(source, "ecr", "put-replication-configuration", "--replication-configuration",
                    json.dumps({"rules": [{"destinations": [{"region": "ap-south-1", "registryId": "333333333333"}]}]})),
                "InvalidParameterException")
        failure(aws(source, "ecr", "put-replication-configuration", "--replication-configuration",
                    json.dumps({"rules": [{"destinations": [{"region": REGION, "registryId": ACCOUNT}]}]})),
                "InvalidParameterException")
        put = ok(aws(source, "ecr", "put-replication-configuration", "--replication-configuration", json.dumps(rule)))
        assert put["replicationConfiguration"] == rule
        assert ok(aws(source, "ecr", "describe-registry"))["replicationConfiguration"] == rule

        digest = push(source, "prod/app", "v1", [layer({"a": b"one"}), layer({"b": b"two"})])
        push(source, "other/app", "v1", [layer({"c": b"three"})])
        status = wait_status(source, "prod/app", "v1", "COMPLETE")
        assert status["replicationStatuses"] == [
            {"region": DEST_REGION, "registryId": DEST_ACCOUNT, "status": "COMPLETE"}]
        west = {"AWS_DEFAULT_REGION": DEST_REGION}
        got = ok(aws(destination, "ecr", "batch-get-image", "--repository-name", "prod/app",
                     "--image-ids", "imageTag=v1", env=west))
        assert got["images"][0]["imageId"]["imageDigest"] == digest
        failure(aws(destination, "ecr", "describe-repositories", "--repository-names", "other/app", env=west),
                "RepositoryNotFoundException")
        assert ok(aws(source, "ecr", "describe-image-replication-status", "--repository-name", "other/app",
                      "--image-id", "imageTag=v1"))["replicationStatuses"] == []

        # The destination goes down: the push waits, then catches up.
        destination.halt()
        v2 = push(source, "prod/app", "v2", [layer({"a": b"one"}), layer({"d": b"four"})])
        time.sleep(2)
        assert wait_status(source, "prod/app", "v2", "IN_PROGRESS")
        destination.start()
        wait_status(source, "prod/app", "v2", "COMPLETE", timeout=120)
        images = ok(aws(destination, "ecr", "describe-images", "--repository-name", "prod/app", env=west))["imageDetails"]
        assert sorted((i["imageDigest"], tuple(i.get("imageTags", []))) for i in images) == sorted(
            [(digest, ("v1",)), (v2, ("v2",))])
    finally:
        if source:
            source.stop()
        destination.stop()
