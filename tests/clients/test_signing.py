"""Managed signing as ECR's model says, with berth as the signer: the
configuration through boto3 (and its errors), pushes covered by a rule
signed in the Notary Project format (a JWS envelope, notary.x509) and the
signature attached through the referrers API, the status per image and
profile, the authority published for verifiers, and a key rotated."""

import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, basic_auth, client
from notary_verify import verify
from test_scanning import layer, push

PROFILE = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/release_signing"
SIGNATURE = "application/vnd.cncf.notary.signature"


def get(berth, path, accept=None):
    headers = {"Authorization": basic_auth()}
    if accept:
        headers["Accept"] = accept
    with urllib.request.urlopen(urllib.request.Request(f"{berth.url}{path}", headers=headers)) as r:
        return r.read(), r.headers


def wait_signed(ecr, repo, digest, timeout=60):
    deadline = time.time() + timeout
    while True:
        statuses = ecr.describe_image_signing_status(repositoryName=repo, imageId={"imageDigest": digest})[
            "signingStatuses"]
        if statuses and all(s["status"] != "IN_PROGRESS" for s in statuses):
            return statuses
        assert time.time() < deadline, statuses
        time.sleep(0.3)


def signature_of(berth, ecr, repo, digest):
    referrers = ecr.list_image_referrers(repositoryName=repo, subjectId={"imageDigest": digest},
                                         filter={"artifactTypes": [SIGNATURE]})["referrers"]
    assert len(referrers) == 1, referrers
    manifest, _ = get(berth, f"/v2/{repo}/manifests/{referrers[0]['digest']}",
                      "application/vnd.oci.image.manifest.v1+json")
    manifest = json.loads(manifest)
    envelope, _ = get(berth, f"/v2/{repo}/blobs/{manifest['layers'][0]['digest']}")
    return manifest, envelope


def test_pushes_are_signed_in_the_notary_format(ecr_berth):
    ecr = client(ecr_berth, "ecr")
    with pytest.raises(ClientError) as e:
        ecr.get_signing_configuration()
    assert e.value.response["Error"]["Code"] == "SigningConfigurationNotFoundException"
    with pytest.raises(ClientError) as e:
        ecr.put_signing_configuration(signingConfiguration={"rules": [
            {"signingProfileArn": f"arn:aws:signer:{REGION}:999999999999:/signing-profiles/theirs"}]})
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    rules = {"rules": [{"signingProfileArn": PROFILE,
                        "repositoryFilters": [{"filter": "release/*", "filterType": "WILDCARD_MATCH"}]}]}
    assert ecr.put_signing_configuration(signingConfiguration=rules)["signingConfiguration"] == rules
    got = ecr.get_signing_configuration()
    assert got["signingConfiguration"] == rules and got["registryId"] == ACCOUNT

    ecr.create_repository(repositoryName="release/app")
    ecr.create_repository(repositoryName="scratch/app")
    digest = push(ecr_berth, "release/app", "v1", [layer({"app": b"signed"})])
    other = push(ecr_berth, "scratch/app", "v1", [layer({"app": b"not signed"})])
    statuses = wait_signed(ecr, "release/app", digest)
    assert statuses == [{"signingProfileArn": PROFILE, "status": "COMPLETE"}]

    # The signature verifies against the published authority, as `notation verify` would.
    authority, headers = get(ecr_berth, "/berth/signing/release_signing/ca.crt")
    assert authority.startswith(b"-----BEGIN CERTIFICATE-----")
    image, _ = get(ecr_berth, f"/v2/release/app/manifests/{digest}", "application/vnd.oci.image.manifest.v1+json")
    target = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": len(image)}
    manifest, envelope = signature_of(ecr_berth, ecr, "release/app", digest)
    checked = verify(manifest, envelope, target, authority)
    assert checked["protected"]["io.cncf.notary.signingScheme"] == "notary.x509"
    # The signature itself is not signed again, nor is a repository no rule covers.
    time.sleep(1)
    signature_digest = ecr.list_image_referrers(repositoryName="release/app", subjectId={"imageDigest": digest})[
        "referrers"][0]["digest"]
    assert ecr.describe_image_signing_status(repositoryName="release/app",
                                             imageId={"imageDigest": signature_digest})["signingStatuses"] == []
    assert ecr.describe_image_signing_status(repositoryName="scratch/app",
                                             imageId={"imageDigest": other})["signingStatuses"] == []
    with pytest.raises(ClientError) as e:
        ecr.describe_image_signing_status(repositoryName="release/app", imageId={"imageTag": "nope"})
    assert e.value.response["Error"]["Code"] == "ImageNotFoundException"

    # A rotated key signs the next push; the old signature still verifies.
    rotated = client(ecr_berth, "ecr")
    from test_promotion import berth_api  # berth's own operations, signed as ECR's
    status, answer = berth_api(ecr_berth, "RotateSigningKey", {"signingProfileArn": PROFILE})
    assert status == 200, answer
    assert answer["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    second = push(ecr_berth, "release/app", "v2", [layer({"app": b"signed again"})])
    assert wait_signed(rotated, "release/app", second)[0]["status"] == "COMPLETE"
    image, _ = get(ecr_berth, f"/v2/release/app/manifests/{second}", "application/vnd.oci.image.manifest.v1+json")
    manifest2, envelope2 = signature_of(ecr_berth, ecr, "release/app", second)
    verify(manifest2, envelope2, {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": second,
                                  "size": len(image)}, authority)
    assert json.loads(envelope2)["header"]["x5c"][0] != json.loads(envelope)["header"]["x5c"][0]
    verify(manifest, envelope, target, authority)
    # A tampered envelope does not verify.
    forged = json.loads(envelope)
    forged["payload"] = forged["payload"][:-2] + ("AA" if forged["payload"][-2:] != "AA" else "AB")
    with pytest.raises(AssertionError):
        verify(manifest, json.dumps(forged).encode(), target, authority)

    deleted = ecr.delete_signing_configuration()
    assert deleted["signingConfiguration"] == rules
    with pytest.raises(ClientError) as e:
        ecr.delete_signing_configuration()
    assert e.value.response["Error"]["Code"] == "SigningConfigurationNotFoundException"
