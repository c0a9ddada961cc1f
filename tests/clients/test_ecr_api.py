"""The ECR API as the real aws CLI and boto3 see it, against the real binary."""

import base64
import datetime
import json
import os
import subprocess
import time
import urllib.request
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, ROOT_KEY, aws, basic_auth

TARGET = "AmazonEC2ContainerRegistry_V20150921"


def ecr(berth, key=ROOT_KEY, validate=True):
    return boto3.client(
        "ecr",
        endpoint_url=berth.url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(parameter_validation=validate, retries={"max_attempts": 1}),
    )


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_repository_cycle_with_the_aws_cli(ecr_berth):
    code, out, err = aws(
        ecr_berth, "ecr", "create-repository", "--repository-name", "team/app",
        "--image-tag-mutability", "IMMUTABLE", "--image-scanning-configuration", "scanOnPush=true",
        "--tags", "Key=env,Value=dev",
    )
    assert code == 0, err
    repo = json.loads(out)["repository"]
    assert repo["repositoryArn"] == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/app"
    assert repo["registryId"] == ACCOUNT
    assert repo["repositoryUri"] == f"{ecr_berth.host}/team/app"
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert abs(repo["createdAt"] - time.time()) < 60

    code, out, err = aws(ecr_berth, "ecr", "create-repository", "--repository-name", "team/app")
    assert code != 0 and "RepositoryAlreadyExistsException" in err
    assert f"The repository with name 'team/app' already exists in the registry with id '{ACCOUNT}'" in err

    code, out, err = aws(ecr_berth, "ecr", "describe-repositories", "--repository-names", "team/app")
    assert code == 0, err
    assert json.loads(out)["repositories"][0]["repositoryName"] == "team/app"

    code, out, err = aws(ecr_berth, "ecr", "delete-repository", "--repository-name", "team/app")
    assert code == 0, err
    code, out, err = aws(ecr_berth, "ecr", "describe-repositories", "--repository-names", "team/app")
    assert code != 0 and "RepositoryNotFoundException" in err
    assert f"The repository with name 'team/app' does not exist in the registry with id '{ACCOUNT}'" in err


def test_pagination_through_250_repositories(ecr_berth):
    client = ecr(ecr_berth)
    names = sorted(f"page/r{i:03d}" for i in range(250))
    for name in names:
        client.create_repository(repositoryName=name)
    paginator = client.get_paginator("describe_repositories")
    for size in (1, 7, 100, 249, 250, 1000):
        seen = []
        pages = 0
        for page in paginator.paginate(PaginationConfig={"PageSize": size}):
            pages += 1
            assert len(page["repositories"]) <= size
            seen.extend(r["repositoryName"] for r in page["repositories"])
        assert seen == names, size
        assert pages == -(-250 // size), size
    # The default page is 100.
    first = client.describe_repositories()
    assert len(first["repositories"]) == 100 and "nextToken" in first

    # And the CLI pages through all of them by itself.
    code, out, err = aws(ecr_berth, "ecr", "describe-repositories", "--page-size", "60")
    assert code == 0, err
    assert [r["repositoryName"] for r in json.loads(out)["repositories"]] == names


def test_errors_have_ecr_types(ecr_berth):
    client = ecr(ecr_berth)
    raw = ecr(ecr_berth, validate=False)  # what SDKs without client-side checks send
    client.create_repository(repositoryName="errs")

    with pytest.raises(ClientError) as e:
        raw.describe_repositories(repositoryNames=["errs"], maxResults=10)
    assert error_code(e) == "InvalidParameterException"
    for bad in ({"maxResults": 0}, {"maxResults": 1001}):
        with pytest.raises(ClientError) as e:
            raw.describe_repositories(**bad)
        assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        raw.create_repository(repositoryName="Upper/Case")
    assert error_code(e) == "ValidationException"
    assert "regular expression pattern" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        raw.create_repository(repositoryName="x", imageTagMutability="SOMETIMES")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        raw.describe_repositories(nextToken="not a token!")
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        client.describe_repositories(registryId="999999999999")
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        client.delete_repository(repositoryName="nope")
    assert error_code(e) == "RepositoryNotFoundException"
    with pytest.raises(ClientError) as e:
        client.get_signing_configuration()
    assert error_code(e) == "SigningConfigurationNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["ResponseMetadata"]["RequestId"]

    # A repository holding an image is deleted only with force.
    push_image(ecr_berth, "errs", "v1")
    with pytest.raises(ClientError) as e:
        client.delete_repository(repositoryName="errs")
    assert error_code(e) == "RepositoryNotEmptyException"
    assert "cannot be deleted because it still contains images" in e.value.response["Error"]["Message"]
    client.delete_repository(repositoryName="errs", force=True)
    with pytest.raises(ClientError):
        client.describe_repositories(repositoryNames=["errs"])


def signed_post(berth, target, body=b"{}", key=ROOT_KEY, tamper=None):
    """A raw ECR request signed by botocore's own SigV4 signer."""
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=berth.url + "/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{TARGET}.{target}"},
    )
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*key), "ecr", REGION).add_auth(request)
    prepared = request.prepare()
    data = tamper(prepared.body) if tamper else prepared.body
    req = urllib.request.Request(berth.url + "/", data=data, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_signatures_are_verified(ecr_berth):
    assert signed_post(ecr_berth, "DescribeRegistry")[1]["registryId"] == ACCOUNT

    status, body = signed_post(ecr_berth, "DescribeRegistry", key=(ROOT_KEY[0], "wrong secret"))
    assert (status, body["__type"]) == (400, "InvalidSignatureException")
    status, body = signed_post(ecr_berth, "DescribeRegistry", key=("AKIAUNKNOWNKEY000000", ROOT_KEY[1]))
    assert body["__type"] == "UnrecognizedClientException"
    # Forged: the body changed after signing.
    status, body = signed_post(
        ecr_berth, "DescribeRepositories", body=b'{"maxResults": 5}', tamper=lambda b: b.replace(b"5", b"6")
    )
    assert body["__type"] == "InvalidSignatureException"
    # Stale: signed correctly, ten minutes ago.
    stale = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=10)
    with mock.patch("botocore.auth.get_current_datetime", return_value=stale):
        status, body = signed_post(ecr_berth, "DescribeRegistry")
    assert body["__type"] == "InvalidSignatureException"
    assert body["message"].startswith("Signature expired")
    # Not signed at all.
    req = urllib.request.Request(
        ecr_berth.url + "/", data=b"{}", method="POST",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{TARGET}.DescribeRegistry"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert json.load(e.value)["__type"] == "MissingAuthenticationTokenException"
    # Signed for another region.
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=ecr_berth.url + "/", data=b"{}",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{TARGET}.DescribeRegistry"},
    )
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*ROOT_KEY), "ecr", "ap-south-1").add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(ecr_berth.url + "/", data=prepared.body, headers=dict(prepared.headers), method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert json.load(e.value)["__type"] == "InvalidSignatureException"
    # Signed, but an operation ECR does not have.
    assert signed_post(ecr_berth, "FlyToTheMoon")[1]["__type"] == "UnknownOperationException"
    # Signed, but not JSON.
    assert signed_post(ecr_berth, "DescribeRegistry", body=b"{not json")[1]["__type"] == "SerializationException"


def test_get_login_password_and_authorization_token(ecr_berth):
    code, password, err = aws(ecr_berth, "ecr", "get-login-password")
    assert code == 0, err
    password = password.strip()
    data = ecr(ecr_berth).get_authorization_token()["authorizationData"][0]
    user, _, token_password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and token_password.startswith("berth1.")
    assert password.startswith("berth1.")
    expires = data["expiresAt"].timestamp()
    assert abs(expires - (time.time() + 12 * 3600)) < 120
    assert data["proxyEndpoint"] == ecr_berth.url


def test_generated_root_credentials_work_with_the_cli():
    from conftest import Berth

    server = Berth()
    try:
        credentials = os.path.join(server.data, "root-credentials")
        assert oct(os.stat(credentials).st_mode & 0o777) == "0o600"
        code, out, err = aws(
            server, "ecr", "describe-registry",
            env={
                "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": credentials,
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        )
        assert code == 0, err
        assert json.loads(out)["registryId"] == "000000000000"
    finally:
        server.stop()


def push_image(berth, repo, tag, seed="x"):
    """Pushes a one-layer image over /v2 with urllib; returns its manifest digest."""
    import hashlib

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(
            f"{berth.url}/v2/{repo}/blobs/uploads/?digest={digest}", data=data, method="POST",
            headers={"Authorization": basic_auth()},
        )
        assert urllib.request.urlopen(req).status == 201
        return {"digest": digest, "size": len(data)}

    config = blob(json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode())
    layer = blob(f"layer {seed}".encode())
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
    }).encode()
    req = urllib.request.Request(
        f"{berth.url}/v2/{repo}/manifests/{tag}", data=manifest, method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Authorization": basic_auth()},
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 201
        return r.headers["Docker-Content-Digest"]


def test_push_needs_the_repository_to_exist(ecr_berth):
    with pytest.raises(urllib.error.HTTPError) as e:
        push_image(ecr_berth, "not-created", "v1")
    assert e.value.code == 404
    error = json.load(e.value)["errors"][0]
    assert error["code"] == "NAME_UNKNOWN"
    assert error["message"] == (
        f"The repository with name 'not-created' does not exist in the registry with id '{ACCOUNT}'"
    )


def test_immutable_tags_cannot_move(ecr_berth):
    client = ecr(ecr_berth)
    client.create_repository(repositoryName="frozen", imageTagMutability="IMMUTABLE")
    push_image(ecr_berth, "frozen", "v1", seed="a")
    push_image(ecr_berth, "frozen", "v1", seed="a")  # the same image again is fine
    with pytest.raises(urllib.error.HTTPError) as e:
        push_image(ecr_berth, "frozen", "v1", seed="b")
    assert e.value.code == 400
    error = json.load(e.value)["errors"][0]
    assert error["code"] == "TAG_INVALID"
    assert error["message"] == (
        "The image tag 'v1' already exists in the 'frozen' repository and cannot be overwritten "
        "because the repository is immutable."
    )
    push_image(ecr_berth, "frozen", "v2", seed="b")  # a new tag is fine


def test_tag_mutability_exclusion_filters(ecr_berth):
    client = ecr(ecr_berth)
    filters = [{"filterType": "WILDCARD", "filter": "latest"}, {"filterType": "WILDCARD", "filter": "dev-*"}]
    created = client.create_repository(repositoryName="mostly-frozen", imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
                                       imageTagMutabilityExclusionFilters=filters)["repository"]
    assert created["imageTagMutabilityExclusionFilters"] == filters
    for tag in ("latest", "dev-7"):  # excluded: these move freely
        push_image(ecr_berth, "mostly-frozen", tag, seed="a")
        push_image(ecr_berth, "mostly-frozen", tag, seed="b")
    push_image(ecr_berth, "mostly-frozen", "v1", seed="a")
    with pytest.raises(urllib.error.HTTPError) as e:
        push_image(ecr_berth, "mostly-frozen", "v1", seed="b")
    assert e.value.code == 400

    release = [{"filterType": "WILDCARD", "filter": "release-*"}]
    put = client.put_image_tag_mutability(repositoryName="mostly-frozen", imageTagMutability="MUTABLE_WITH_EXCLUSION",
                                          imageTagMutabilityExclusionFilters=release)
    assert put["imageTagMutability"] == "MUTABLE_WITH_EXCLUSION"
    assert put["imageTagMutabilityExclusionFilters"] == release
    push_image(ecr_berth, "mostly-frozen", "v1", seed="b")  # mutable now
    push_image(ecr_berth, "mostly-frozen", "release-1", seed="a")
    with pytest.raises(urllib.error.HTTPError):
        push_image(ecr_berth, "mostly-frozen", "release-1", seed="b")
    described = client.describe_repositories(repositoryNames=["mostly-frozen"])["repositories"][0]
    assert described["imageTagMutabilityExclusionFilters"] == release

    for setting, given in [("IMMUTABLE_WITH_EXCLUSION", None), ("IMMUTABLE", release), ("MUTABLE", release)]:
        args = {"repositoryName": "mostly-frozen", "imageTagMutability": setting}
        if given:
            args["imageTagMutabilityExclusionFilters"] = given
        with pytest.raises(ClientError) as e:
            client.put_image_tag_mutability(**args)
        assert error_code(e) == "InvalidParameterException", setting
    client.put_image_tag_mutability(repositoryName="mostly-frozen", imageTagMutability="MUTABLE")
    assert "imageTagMutabilityExclusionFilters" not in \
        client.describe_repositories(repositoryNames=["mostly-frozen"])["repositories"][0]


def test_repository_settings_and_resource_tags(ecr_berth):
    client = ecr(ecr_berth)
    arn = client.create_repository(repositoryName="tagged", tags=[{"Key": "team", "Value": "a"}])["repository"][
        "repositoryArn"
    ]
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "a"}]
    client.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "b"}, {"Key": "env", "Value": "prod"}])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"Key": "env", "Value": "prod"},
        {"Key": "team", "Value": "b"},
    ]
    client.untag_resource(resourceArn=arn, tagKeys=["team", "absent"])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "env", "Value": "prod"}]

    with pytest.raises(ClientError) as e:
        client.tag_resource(resourceArn=arn, tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert error_code(e) == "TooManyTagsException"
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "env", "Value": "prod"}]
    with pytest.raises(ClientError) as e:
        client.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}])
    assert error_code(e) == "InvalidTagParameterException"
    with pytest.raises(ClientError) as e:
        client.list_tags_for_resource(resourceArn=arn.replace("tagged", "missing"))
    assert error_code(e) == "RepositoryNotFoundException"
    with pytest.raises(ClientError) as e:
        client.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")
    assert error_code(e) == "InvalidParameterException"

    out = client.put_image_tag_mutability(repositoryName="tagged", imageTagMutability="IMMUTABLE")
    assert (out["registryId"], out["repositoryName"], out["imageTagMutability"]) == (ACCOUNT, "tagged", "IMMUTABLE")
    out = client.put_image_scanning_configuration(
        repositoryName="tagged", imageScanningConfiguration={"scanOnPush": True}
    )
    assert out["imageScanningConfiguration"] == {"scanOnPush": True}
    repo = client.describe_repositories(repositoryNames=["tagged"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    with pytest.raises(ClientError) as e:
        client.put_image_tag_mutability(repositoryName="missing", imageTagMutability="MUTABLE")
    assert error_code(e) == "RepositoryNotFoundException"

    # Mutability set after creation is enforced too.
    push_image(ecr_berth, "tagged", "v1", seed="a")
    with pytest.raises(urllib.error.HTTPError):
        push_image(ecr_berth, "tagged", "v1", seed="b")
    client.put_image_tag_mutability(repositoryName="tagged", imageTagMutability="MUTABLE")
    push_image(ecr_berth, "tagged", "v1", seed="b")


def manifest_for(ecr_berth, repo, seed):
    """An OCI manifest over a config and layer pushed through /v2, varied by `seed` annotations."""
    import hashlib

    blobs = []
    for data in (b'{"architecture":"amd64","os":"linux"}', b"shared layer"):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(
            f"{ecr_berth.url}/v2/{repo}/blobs/uploads/?digest={digest}", data=data, method="POST",
            headers={"Authorization": basic_auth()},
        )
        urllib.request.urlopen(req)
        blobs.append({"digest": digest, "size": len(data)})
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blobs[0]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blobs[1]}],
        "annotations": {"seed": str(seed)},
    })


def test_image_cycle(ecr_berth):
    client = ecr(ecr_berth)
    client.create_repository(repositoryName="images")
    first = manifest_for(ecr_berth, "images", 1)
    put = client.put_image(repositoryName="images", imageManifest=first, imageTag="v1")["image"]
    digest = put["imageId"]["imageDigest"]
    assert put["imageManifestMediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert put["imageId"]["imageTag"] == "v1"

    with pytest.raises(ClientError) as e:
        client.put_image(repositoryName="images", imageManifest=first, imageTag="v1")
    assert error_code(e) == "ImageAlreadyExistsException"
    client.put_image(repositoryName="images", imageManifest=first, imageTag="latest")
    with pytest.raises(ClientError) as e:
        client.put_image(repositoryName="images", imageManifest=first, imageDigest="sha256:" + "0" * 64)
    assert error_code(e) == "ImageDigestDoesNotMatchException"
    missing_layer = first.replace(json.loads(first)["layers"][0]["digest"], "sha256:" + "1" * 64)
    with pytest.raises(ClientError) as e:
        client.put_image(repositoryName="images", imageManifest=missing_layer, imageTag="broken")
    assert error_code(e) == "LayersNotFoundException"
    with pytest.raises(ClientError) as e:
        client.put_image(repositoryName="images", imageManifest="{not json", imageTag="broken")
    assert error_code(e) == "InvalidParameterException"
    untagged = manifest_for(ecr_berth, "images", 2)
    client.put_image(repositoryName="images", imageManifest=untagged)

    ids = client.list_images(repositoryName="images")["imageIds"]
    assert sorted((i["imageDigest"], i.get("imageTag")) for i in ids) == sorted(
        [(digest, "latest"), (digest, "v1"), ("sha256:" + __import__("hashlib").sha256(untagged.encode()).hexdigest(), None)]
    )
    tagged = client.list_images(repositoryName="images", filter={"tagStatus": "TAGGED"})["imageIds"]
    assert {i.get("imageTag") for i in tagged} == {"latest", "v1"}
    assert len(client.list_images(repositoryName="images", filter={"tagStatus": "UNTAGGED"})["imageIds"]) == 1

    details = client.describe_images(repositoryName="images", imageIds=[{"imageTag": "v1"}])["imageDetails"]
    assert len(details) == 1
    d = details[0]
    assert d["imageDigest"] == digest and d["imageTags"] == ["latest", "v1"]
    assert d["imageSizeInBytes"] == len(b"shared layer")
    assert d["artifactMediaType"] == "application/vnd.oci.image.config.v1+json"
    assert abs(d["imagePushedAt"].timestamp() - time.time()) < 60
    with pytest.raises(ClientError) as e:
        client.describe_images(repositoryName="images", imageIds=[{"imageTag": "nope"}])
    assert error_code(e) == "ImageNotFoundException"

    got = client.batch_get_image(
        repositoryName="images",
        imageIds=[{"imageTag": "v1"}, {"imageTag": "nope"}, {"imageDigest": digest, "imageTag": "wrong"}],
    )
    assert got["images"][0]["imageManifest"] == first
    assert sorted(f["failureCode"] for f in got["failures"]) == ["ImageNotFound", "ImageTagDoesNotMatchDigest"]
    refused = client.batch_get_image(
        repositoryName="images", imageIds=[{"imageTag": "v1"}],
        acceptedMediaTypes=["application/vnd.docker.distribution.manifest.v2+json"],
    )
    assert refused["images"] == [] and refused["failures"][0]["failureCode"] == "UnsupportedImageType"

    # By tag: that tag only. The last tag takes the image with it.
    out = client.batch_delete_image(repositoryName="images", imageIds=[{"imageTag": "latest"}, {"imageTag": "nope"}])
    assert out["imageIds"] == [{"imageDigest": digest, "imageTag": "latest"}]
    assert out["failures"][0]["failureCode"] == "ImageNotFound"
    assert client.describe_images(repositoryName="images", imageIds=[{"imageDigest": digest}])["imageDetails"][0][
        "imageTags"] == ["v1"]
    client.batch_delete_image(repositoryName="images", imageIds=[{"imageTag": "v1"}])
    with pytest.raises(ClientError):
        client.describe_images(repositoryName="images", imageIds=[{"imageDigest": digest}])

    # An image put with the API is pullable over /v2 with the same bytes.
    client.put_image(repositoryName="images", imageManifest=first, imageTag="again")
    req = urllib.request.Request(
        f"{ecr_berth.url}/v2/images/manifests/again",
        headers={"Authorization": basic_auth(), "Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req) as r:
        assert r.read().decode() == first
    # That pull is recorded (in the background, so allow it a moment).
    deadline = time.time() + 5
    while True:
        detail = client.describe_images(repositoryName="images", imageIds=[{"imageTag": "again"}])["imageDetails"][0]
        if "lastRecordedPullTime" in detail or time.time() > deadline:
            break
        time.sleep(0.1)
    assert abs(detail["lastRecordedPullTime"].timestamp() - time.time()) < 60


def test_pagination_through_1200_images(ecr_berth):
    client = ecr(ecr_berth)
    client.create_repository(repositoryName="many")
    base = json.loads(manifest_for(ecr_berth, "many", 0))
    expected = set()
    for i in range(1200):
        base["annotations"] = {"seed": str(i)}
        body = json.dumps(base)
        tag = f"t{i:04d}" if i % 3 else None
        kwargs = {"imageTag": tag} if tag else {}
        digest = client.put_image(repositoryName="many", imageManifest=body, **kwargs)["image"]["imageId"][
            "imageDigest"]
        expected.add((digest, tag))
    list_pages = client.get_paginator("list_images")
    describe_pages = client.get_paginator("describe_images")
    for size in (7, 100, 1000):
        seen = []
        for page in list_pages.paginate(repositoryName="many", PaginationConfig={"PageSize": size}):
            assert len(page["imageIds"]) <= size
            seen.extend((i["imageDigest"], i.get("imageTag")) for i in page["imageIds"])
        assert len(seen) == 1200 and set(seen) == expected, size
        details = []
        for page in describe_pages.paginate(repositoryName="many", PaginationConfig={"PageSize": size}):
            assert len(page["imageDetails"]) <= size
            details.extend(page["imageDetails"])
        assert {d["imageDigest"] for d in details} == {d for d, _ in expected}, size


def test_layers_through_the_api(ecr_berth, workdir):
    import hashlib

    client = ecr(ecr_berth)
    client.create_repository(repositoryName="layers")
    layer = bytes(range(256)) * (6 * 1024 * 1024 // 256 + 100)  # a little over 6 MiB
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()

    upload = client.initiate_layer_upload(repositoryName="layers")
    upload_id = upload["uploadId"]
    assert upload["partSize"] >= 5 * 1024 * 1024
    with pytest.raises(ClientError) as e:
        client.complete_layer_upload(repositoryName="layers", uploadId=upload_id, layerDigests=[layer_digest])
    assert error_code(e) == "EmptyUploadException"

    cut = 5 * 1024 * 1024
    out = client.upload_layer_part(
        repositoryName="layers", uploadId=upload_id, partFirstByte=0, partLastByte=cut - 1, layerPartBlob=layer[:cut]
    )
    assert out["lastByteReceived"] == cut - 1
    with pytest.raises(ClientError) as e:  # not contiguous
        client.upload_layer_part(
            repositoryName="layers", uploadId=upload_id, partFirstByte=cut + 1, partLastByte=cut + 10,
            layerPartBlob=layer[cut + 1:cut + 11],
        )
    assert error_code(e) == "InvalidLayerPartException"
    assert e.value.response["lastValidByteReceived"] == cut - 1
    client.upload_layer_part(
        repositoryName="layers", uploadId=upload_id, partFirstByte=cut, partLastByte=len(layer) - 1,
        layerPartBlob=layer[cut:],
    )
    done = client.complete_layer_upload(repositoryName="layers", uploadId=upload_id, layerDigests=[layer_digest])
    assert done["layerDigest"] == layer_digest
    with pytest.raises(ClientError) as e:
        client.complete_layer_upload(repositoryName="layers", uploadId=upload_id, layerDigests=[layer_digest])
    assert error_code(e) == "UploadNotFoundException"

    # A small part followed by another is refused on completion (where ECR's
    # model declares it); a wrong digest discards the upload.
    small = client.initiate_layer_upload(repositoryName="layers")["uploadId"]
    client.upload_layer_part(repositoryName="layers", uploadId=small, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc")
    client.upload_layer_part(repositoryName="layers", uploadId=small, partFirstByte=3, partLastByte=5, layerPartBlob=b"def")
    with pytest.raises(ClientError) as e:
        client.complete_layer_upload(repositoryName="layers", uploadId=small, layerDigests=["sha256:" + "2" * 64])
    assert error_code(e) == "LayerPartTooSmallException"
    small = client.initiate_layer_upload(repositoryName="layers")["uploadId"]
    client.upload_layer_part(repositoryName="layers", uploadId=small, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc")
    with pytest.raises(ClientError) as e:
        client.complete_layer_upload(repositoryName="layers", uploadId=small, layerDigests=["sha256:" + "2" * 64])
    assert error_code(e) == "InvalidLayerException"
    again = client.initiate_layer_upload(repositoryName="layers")["uploadId"]
    client.upload_layer_part(repositoryName="layers", uploadId=again, partFirstByte=0, partLastByte=len(layer) - 1,
                             layerPartBlob=layer)
    with pytest.raises(ClientError) as e:
        client.complete_layer_upload(repositoryName="layers", uploadId=again, layerDigests=[layer_digest])
    assert error_code(e) == "LayerAlreadyExistsException"

    checked = client.batch_check_layer_availability(
        repositoryName="layers", layerDigests=[layer_digest, "sha256:" + "3" * 64, "nonsense"]
    )
    assert checked["layers"] == [{"layerDigest": layer_digest, "layerAvailability": "AVAILABLE", "layerSize": len(layer)}]
    assert sorted(f["failureCode"] for f in checked["failures"]) == ["InvalidLayerDigest", "MissingLayerDigest"]

    # Not yet part of an image: no download URL.
    with pytest.raises(ClientError) as e:
        client.get_download_url_for_layer(repositoryName="layers", layerDigest=layer_digest)
    assert error_code(e) == "LayerInaccessibleException"
    with pytest.raises(ClientError) as e:
        client.get_download_url_for_layer(repositoryName="layers", layerDigest="sha256:" + "4" * 64)
    assert error_code(e) == "LayersNotFoundException"

    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    upload_id = client.initiate_layer_upload(repositoryName="layers")["uploadId"]
    client.upload_layer_part(repositoryName="layers", uploadId=upload_id, partFirstByte=0,
                             partLastByte=len(config) - 1, layerPartBlob=config)
    client.complete_layer_upload(repositoryName="layers", uploadId=upload_id, layerDigests=[config_digest])
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_digest,
                    "size": len(layer)}],
    })
    client.put_image(repositoryName="layers", imageManifest=manifest, imageTag="api")

    url = client.get_download_url_for_layer(repositoryName="layers", layerDigest=layer_digest)["downloadUrl"]
    with urllib.request.urlopen(url) as r:  # no credentials at all
        assert r.read() == layer
    # From berth itself, or from the object store (S3 presigned): a changed signature fails.
    signature = "X-Berth-Signature=" if "X-Berth-Signature=" in url else "X-Amz-Signature="
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url.replace(signature, signature + "0"))
    assert e.value.code in (400, 401, 403)  # s3s-fs answers 400, S3 403, berth 401

    # And skopeo, logged in the ECR way, pulls the image put through the API.
    code, password, err = aws(ecr_berth, "ecr", "get-login-password")
    auth = os.path.join(workdir, "auth.json")
    subprocess.run(["skopeo", "login", "--authfile", auth, "--tls-verify=false", "--username", "AWS",
                    "--password-stdin", ecr_berth.host], input=password, text=True, check=True, capture_output=True)
    out = os.path.join(workdir, "pulled")
    result = subprocess.run(["skopeo", "copy", "--authfile", auth, "--src-tls-verify=false",
                             f"docker://{ecr_berth.host}/layers:api", f"dir:{out}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(out, layer_digest.split(":")[1]), "rb") as f:
        assert f.read() == layer


def test_public_url_and_the_endpoint_environment_variable():
    from conftest import Berth, root_env

    server = Berth(extra=["--public-url", "https://registry.example.com:8443/"], env=root_env())
    try:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ROOT_KEY[0],
            "AWS_SECRET_ACCESS_KEY": ROOT_KEY[1],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_ENDPOINT_URL_ECR": server.url,  # instead of --endpoint-url, as SDKs allow
        }
        out = subprocess.run(["aws", "ecr", "create-repository", "--repository-name", "pub"],
                             capture_output=True, text=True, env=env, check=True).stdout
        assert json.loads(out)["repository"]["repositoryUri"] == "registry.example.com:8443/pub"
        out = subprocess.run(["aws", "ecr", "get-authorization-token"],
                             capture_output=True, text=True, env=env, check=True).stdout
        assert json.loads(out)["authorizationData"][0]["proxyEndpoint"] == "https://registry.example.com:8443"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{server.url}/v2/")
        assert e.value.code == 401
        assert e.value.headers["WWW-Authenticate"] == (
            'Basic realm="https://registry.example.com:8443/",service="ecr.amazonaws.com"'
        )
    finally:
        server.stop()


def test_account_settings_and_blob_mounting(ecr_berth):
    """`GetAccountSetting`/`PutAccountSetting` as the model says; with
    `BLOB_MOUNTING` disabled a `/v2/` mount answers with an upload session."""
    import urllib.request

    from conftest import basic_auth
    from test_scanning import push, request

    client = ecr(ecr_berth)
    assert client.get_account_setting(name="BLOB_MOUNTING")["value"] == "ENABLED"
    assert client.get_account_setting(name="BASIC_SCAN_TYPE_VERSION")["value"] == "AWS_NATIVE"
    assert client.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V1")["value"] == "V1"
    assert client.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"] == "V1"
    for name, value in (("NOPE", "X"), ("BLOB_MOUNTING", "SOMETIMES")):
        with pytest.raises(ClientError) as e:
            client.put_account_setting(name=name, value=value)
        assert error_code(e) == "InvalidParameterException"
    client.create_repository(repositoryName="src")
    client.create_repository(repositoryName="dst")
    from test_scanning import layer
    blob = layer({"m": b"mount me"})
    import hashlib
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    request(ecr_berth, "POST", f"/v2/src/blobs/uploads/?digest={digest}", blob)

    def mount():
        req = urllib.request.Request(f"{ecr_berth.url}/v2/dst/blobs/uploads/?mount={digest}&from=src",
                                     data=b"", method="POST", headers={"Authorization": basic_auth()})
        with urllib.request.urlopen(req) as r:
            return r.status

    client.put_account_setting(name="BLOB_MOUNTING", value="DISABLED")
    import time
    time.sleep(5.2)  # the setting is read at most every 5 s per node
    assert mount() == 202
    client.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
    time.sleep(5.2)
    assert mount() == 201


def test_list_image_referrers(ecr_berth):
    import hashlib

    from test_scanning import layer, push, request

    client = ecr(ecr_berth)
    client.create_repository(repositoryName="app")
    subject = push(ecr_berth, "app", "v1", [layer({"a": b"a"})])
    _, _, body = request(ecr_berth, "GET", f"/v2/app/manifests/{subject}", None,
                         {"Accept": "application/vnd.oci.image.manifest.v1+json"})
    made = []
    for artifact_type in ("application/spdx+json", "application/vnd.dev.cosign.artifact.sig.v1+json"):
        empty = b"{}"
        d = "sha256:" + hashlib.sha256(empty).hexdigest()
        request(ecr_berth, "POST", f"/v2/app/blobs/uploads/?digest={d}", empty)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "artifactType": artifact_type,
                               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d, "size": 2},
                               "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": d, "size": 2}],
                               "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                           "digest": subject, "size": len(body)}}).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        request(ecr_berth, "PUT", f"/v2/app/manifests/{digest}", manifest,
                {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        made.append(digest)
    listed = client.list_image_referrers(repositoryName="app", subjectId={"imageDigest": subject})
    assert sorted(r["digest"] for r in listed["referrers"]) == sorted(made)
    assert all(r["artifactStatus"] == "ACTIVE" for r in listed["referrers"])
    sboms = client.list_image_referrers(repositoryName="app", subjectId={"imageDigest": subject},
                                        filter={"artifactTypes": ["application/spdx+json"]})
    assert [r["artifactType"] for r in sboms["referrers"]] == ["application/spdx+json"]
    first = client.list_image_referrers(repositoryName="app", subjectId={"imageDigest": subject}, maxResults=1)
    assert len(first["referrers"]) == 1 and "nextToken" in first
    rest = client.list_image_referrers(repositoryName="app", subjectId={"imageDigest": subject},
                                       maxResults=1, nextToken=first["nextToken"])
    assert len(rest["referrers"]) == 1 and "nextToken" not in rest
    with pytest.raises(ClientError) as e:
        client.list_image_referrers(repositoryName="nope", subjectId={"imageDigest": subject})
    assert error_code(e) == "RepositoryNotFoundException"


def test_pull_time_update_exclusions(ecr_berth):
    """Pulls by excluded principals (a user; a role, through its sessions)
    leave `lastRecordedPullTime` alone; the list is ECR's, errors and paging."""
    from conftest import client

    ecr_client = ecr(ecr_berth)
    iam = client(ecr_berth, "iam")
    scanner_arn = f"arn:aws:iam::{ACCOUNT}:user/scanner"
    prober_arn = f"arn:aws:iam::{ACCOUNT}:role/ci/prober"
    iam.create_user(UserName="scanner")
    iam.put_user_policy(UserName="scanner", PolicyName="pull", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ecr:*", "sts:AssumeRole"], "Resource": "*"}]}))
    created = iam.create_access_key(UserName="scanner")["AccessKey"]
    scanner = (created["AccessKeyId"], created["SecretAccessKey"])
    iam.create_role(RoleName="prober", Path="/ci/", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                               "Principal": {"AWS": scanner_arn}}]}))
    iam.put_role_policy(RoleName="prober", PolicyName="pull", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}))

    registered = ecr_client.register_pull_time_update_exclusion(principalArn=scanner_arn)
    assert registered["principalArn"] == scanner_arn
    assert abs(registered["createdAt"].timestamp() - time.time()) < 60
    ecr_client.register_pull_time_update_exclusion(principalArn=prober_arn)
    ecr_client.register_pull_time_update_exclusion(principalArn=f"arn:aws:iam::{ACCOUNT}:user/other")
    with pytest.raises(ClientError) as e:
        ecr_client.register_pull_time_update_exclusion(principalArn=scanner_arn)
    assert error_code(e) == "ExclusionAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        ecr_client.register_pull_time_update_exclusion(principalArn=f"arn:aws:iam::{ACCOUNT}:group/devs")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ecr_client.deregister_pull_time_update_exclusion(principalArn=f"arn:aws:iam::{ACCOUNT}:user/nobody")
    assert error_code(e) == "ExclusionNotFoundException"
    first = ecr_client.list_pull_time_update_exclusions(maxResults=2)
    assert first["pullTimeUpdateExclusions"] == [prober_arn, f"arn:aws:iam::{ACCOUNT}:user/other"]
    rest = ecr_client.list_pull_time_update_exclusions(maxResults=2, nextToken=first["nextToken"])
    assert rest["pullTimeUpdateExclusions"] == [scanner_arn] and "nextToken" not in rest

    ecr_client.create_repository(repositoryName="probed")
    push_image(ecr_berth, "probed", "scanned", seed="scanned")
    push_image(ecr_berth, "probed", "probed", seed="probed")
    push_image(ecr_berth, "probed", "used", seed="used")

    def pulled(tag):
        detail = ecr_client.describe_images(repositoryName="probed", imageIds=[{"imageTag": tag}])["imageDetails"][0]
        return "lastRecordedPullTime" in detail

    # The scanner pulls through both doors; a session of the excluded role through the API.
    ecr(ecr_berth, key=scanner).batch_get_image(repositoryName="probed", imageIds=[{"imageTag": "scanned"}])
    req = urllib.request.Request(
        f"{ecr_berth.url}/v2/probed/manifests/scanned",
        headers={"Authorization": basic_auth(*scanner), "Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert urllib.request.urlopen(req).status == 200
    session = client(ecr_berth, "sts", key=scanner).assume_role(RoleArn=prober_arn, RoleSessionName="probe")["Credentials"]
    boto3.client("ecr", endpoint_url=ecr_berth.url, region_name=REGION,
                 aws_access_key_id=session["AccessKeyId"], aws_secret_access_key=session["SecretAccessKey"],
                 aws_session_token=session["SessionToken"]).batch_get_image(
        repositoryName="probed", imageIds=[{"imageTag": "probed"}])
    # Someone not excluded pulls the third.
    ecr_client.batch_get_image(repositoryName="probed", imageIds=[{"imageTag": "used"}])
    deadline = time.time() + 10
    while not pulled("used"):
        assert time.time() < deadline, "the pull by the root was not recorded"
        time.sleep(0.1)
    time.sleep(1)  # pulls are recorded in the background
    assert not pulled("scanned") and not pulled("probed")

    # Deregistered, the scanner's pulls count again.
    assert ecr_client.deregister_pull_time_update_exclusion(principalArn=scanner_arn)["principalArn"] == scanner_arn
    ecr(ecr_berth, key=scanner).batch_get_image(repositoryName="probed", imageIds=[{"imageTag": "scanned"}])
    deadline = time.time() + 10
    while not pulled("scanned"):
        assert time.time() < deadline, "the scanner's pull was not recorded once it was deregistered"
        time.sleep(0.1)
    assert scanner_arn not in ecr_client.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
