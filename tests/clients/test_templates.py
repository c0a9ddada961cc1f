"""Repository creation templates, exactly as botocore's model says, with the
aws CLI and boto3: the API and its errors; a push to a missing repository
creates it as the longest matching CREATE_ON_PUSH template says (tag
mutability, tags, repository and lifecycle policies) only for a pusher who
may `ecr:CreateRepository`; a pull-through cache's first pull applies a
PULL_THROUGH_CACHE template."""

import json
import urllib.error

import pytest

from conftest import ACCOUNT, REGION, Berth, aws, client, failure, ok, root_env
from test_scanning import layer, push

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "pull", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})
LIFECYCLE = json.dumps({"rules": [{"rulePriority": 1, "selection": {
    "tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
    "action": {"type": "expire"}}]})


@pytest.fixture
def berth():
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    yield server
    server.stop()


def test_the_template_api_as_the_model_says(berth):
    created = ok(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "prod",
                     "--description", "production", "--applied-for", "CREATE_ON_PUSH", "PULL_THROUGH_CACHE",
                     "--image-tag-mutability", "IMMUTABLE",
                     "--resource-tags", "Key=team,Value=platform",
                     "--repository-policy", POLICY, "--lifecycle-policy", LIFECYCLE))
    template = created["repositoryCreationTemplate"]
    assert created["registryId"] == ACCOUNT and template["prefix"] == "prod"
    assert template["appliedFor"] == ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"]
    assert template["imageTagMutability"] == "IMMUTABLE"
    assert template["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert template["resourceTags"] == [{"Key": "team", "Value": "platform"}]
    failure(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "prod",
                "--applied-for", "CREATE_ON_PUSH"), "TemplateAlreadyExistsException")
    failure(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "Bad Prefix",
                "--applied-for", "CREATE_ON_PUSH"), "ValidationException")
    failure(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "x",
                "--applied-for", "CREATE_ON_PUSH", "--lifecycle-policy", '{"rules": "no"}'),
            "InvalidParameterException")
    failure(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "y",
                "--applied-for", "CREATE_ON_PUSH", "--image-tag-mutability", "MUTABLE_WITH_EXCLUSION"),
            "InvalidParameterException")
    ok(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "ROOT",
           "--applied-for", "REPLICATION"))
    ecr = client(berth, "ecr")
    listed = ecr.describe_repository_creation_templates()["repositoryCreationTemplates"]
    assert [t["prefix"] for t in listed] == ["ROOT", "prod"]
    first = ecr.describe_repository_creation_templates(maxResults=1)
    assert [t["prefix"] for t in first["repositoryCreationTemplates"]] == ["ROOT"]
    rest = ecr.describe_repository_creation_templates(maxResults=1, nextToken=first["nextToken"])
    assert [t["prefix"] for t in rest["repositoryCreationTemplates"]] == ["prod"] and "nextToken" not in rest
    updated = ecr.update_repository_creation_template(prefix="prod", description="prod images")
    assert updated["repositoryCreationTemplate"]["description"] == "prod images"
    assert updated["repositoryCreationTemplate"]["imageTagMutability"] == "IMMUTABLE"
    deleted = ecr.delete_repository_creation_template(prefix="ROOT")
    assert deleted["repositoryCreationTemplate"]["appliedFor"] == ["REPLICATION"]
    failure(aws(berth, "ecr", "delete-repository-creation-template", "--prefix", "ROOT"), "TemplateNotFoundException")
    failure(aws(berth, "ecr", "update-repository-creation-template", "--prefix", "nope",
                "--description", "x"), "TemplateNotFoundException")


def test_a_push_creates_its_repository_as_the_longest_template_says(berth):
    ok(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "prod",
           "--applied-for", "CREATE_ON_PUSH", "--image-tag-mutability", "IMMUTABLE",
           "--resource-tags", "Key=team,Value=platform",
           "--repository-policy", POLICY, "--lifecycle-policy", LIFECYCLE))
    ok(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "prod/sandbox",
           "--applied-for", "CREATE_ON_PUSH", "--image-tag-mutability", "MUTABLE"))
    push(berth, "prod/app", "v1", [layer({"app": b"v1"})])
    repo = ok(aws(berth, "ecr", "describe-repositories", "--repository-names", "prod/app"))["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    tags = ok(aws(berth, "ecr", "list-tags-for-resource", "--resource-arn", repo["repositoryArn"]))["tags"]
    assert tags == [{"Key": "team", "Value": "platform"}]
    policy = ok(aws(berth, "ecr", "get-repository-policy", "--repository-name", "prod/app"))
    assert json.loads(policy["policyText"])["Statement"][0]["Sid"] == "pull"
    lifecycle = ok(aws(berth, "ecr", "get-lifecycle-policy", "--repository-name", "prod/app"))
    assert json.loads(lifecycle["lifecyclePolicyText"])["rules"][0]["rulePriority"] == 1
    # The tag is immutable, as the template said.
    with pytest.raises(urllib.error.HTTPError):
        push(berth, "prod/app", "v1", [layer({"app": b"v1 again"})])

    push(berth, "prod/sandbox/tool", "v1", [layer({"tool": b"t"})])
    sandbox = ok(aws(berth, "ecr", "describe-repositories", "--repository-names", "prod/sandbox/tool"))
    assert sandbox["repositories"][0]["imageTagMutability"] == "MUTABLE"
    # A name the prefix only starts, not a namespace under it: no template.
    with pytest.raises(urllib.error.HTTPError) as refused:
        push(berth, "production", "v1", [layer({"x": b"x"})])
    assert refused.value.code == 404


def test_only_a_pusher_who_may_create_repositories_creates_one(berth):
    ok(aws(berth, "ecr", "create-repository-creation-template", "--prefix", "team",
           "--applied-for", "CREATE_ON_PUSH"))
    iam = client(berth, "iam")
    iam.create_user(UserName="pusher")
    iam.put_user_policy(UserName="pusher", PolicyName="push", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
            "ecr:PutImage", "ecr:BatchCheckLayerAvailability"], "Resource": "*"}]}))
    key = iam.create_access_key(UserName="pusher")["AccessKey"]

    class As:
        url, host = berth.url, berth.host

    import test_scanning
    original = test_scanning.basic_auth
    test_scanning.basic_auth = lambda: original(key["AccessKeyId"], key["SecretAccessKey"])
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            push(As, "team/app", "v1", [layer({"a": b"a"})])
        assert refused.value.code == 404
        iam.put_user_policy(UserName="pusher", PolicyName="create", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:CreateRepository",
                                                    "Resource": "*"}]}))
        push(As, "team/app", "v1", [layer({"a": b"a"})])
    finally:
        test_scanning.basic_auth = original
    ok(aws(berth, "ecr", "describe-repositories", "--repository-names", "team/app"))


def test_a_pull_through_cache_applies_its_template(tmp_path):
    from test_pull_through import OCI_MANIFEST, Upstream, get

    upstream = Upstream(str(tmp_path))
    cache = Berth(extra=["--insecure-upstream", upstream.host], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    try:
        upstream.image("library/alpine", "3.20", {"etc/alpine-release": b"3.20.0\n"})
        ok(aws(cache, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "hub",
               "--upstream-registry-url", upstream.host))
        ok(aws(cache, "ecr", "create-repository-creation-template", "--prefix", "hub",
               "--applied-for", "PULL_THROUGH_CACHE", "--image-tag-mutability", "IMMUTABLE",
               "--resource-tags", "Key=source,Value=upstream"))
        status, _ = get(cache, "/v2/hub/library/alpine/manifests/3.20", accept=OCI_MANIFEST)
        assert status == 200
        repo = ok(aws(cache, "ecr", "describe-repositories", "--repository-names", "hub/library/alpine"))
        repo = repo["repositories"][0]
        assert repo["imageTagMutability"] == "IMMUTABLE"
        tags = ok(aws(cache, "ecr", "list-tags-for-resource", "--resource-arn", repo["repositoryArn"]))["tags"]
        assert tags == [{"Key": "source", "Value": "upstream"}]
    finally:
        cache.stop()
        upstream.stop()
