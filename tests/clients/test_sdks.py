"""Three AWS SDK families against the real binary, unchanged but for the endpoint.

The same scenario with each: create a repository (and again: a typed
RepositoryAlreadyExistsException), get a token and use it on /v2/, push one image
with the API's layer operations (InitiateLayerUpload, UploadLayerPart,
CompleteLayerUpload, PutImage) and one over /v2/ with the token, more images so
that ListImages, DescribeImages and DescribeRepositories take several pages
through each SDK's own paginator, timestamps parsed as the SDK's date type,
BatchGetImage returning the manifests as pushed, typed errors with status 400,
empty lists, and DeleteRepository with force.

- boto3: in this file.
- the AWS SDK for JavaScript v3 (`@aws-sdk/client-ecr`): tests/sdk/js/scenario.mjs,
  run with the machine's Node (`npm ci` first if tests/sdk/js/node_modules is missing).
- the AWS SDK for Rust (`aws-sdk-ecr`): tests/sdk/rust, a standalone Cargo project
  built here with `cargo build -j 1 --locked` (a no-op when up to date).

Each SDK parses responses its own way (timestamps, empty lists, content types,
error shapes), which is where an emulator breaks.
"""

import base64
import datetime
import hashlib
import json
import os
import subprocess
import time
import urllib.request

import boto3
import botocore.exceptions
import pytest

from conftest import ACCOUNT, REGION, ROOT, ROOT_KEY

SDK_DIR = os.path.join(ROOT, "tests", "sdk")
JS_DIR = os.path.join(SDK_DIR, "js")
RUST_DIR = os.path.join(SDK_DIR, "rust")
RUST_TARGET = os.path.join(RUST_DIR, "target")
RUST_BIN = os.path.join(RUST_TARGET, "debug", "berth-sdk-scenario")

REPO = "sdk/app"
EXTRA_REPOS = ["sdk/extra-1", "sdk/extra-2", "sdk/extra-3", "sdk/extra-4"]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# What every SDK's scenario must end with.
EXPECTED_ERRORS = {
    "BatchDeleteImage": "RepositoryNotFoundException",
    "CreateRepository": "RepositoryAlreadyExistsException",
    "CreateRepository(invalid name)": "ValidationException",  # not in the operation's model: a generic error
    "DeleteRepository": "RepositoryNotEmptyException",
    "DescribeImages": "ImageNotFoundException",
    "DescribeRepositories": "RepositoryNotFoundException",
    "PutImage": "ImageAlreadyExistsException",
}
# 8 images under 9 (digest, tag) pairs; 5 repositories; pages of 2, 3 and 2.
EXPECTED_PAGES = {"ListImages": 5, "DescribeImages": 3, "DescribeRepositories": 3}


def sdk_env(berth):
    """The environment of an SDK process: the endpoint, region and root key, and
    nothing of the caller's AWS settings (CI exports S3 keys for berth itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL": berth.url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ROOT_KEY[0],
        "AWS_SECRET_ACCESS_KEY": ROOT_KEY[1],
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    return env


def run(command, cwd, timeout, env=None):
    """Runs `command`; returns the CompletedProcess (never raises on exit status)."""
    try:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(command)} took more than {timeout}s\n--- stdout\n{e.stdout}\n--- stderr\n{e.stderr}")


def report(result) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def check_summary(summary, berth, sdk):
    """What every SDK's scenario must report."""
    assert summary.get("sdk") == sdk, summary
    assert "fatal" not in summary, summary["fatal"]
    assert summary["failures"] == [], "\n".join(summary["failures"])
    assert summary["account"] == ACCOUNT
    assert summary["repositoryUri"] == f"{berth.host}/{REPO}"
    assert summary["proxyEndpoint"] == berth.url
    assert summary["tokenUser"] == "AWS"
    assert (summary["images"], summary["imageIds"]) == (8, 9)
    assert summary["pages"] == EXPECTED_PAGES
    assert summary["errors"] == EXPECTED_ERRORS
    assert summary["errorStatuses"] == [400]
    assert summary["checks"] >= 100, summary["checks"]  # the scenario ran to its end


def check_process(result, berth, sdk):
    """Asserts that an SDK process ran its scenario cleanly; prints its output either way."""
    print(report(result))
    try:
        summary = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"{sdk}: no JSON summary\n{report(result)}")
    check_summary(summary, berth, sdk)
    assert result.returncode == 0, report(result)


# -- boto3 -------------------------------------------------------------------


class Checks:
    def __init__(self):
        self.count = 0
        self.failures = []

    def check(self, ok, what):
        self.count += 1
        if not ok:
            self.failures.append(what() if callable(what) else what)

    def eq(self, what, got, want):
        self.check(got == want, lambda: f"{what}: got {got!r}, want {want!r}")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def near(value, expected, slack):
    """A timestamp botocore parsed into a timezone-aware datetime, within `slack` seconds."""
    return (
        isinstance(value, datetime.datetime)
        and value.tzinfo is not None
        and abs(value.timestamp() - expected) < slack
    )


def v2_request(url, method="GET", data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def boto3_scenario(berth):
    """The scenario with boto3; returns the same summary as the other SDKs print."""
    ecr = boto3.client(
        "ecr", endpoint_url=berth.url, region_name=REGION,
        aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
    )
    errors_module = ecr.exceptions
    c = Checks()
    started = time.time()
    errors = {}
    statuses = set()

    def expect_error(operation, call, error_class, **kwargs):
        try:
            call(**kwargs)
        except error_class as e:  # the modeled exception class botocore makes for ECR
            errors[operation] = e.response["Error"]["Code"]
            statuses.add(e.response["ResponseMetadata"]["HTTPStatusCode"])
            c.eq(f"{operation} status", e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
            c.check(bool(e.response["ResponseMetadata"].get("RequestId")), f"{operation}: no RequestId")
            return e
        except Exception as e:  # noqa: BLE001 - recorded as a mismatch
            c.check(False, f"{operation}: {type(e).__name__}: {e}")
            return None
        c.check(False, f"{operation} succeeded")
        return None

    # 1. CreateRepository, and again.
    repo = ecr.create_repository(repositoryName=REPO, imageTagMutability="MUTABLE")["repository"]
    account = repo["registryId"]
    c.eq("registryId", account, ACCOUNT)
    c.eq("repositoryName", repo["repositoryName"], REPO)
    c.eq("repositoryArn", repo["repositoryArn"], f"arn:aws:ecr:{REGION}:{account}:repository/{REPO}")
    c.eq("repositoryUri", repo["repositoryUri"], f"{berth.host}/{REPO}")
    c.eq("imageTagMutability", repo["imageTagMutability"], "MUTABLE")
    c.check(near(repo["createdAt"], started, 300), f"createdAt {repo['createdAt']!r}")
    for extra in EXTRA_REPOS:
        ecr.create_repository(repositoryName=extra)
    e = expect_error("CreateRepository", ecr.create_repository, errors_module.RepositoryAlreadyExistsException,
                     repositoryName=REPO)
    c.check(e is not None and "already exists" in e.response["Error"]["Message"], "already exists message")

    # An error outside CreateRepository's model (berth answers ValidationException, as
    # AWS's request validation does): botocore's generic ClientError, with its code.
    try:
        ecr.create_repository(repositoryName="Sdk/Upper")
        c.check(False, "CreateRepository of an invalid name succeeded")
    except botocore.exceptions.ClientError as e:
        errors["CreateRepository(invalid name)"] = e.response["Error"]["Code"]
        statuses.add(e.response["ResponseMetadata"]["HTTPStatusCode"])
        c.check("Sdk/Upper" in e.response["Error"]["Message"], f"message {e.response['Error']['Message']!r}")

    # 2. GetAuthorizationToken.
    data_list = ecr.get_authorization_token()["authorizationData"]
    c.eq("authorizationData entries", len(data_list), 1)
    data = data_list[0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    c.eq("token user", user, "AWS")
    c.check(bool(password), "empty token password")
    c.eq("proxyEndpoint", data["proxyEndpoint"], berth.url)
    c.check(near(data["expiresAt"], started + 12 * 3600, 300), f"expiresAt {data['expiresAt']!r}")
    basic = "Basic " + data["authorizationToken"]
    c.eq("GET /v2/ with the token", v2_request(f"{berth.url}/v2/", headers={"Authorization": basic})[0], 200)

    # 3. Push with the API's layer operations, then PutImage (Docker v2 manifest).
    config_blob = (b'{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]},'
                   b'"seed":"boto3-api"}')
    layer_blob = b"a layer pushed with UploadLayerPart by boto3\n" * 64
    sizes = {}
    for blob in (config_blob, layer_blob):
        digest = sha256(blob)
        upload = ecr.initiate_layer_upload(repositoryName=REPO)
        c.check(upload["partSize"] >= 5 * 1024 * 1024, f"partSize {upload['partSize']}")
        part = ecr.upload_layer_part(repositoryName=REPO, uploadId=upload["uploadId"], partFirstByte=0,
                                     partLastByte=len(blob) - 1, layerPartBlob=blob)
        c.eq("UploadLayerPart lastByteReceived", part["lastByteReceived"], len(blob) - 1)
        c.eq("UploadLayerPart uploadId", part["uploadId"], upload["uploadId"])
        done = ecr.complete_layer_upload(repositoryName=REPO, uploadId=upload["uploadId"], layerDigests=[digest])
        c.eq("CompleteLayerUpload layerDigest", done["layerDigest"], digest)
        sizes[digest] = len(blob)
    checked = ecr.batch_check_layer_availability(repositoryName=REPO, layerDigests=list(sizes))
    c.eq("BatchCheckLayerAvailability layers", len(checked["layers"]), 2)
    for layer in checked["layers"]:
        c.eq("layerAvailability", layer["layerAvailability"], "AVAILABLE")
        c.eq("layerSize", layer["layerSize"], sizes[layer["layerDigest"]])
    c.eq("BatchCheckLayerAvailability failures", checked.get("failures", []), [])
    v1_manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": sha256(layer_blob), "size": len(layer_blob)}],
    })
    v1_digest = sha256(v1_manifest.encode())
    image = ecr.put_image(repositoryName=REPO, imageManifest=v1_manifest, imageTag="v1")["image"]
    c.eq("PutImage digest", image["imageId"]["imageDigest"], v1_digest)
    c.eq("PutImage tag", image["imageId"]["imageTag"], "v1")
    c.eq("PutImage media type", image["imageManifestMediaType"], DOCKER_MANIFEST)
    ecr.put_image(repositoryName=REPO, imageManifest=v1_manifest, imageTag="latest")
    expect_error("PutImage", ecr.put_image, errors_module.ImageAlreadyExistsException,
                 repositoryName=REPO, imageManifest=v1_manifest, imageTag="v1")

    # 4. Push over /v2/ with the token (OCI manifest); pull the API's image back.
    v2_config = b'{"architecture":"arm64","os":"linux","seed":"boto3-v2"}'
    v2_layer = b"a layer pushed over /v2/ with the ECR token\n"
    for blob in (v2_config, v2_layer):
        status = v2_request(f"{berth.url}/v2/{REPO}/blobs/uploads/?digest={sha256(blob)}", "POST", blob,
                            {"Authorization": basic, "Content-Type": "application/octet-stream"})[0]
        c.eq("monolithic blob upload over /v2/", status, 201)
    v2_manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(v2_config), "size": len(v2_config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(v2_layer), "size": len(v2_layer)}],
    })
    v2_digest = sha256(v2_manifest.encode())
    status, headers, _ = v2_request(f"{berth.url}/v2/{REPO}/manifests/v2", "PUT", v2_manifest.encode(),
                                    {"Authorization": basic, "Content-Type": OCI_MANIFEST})
    c.eq("manifest PUT over /v2/", status, 201)
    c.eq("Docker-Content-Digest", headers.get("Docker-Content-Digest"), v2_digest)
    status, _, body = v2_request(f"{berth.url}/v2/{REPO}/manifests/v1",
                                 headers={"Authorization": basic, "Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"})
    c.eq("manifest GET over /v2/", status, 200)
    c.eq("pulled manifest", body.decode(), v1_manifest)

    # 5. More images: five tagged, one untagged.
    expected = {(v1_digest, "v1"), (v1_digest, "latest"), (v2_digest, "v2")}
    untagged_digest = None
    for i in range(1, 7):
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config_blob), "size": len(config_blob)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer_blob), "size": len(layer_blob)}],
            "annotations": {"seed": f"boto3-{i}"},
        })
        tag = f"t{i}" if i <= 5 else None
        put = ecr.put_image(repositoryName=REPO, imageManifest=manifest, imageManifestMediaType=OCI_MANIFEST,
                            **({"imageTag": tag} if tag else {}))
        digest = put["image"]["imageId"]["imageDigest"]
        c.eq("PutImage digest", digest, sha256(manifest.encode()))
        if tag is None:
            untagged_digest = digest
        expected.add((digest, tag))
    digests = {d for d, _ in expected}

    # 6. ListImages, two at a time.
    listed = []
    list_pages = 0
    for page in ecr.get_paginator("list_images").paginate(repositoryName=REPO, PaginationConfig={"PageSize": 2}):
        list_pages += 1
        c.check(len(page["imageIds"]) <= 2, f"ListImages page of {len(page['imageIds'])}")
        listed.extend((i["imageDigest"], i.get("imageTag")) for i in page["imageIds"])
    c.eq("ListImages entries", len(listed), len(expected))
    c.eq("ListImages ids", set(listed), expected)
    untagged = ecr.list_images(repositoryName=REPO, filter={"tagStatus": "UNTAGGED"})
    c.eq("ListImages UNTAGGED", [i["imageDigest"] for i in untagged["imageIds"]], [untagged_digest])
    c.check("nextToken" not in untagged, "a nextToken after the only page")
    empty_pages = list(ecr.get_paginator("list_images").paginate(repositoryName=EXTRA_REPOS[0],
                                                                 PaginationConfig={"PageSize": 2}))
    c.eq("ListImages of an empty repository: pages", len(empty_pages), 1)
    c.eq("ListImages of an empty repository: ids", [p["imageIds"] for p in empty_pages], [[]])

    # 7. DescribeImages, three at a time.
    details = []
    describe_pages = 0
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=REPO, PaginationConfig={"PageSize": 3}):
        describe_pages += 1
        c.check(len(page["imageDetails"]) <= 3, f"DescribeImages page of {len(page['imageDetails'])}")
        details.extend(page["imageDetails"])
    c.eq("DescribeImages digests", {d["imageDigest"] for d in details}, digests)
    c.eq("DescribeImages details", len(details), len(digests))
    for d in details:
        digest = d["imageDigest"]
        c.check(near(d.get("imagePushedAt"), started, 300), f"imagePushedAt of {digest}: {d.get('imagePushedAt')!r}")
        c.eq("registryId", d["registryId"], account)
        c.eq("repositoryName", d["repositoryName"], REPO)
        c.check(d.get("imageSizeInBytes", 0) > 0, f"imageSizeInBytes of {digest}")
        c.eq(f"imageTags of {digest}", sorted(d.get("imageTags", [])), sorted(t for g, t in expected if g == digest and t))
        c.eq(f"imageManifestMediaType of {digest}", d.get("imageManifestMediaType"),
             DOCKER_MANIFEST if digest == v1_digest else OCI_MANIFEST)
    v2_details = ecr.describe_images(repositoryName=REPO, imageIds=[{"imageTag": "v2"}])["imageDetails"]
    c.eq("DescribeImages v2", len(v2_details), 1)
    c.eq("v2 digest", v2_details[0]["imageDigest"], v2_digest)
    c.eq("v2 artifactMediaType", v2_details[0].get("artifactMediaType"), OCI_CONFIG)
    c.eq("v2 imageSizeInBytes", v2_details[0].get("imageSizeInBytes"), len(v2_layer))
    # The /v2/ pull of v1 above is recorded in the background: lastRecordedPullTime, a datetime.
    pulled_at = None
    for _ in range(50):
        v1_detail = ecr.describe_images(repositoryName=REPO, imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
        pulled_at = v1_detail.get("lastRecordedPullTime")
        if pulled_at:
            break
        time.sleep(0.1)
    c.check(near(pulled_at, started, 300), f"lastRecordedPullTime {pulled_at!r}")
    expect_error("DescribeImages", ecr.describe_images, errors_module.ImageNotFoundException,
                 repositoryName=REPO, imageIds=[{"imageTag": "nope"}])

    # 8. DescribeRepositories, two at a time.
    names = []
    repository_pages = 0
    for page in ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 2}):
        repository_pages += 1
        c.check(len(page["repositories"]) <= 2, f"DescribeRepositories page of {len(page['repositories'])}")
        for r in page["repositories"]:
            names.append(r["repositoryName"])
            c.check(near(r["createdAt"], started, 300), f"createdAt {r['createdAt']!r}")
    c.eq("DescribeRepositories names", sorted(names), sorted([*EXTRA_REPOS, REPO]))

    # 9. BatchGetImage.
    got = ecr.batch_get_image(repositoryName=REPO,
                              imageIds=[{"imageTag": "v1"}, {"imageTag": "v2"}, {"imageTag": "missing"}],
                              acceptedMediaTypes=[DOCKER_MANIFEST, OCI_MANIFEST])
    by_tag = {i["imageId"].get("imageTag"): (i["imageManifest"], i.get("imageManifestMediaType")) for i in got["images"]}
    c.eq("BatchGetImage v1", by_tag.get("v1"), (v1_manifest, DOCKER_MANIFEST))
    c.eq("BatchGetImage v2", by_tag.get("v2"), (v2_manifest, OCI_MANIFEST))
    c.eq("BatchGetImage images", len(got["images"]), 2)
    c.eq("BatchGetImage failures", [(f["imageId"].get("imageTag"), f["failureCode"]) for f in got["failures"]],
         [("missing", "ImageNotFound")])
    all_found = ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageDigest": v2_digest}])
    c.eq("BatchGetImage all found: images", len(all_found["images"]), 1)
    c.eq("BatchGetImage all found: failures", all_found.get("failures", []), [])

    url = ecr.get_download_url_for_layer(repositoryName=REPO, layerDigest=sha256(layer_blob))
    c.eq("GetDownloadUrlForLayer layerDigest", url["layerDigest"], sha256(layer_blob))
    status, _, body = v2_request(url["downloadUrl"])
    c.eq("download status", status, 200)
    c.check(body == layer_blob, "the downloaded layer differs")

    deleted = ecr.batch_delete_image(repositoryName=REPO, imageIds=[{"imageTag": "latest"}])
    c.eq("BatchDeleteImage imageIds", deleted["imageIds"], [{"imageDigest": v1_digest, "imageTag": "latest"}])
    c.eq("BatchDeleteImage failures", deleted.get("failures", []), [])
    expect_error("BatchDeleteImage", ecr.batch_delete_image, errors_module.RepositoryNotFoundException,
                 repositoryName="sdk/missing", imageIds=[{"imageTag": "x"}])

    # 10. Errors.
    e = expect_error("DescribeRepositories", ecr.describe_repositories, errors_module.RepositoryNotFoundException,
                     repositoryNames=["sdk/missing"])
    c.eq("error message", e and e.response["Error"]["Message"],
         f"The repository with name 'sdk/missing' does not exist in the registry with id '{account}'")
    expect_error("DeleteRepository", ecr.delete_repository, errors_module.RepositoryNotEmptyException,
                 repositoryName=REPO)

    # 11. DeleteRepository with force; then nothing is left.
    gone = ecr.delete_repository(repositoryName=REPO, force=True)
    c.eq("DeleteRepository name", gone["repository"]["repositoryName"], REPO)
    for extra in EXTRA_REPOS:
        ecr.delete_repository(repositoryName=extra)
    try:
        ecr.describe_repositories(repositoryNames=[REPO])
        c.check(False, "DescribeRepositories after delete succeeded")
    except errors_module.RepositoryNotFoundException:
        c.count += 1
    left = ecr.describe_repositories()
    c.eq("repositories left", left["repositories"], [])
    c.check("nextToken" not in left, "a nextToken on an empty list")

    return {
        "sdk": "boto3",
        "repositoryUri": repo["repositoryUri"],
        "proxyEndpoint": data["proxyEndpoint"],
        "tokenUser": user,
        "account": account,
        "pushed": {"api": v1_digest, "v2": v2_digest},
        "images": len(digests),
        "imageIds": len(listed),
        "pages": {"ListImages": list_pages, "DescribeImages": describe_pages,
                  "DescribeRepositories": repository_pages},
        "errors": dict(sorted(errors.items())),
        "errorStatuses": sorted(statuses),
        "checks": c.count,
        "failures": c.failures,
    }


def test_boto3_scenario(ecr_berth):
    summary = boto3_scenario(ecr_berth)
    print(json.dumps(summary, indent=2))
    check_summary(summary, ecr_berth, "boto3")


# -- the AWS SDK for JavaScript v3 -----------------------------------------------


def js_dependencies():
    """Installs tests/sdk/js's locked dependencies unless they are there already."""
    with open(os.path.join(JS_DIR, "package.json")) as f:
        wanted = json.load(f)["dependencies"]["@aws-sdk/client-ecr"]
    installed = os.path.join(JS_DIR, "node_modules", "@aws-sdk", "client-ecr", "package.json")
    if os.path.exists(installed):
        with open(installed) as f:
            if json.load(f)["version"] == wanted:
                return
    result = run(["npm", "ci", "--no-audit", "--no-fund"], JS_DIR, timeout=600)
    assert result.returncode == 0, report(result)


def test_aws_sdk_for_javascript_v3(ecr_berth):
    js_dependencies()
    result = run(["node", "scenario.mjs"], JS_DIR, timeout=300, env=sdk_env(ecr_berth))
    check_process(result, ecr_berth, "aws-sdk-js-v3")


# -- the AWS SDK for Rust ----------------------------------------------------------


def rust_scenario_binary():
    """Builds tests/sdk/rust (one job, its own target directory; a no-op when up to date)."""
    result = run(
        ["nice", "-n", "10", "cargo", "build", "-j", "1", "--locked", "--target-dir", RUST_TARGET],
        RUST_DIR, timeout=3600,
    )
    assert result.returncode == 0, report(result)
    return RUST_BIN


def test_aws_sdk_for_rust(ecr_berth):
    binary = rust_scenario_binary()
    result = run([binary], RUST_DIR, timeout=300, env=sdk_env(ecr_berth))
    check_process(result, ecr_berth, "aws-sdk-rust")
