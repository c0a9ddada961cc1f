"""Every operation in botocore's ECR model, called through boto3 with input
the model accepts: none may answer `UnsupportedOperationException` but those
still owed (listed, with the issue that owes them), and none may answer a 5xx.
The list of owed operations only shrinks."""

import gzip
import json
import os

import botocore
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT

from test_ecr_api import ecr

# Operations not built yet: they answer UnsupportedOperationException, and
# the README says so.
OWED: set = set()

# Values for the string shapes required members use; the rest are generated.
STRINGS = {
    "AccountSettingName": "BLOB_MOUNTING",
    "AccountSettingValue": "ENABLED",
    "Arn": f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/coverage/repo",
    "BatchedOperationLayerDigest": "sha256:" + "0" * 64,
    "ImageDigest": "sha256:" + "0" * 64,
    "ImageManifest": json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                            "digest": "sha256:" + "1" * 64, "size": 2},
                                 "layers": []}),
    "LayerDigest": "sha256:" + "0" * 64,
    "LifecyclePolicyText": json.dumps({"rules": [{"rulePriority": 1, "description": "keep ten",
                                                 "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                                               "countNumber": 10},
                                                 "action": {"type": "expire"}}]}),
    "Prefix": "coverage",
    "PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/coverage",
    "PullThroughCacheRuleRepositoryPrefix": "coverage-cache",
    "Region": "us-west-2",
    "RegistryId": ACCOUNT,
    "RegistryPolicyText": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "c", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
         "Action": ["ecr:ReplicateImage"], "Resource": "*"}]}),
    "ReplicationBackfillId": "00000000-0000-4000-8000-000000000000",
    "RepositoryName": "coverage/repo",
    "RepositoryPolicyText": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "c", "Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage"]}]}),
    "SigningProfileArn": f"arn:aws:signer:eu-west-1:{ACCOUNT}:/signing-profiles/coverage",
    "TagKey": "team",
    "TagValue": "coverage",
    "UploadId": "00000000-0000-4000-8000-000000000000",
    "Url": "https://registry-1.docker.io",
}


def model():
    path = os.path.join(os.path.dirname(botocore.__file__), "data", "ecr", "2015-09-21", "service-2.json.gz")
    with gzip.open(path) as f:
        return json.load(f)


def value(shapes, name):
    """The smallest input the model accepts for shape `name`."""
    shape = shapes[name]
    kind = shape["type"]
    if kind == "structure":
        return {m: value(shapes, shape["members"][m]["shape"]) for m in shape.get("required", [])}
    if kind == "list":
        return [value(shapes, shape["member"]["shape"])]
    if kind == "map":
        return {value(shapes, shape["key"]["shape"]): value(shapes, shape["value"]["shape"])}
    if kind in ("integer", "long"):
        return max(shape.get("min", 1), 1)
    if kind == "boolean":
        return False
    if kind == "blob":
        return b"x"
    if kind == "timestamp":
        return 0
    if "enum" in shape:
        return shape["enum"][0]
    return STRINGS[name]


MODEL = model()


def test_the_owed_list_names_real_operations():
    assert OWED <= set(MODEL["operations"])


@pytest.mark.parametrize("operation", sorted(MODEL["operations"]))
def test_every_operation_answers(ecr_berth, operation):
    client = ecr(ecr_berth)
    client.create_repository(repositoryName="coverage/repo")
    shape = MODEL["operations"][operation].get("input", {}).get("shape")
    params = value(MODEL["shapes"], shape) if shape else {}
    method = getattr(client, botocore.xform_name(operation))
    try:
        method(**params)
        code, status = None, 200
    except ClientError as e:
        code = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status < 500, f"{operation}: {code} ({status})"
    if operation in OWED:
        assert code == "UnsupportedOperationException", f"{operation} is built now: take it off OWED"
    else:
        assert code != "UnsupportedOperationException", operation
        # The error is one the model lists for the operation, or a common one.
        if code is not None:
            listed = {e["shape"] for e in MODEL["operations"][operation].get("errors", [])}
            common = {"ValidationException", "AccessDeniedException", "SerializationException",
                      "InvalidParameterException", "ServerException", "LimitExceededException"}
            assert code in listed | common, f"{operation}: {code} is not in the model's errors {sorted(listed)}"
