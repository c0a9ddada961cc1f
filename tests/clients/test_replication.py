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
from test_webhooks import berth_call

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


def test_a_backfill_copies_what_was_there_before_the_rule():
    """`StartReplicationBackfill` and its family, with boto3: images pushed
    before the rule are copied (one replication per image and tag); only one
    backfill per destination at a time; a stopped one skips what is left;
    results once it ends; paging newest first."""
    import socket

    from conftest import client
    from botocore.exceptions import ClientError

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    destination = Berth(env={**root_env(), "BERTH_ACCOUNT_ID": DEST_ACCOUNT, "BERTH_REGION": DEST_REGION},
                        listen=f"127.0.0.1:{port}")
    source = None
    west_dest = {"region": DEST_REGION, "registryId": DEST_ACCOUNT}

    def code(call, **kwargs):
        with pytest.raises(ClientError) as e:
            call(**kwargs)
        return e.value.response["Error"]["Code"]

    try:
        source = Berth(extra=["--create-on-push", "--job-backoff", "1s",
                              "--replication-destination",
                              f"{DEST_REGION}/{DEST_ACCOUNT}={destination.url},ecr-replication/west"],
                       env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
        ok(aws(source, "secretsmanager", "create-secret", "--name", "ecr-replication/west",
               "--secret-string", json.dumps({"username": ROOT_KEY[0], "accessToken": ROOT_KEY[1]})))
        ecr = client(source, "ecr")
        # Images pushed before any rule: two tags of one image, another image, one not covered.
        first = push(source, "prod/app", "v1", [layer({"a": b"one"})])
        manifest = ecr.batch_get_image(repositoryName="prod/app", imageIds=[{"imageTag": "v1"}])["images"][0]
        ecr.put_image(repositoryName="prod/app", imageManifest=manifest["imageManifest"], imageTag="stable")
        second = push(source, "prod/api", "v1", [layer({"b": b"two"})])
        push(source, "dev/tool", "v1", [layer({"c": b"three"})])

        assert code(ecr.start_replication_backfill, destination=west_dest) == "InvalidParameterException"
        rule = {"rules": [{"destinations": [west_dest],
                           "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}]}]}
        ecr.put_replication_configuration(replicationConfiguration=rule)

        # The destination is down: the first backfill cannot finish, and is stopped.
        destination.halt()
        started = ecr.start_replication_backfill(destination=west_dest)
        assert started["status"] == "PREPARING" and started["destination"] == west_dest
        assert started["registryId"] == ACCOUNT
        assert code(ecr.start_replication_backfill, destination=west_dest) == "ReplicationBackfillInProgressException"
        deadline = time.time() + 30
        while ecr.describe_replication_backfill_results(
                replicationBackfillId=started["replicationBackfillId"])["status"] == "PREPARING":
            assert time.time() < deadline
            time.sleep(0.2)
        running = ecr.describe_replication_backfill_results(replicationBackfillId=started["replicationBackfillId"])
        assert running["status"] == "IN_PROGRESS" and running["results"] == []
        assert running["progress"]["totalReplicationCount"] == 3
        stopped = ecr.stop_replication_backfill(replicationBackfillId=started["replicationBackfillId"])
        assert stopped["status"] == "STOPPED"
        assert code(ecr.stop_replication_backfill,
                    replicationBackfillId=started["replicationBackfillId"]) == "ReplicationBackfillInvalidStatusException"
        assert code(ecr.stop_replication_backfill,
                    replicationBackfillId="00000000-0000-4000-8000-000000000000") == "ReplicationBackfillNotFoundException"

        # Back up: a second backfill copies all three.
        destination.start()
        again = ecr.start_replication_backfill(destination=west_dest)
        deadline = time.time() + 120
        while True:
            done = ecr.describe_replication_backfill_results(replicationBackfillId=again["replicationBackfillId"])
            if done["status"] == "COMPLETE":
                break
            assert time.time() < deadline, done
            time.sleep(0.5)
        assert done["progress"] == {"totalReplicationCount": 3, "completedReplicationCount": 3,
                                    "failedReplicationCount": 0, "failureCodes": []}
        assert done["endedAt"] >= done["startedAt"]
        got = sorted((r["repositoryName"], r["imageId"]["imageDigest"], r["imageId"].get("imageTag"), r["status"])
                     for r in done["results"])
        assert got == sorted([("prod/app", first, "v1", "COMPLETE"), ("prod/app", first, "stable", "COMPLETE"),
                              ("prod/api", second, "v1", "COMPLETE")])
        page = ecr.describe_replication_backfill_results(replicationBackfillId=again["replicationBackfillId"],
                                                         maxResults=2)
        assert len(page["results"]) == 2
        rest = ecr.describe_replication_backfill_results(replicationBackfillId=again["replicationBackfillId"],
                                                         maxResults=2, nextToken=page["nextToken"])
        assert len(rest["results"]) == 1 and "nextToken" not in rest
        assert ecr.describe_replication_backfill_results(replicationBackfillId=again["replicationBackfillId"],
                                                         resultStatusFilter="FAILED")["results"] == []

        west_ecr = __import__("boto3").client(
            "ecr", endpoint_url=destination.url, region_name=DEST_REGION,
            aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1])
        tags = sorted(t for i in west_ecr.describe_images(repositoryName="prod/app")["imageDetails"]
                      for t in i.get("imageTags", []))
        assert tags == ["stable", "v1"]
        assert west_ecr.describe_images(repositoryName="prod/api")["imageDetails"][0]["imageDigest"] == second
        assert code(west_ecr.describe_repositories, repositoryNames=["dev/tool"]) == "RepositoryNotFoundException"

        # Newest first, paged.
        listed = ecr.list_replication_backfills(maxResults=1)
        assert [b["replicationBackfillId"] for b in listed["backfills"]] == [again["replicationBackfillId"]]
        older = ecr.list_replication_backfills(maxResults=1, nextToken=listed["nextToken"])
        assert [(b["replicationBackfillId"], b["status"]) for b in older["backfills"]] == [
            (started["replicationBackfillId"], "STOPPED")]
        assert "nextToken" not in older
    finally:
        if source:
            source.stop()
        destination.stop()


def test_a_destination_with_token_authentication(tmp_path):
    """Any OCI registry as a destination, here Debian's docker-registry behind
    token authentication as Docker Hub or Quay are: the copy gets a
    push token from the challenge's realm with the secret's credentials."""
    import base64
    import hashlib
    import urllib.request

    from test_pull_through import Upstream
    from token_issuer import TokenIssuer

    issuer = TokenIssuer(str(tmp_path), users={"replicator": "s3cret"})
    destination = Upstream(str(tmp_path), auth=issuer.registry_config())
    source = None
    try:
        source = Berth(extra=["--create-on-push", "--job-backoff", "1s",
                              "--replication-destination",
                              f"{DEST_REGION}/{DEST_ACCOUNT}={destination.url},hub/replicator"],
                       env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
        ok(aws(source, "secretsmanager", "create-secret", "--name", "hub/replicator",
               "--secret-string", json.dumps({"username": "replicator", "accessToken": "s3cret"})))
        ok(aws(source, "ecr", "put-replication-configuration", "--replication-configuration", json.dumps(
            {"rules": [{"destinations": [{"region": DEST_REGION, "registryId": DEST_ACCOUNT}]}]})))
        digest = push(source, "team/tool", "v1", [layer({"t": b"through a token"})])
        wait_status(source, "team/tool", "v1", "COMPLETE")

        # Read back from the destination with a pull token of our own.
        login = base64.b64encode(b"replicator:s3cret").decode()
        req = urllib.request.Request(f"{issuer.realm}?service={issuer.service}&scope=repository:team/tool:pull",
                                     headers={"Authorization": f"Basic {login}"})
        token = json.loads(urllib.request.urlopen(req).read())["token"]
        req = urllib.request.Request(f"{destination.url}/v2/team/tool/manifests/v1", headers={
            "Authorization": f"Bearer {token}", "Accept": "application/vnd.oci.image.manifest.v1+json"})
        body = urllib.request.urlopen(req).read()
        assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    finally:
        if source:
            source.stop()
        destination.stop()
        issuer.stop()


def test_deletes_replicate_where_the_rule_says_and_replicas_get_replication_templates():
    """A rule with `deleteReplication` carries tag removals, image deletes
    and untagging an image's last tag to the destination, as ECR does; a rule
    without it leaves the destination's copies alone. The destination (a
    berth) makes the repositories replication creates as its `REPLICATION`
    creation template says."""
    from conftest import client

    destination = Berth(env={**root_env(), "BERTH_ACCOUNT_ID": DEST_ACCOUNT, "BERTH_REGION": DEST_REGION})
    source = None
    west = {"AWS_DEFAULT_REGION": DEST_REGION}
    lifecycle = json.dumps({"rules": [{"rulePriority": 1, "selection": {
        "tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30},
        "action": {"type": "expire"}}]})
    try:
        ok(aws(destination, "ecr", "create-repository-creation-template", "--prefix", "prod",
               "--applied-for", "REPLICATION", "--resource-tags", "Key=copy,Value=west",
               "--lifecycle-policy", lifecycle, env=west))
        # This destination is named through the API, not at start-up.
        source = Berth(extra=["--create-on-push", "--job-backoff", "1s"],
                       env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
        dest = {"region": DEST_REGION, "registryId": DEST_ACCOUNT}
        named = {**dest, "endpoint": destination.url, "secretId": "ecr-replication/west"}
        assert berth_call(source, "PutReplicationDestination", named)[1]["__type"] == "SecretNotFoundException"
        ok(aws(source, "secretsmanager", "create-secret", "--name", "ecr-replication/west",
               "--secret-string", json.dumps({"username": ROOT_KEY[0], "accessToken": ROOT_KEY[1]})))
        for bad in [{"endpoint": "ftp://x"}, {"endpoint": destination.url + "/v2/"}, {"registryId": "12"},
                    {"endpoint": destination.url.replace("http://", "http://user:secret@")},
                    {"region": REGION, "registryId": ACCOUNT}]:
            status, body = berth_call(source, "PutReplicationDestination", {**named, **bad})
            assert (status, body["__type"]) == (400, "InvalidParameterException"), (bad, body)
        assert berth_call(source, "PutReplicationDestination", named) == (200, {"destination": {**named, "source": "api"}})
        assert berth_call(source, "DescribeReplicationDestinations", {})[1] == {
            "destinations": [{**named, "source": "api"}]}
        rule = {"rules": [
            {"destinations": [dest], "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}],
             "deleteReplication": {"enabled": True}},
            {"destinations": [dest], "repositoryFilters": [{"filter": "keep", "filterType": "PREFIX_MATCH"}]},
        ]}
        # boto3 (the aws CLI's botocore here predates deleteReplication).
        ecr = client(source, "ecr")
        assert ecr.put_replication_configuration(replicationConfiguration=rule)["replicationConfiguration"] == rule
        assert ecr.describe_registry()["replicationConfiguration"] == rule
        a = push(source, "prod/app", "v1", [layer({"a": b"one"})])
        manifest = ecr.batch_get_image(repositoryName="prod/app", imageIds=[{"imageTag": "v1"}])["images"][0]
        ecr.put_image(repositoryName="prod/app", imageManifest=manifest["imageManifest"], imageTag="stable")
        b = push(source, "prod/app", "v2", [layer({"b": b"two"})])
        kept = push(source, "keep/app", "v1", [layer({"c": b"three"})])
        for repo, tag in [("prod/app", "v1"), ("prod/app", "stable"), ("prod/app", "v2"), ("keep/app", "v1")]:
            wait_status(source, repo, tag, "COMPLETE")

        def there(repo):
            got = ok(aws(destination, "ecr", "describe-images", "--repository-name", repo, env=west))
            return sorted((i["imageDigest"], tuple(sorted(i.get("imageTags", [])))) for i in got["imageDetails"])

        def until(repo, want, timeout=60):
            deadline = time.time() + timeout
            while (got := there(repo)) != want:
                assert time.time() < deadline, (repo, got, want)
                time.sleep(0.5)

        until("prod/app", sorted([(a, ("stable", "v1")), (b, ("v2",))]))
        # The replica repository as the destination's REPLICATION template says.
        arn = f"arn:aws:ecr:{DEST_REGION}:{DEST_ACCOUNT}:repository/prod/app"
        assert ok(aws(destination, "ecr", "list-tags-for-resource", "--resource-arn", arn,
                      env=west))["tags"] == [{"Key": "copy", "Value": "west"}]
        assert json.loads(ok(aws(destination, "ecr", "get-lifecycle-policy", "--repository-name", "prod/app",
                                 env=west))["lifecyclePolicyText"]) == json.loads(lifecycle)
        # A repository no template covers is made with default settings.
        assert ok(aws(destination, "ecr", "list-tags-for-resource", "--resource-arn",
                      f"arn:aws:ecr:{DEST_REGION}:{DEST_ACCOUNT}:repository/keep/app", env=west))["tags"] == []

        # One tag of an image with two goes; the image stays with the other.
        ecr.batch_delete_image(repositoryName="prod/app", imageIds=[{"imageTag": "stable"}])
        until("prod/app", sorted([(a, ("v1",)), (b, ("v2",))]))
        # An image deleted by digest goes there, with its tags.
        ecr.batch_delete_image(repositoryName="prod/app", imageIds=[{"imageDigest": b}])
        until("prod/app", [(a, ("v1",))])
        # Not replicated: the rule covering keep/ does not say so.
        ecr.batch_delete_image(repositoryName="keep/app", imageIds=[{"imageDigest": kept}])
        # An image's last tag removed: the image goes, there too.
        request_delete = ecr.batch_delete_image(repositoryName="prod/app", imageIds=[{"imageTag": "v1"}])
        assert request_delete["failures"] == []
        until("prod/app", [])
        assert there("keep/app") == [(kept, ("v1",))]

        # A destination a rule sends to stays until the rule goes.
        status, body = berth_call(source, "DeleteReplicationDestination", dest)
        assert (status, body["__type"]) == (400, "InvalidParameterException")
        ecr.put_replication_configuration(replicationConfiguration={"rules": []})
        assert berth_call(source, "DeleteReplicationDestination", dest) == (200, dest)
        assert berth_call(source, "DeleteReplicationDestination", dest)[1]["__type"] == "DestinationNotFoundException"
        assert berth_call(source, "DescribeReplicationDestinations", {})[1] == {"destinations": []}
    finally:
        if source:
            source.stop()
        destination.stop()
