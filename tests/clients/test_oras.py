"""oras (the Python SDK) pushes artifacts, one with a subject, found through the referrers API."""

import json
import os
import urllib.request

import oras.client
import oras.oci

from conftest import ROOT_KEY, basic_auth


def test_artifact_with_subject_is_found_through_referrers(berth, workdir):
    client = oras.client.OrasClient(hostname=berth.host, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(*ROOT_KEY)

    payload = os.path.join(workdir, "payload.txt")
    with open(payload, "w") as f:
        f.write("the artifact\n")
    target = f"{berth.host}/artifacts/app:v1"
    response = client.push(target=target, files=[payload], disable_path_validation=True)
    assert response.status_code == 201, response.text
    subject_digest = response.headers["Docker-Content-Digest"]

    manifest = client.get_manifest(target)
    sbom = os.path.join(workdir, "sbom.json")
    with open(sbom, "w") as f:
        json.dump({"spdxVersion": "SPDX-2.3"}, f)
    subject = oras.oci.Subject.from_manifest(manifest)
    assert subject.digest == subject_digest
    response = client.push(
        target=f"{berth.host}/artifacts/app:sbom",
        files=[sbom],
        subject=subject,
        disable_path_validation=True,
    )
    assert response.status_code == 201, response.text
    assert response.headers.get("OCI-Subject") == subject_digest
    sbom_digest = response.headers["Docker-Content-Digest"]

    request = urllib.request.Request(
        f"{berth.url}/v2/artifacts/app/referrers/{subject_digest}", headers={"Authorization": basic_auth()}
    )
    with urllib.request.urlopen(request) as r:
        index = json.load(r)
    assert [m["digest"] for m in index["manifests"]] == [sbom_digest]

    # And the artifact pulls back byte for byte.
    out = os.path.join(workdir, "pulled")
    files = client.pull(target=f"{berth.host}/artifacts/app:sbom", outdir=out)
    with open(files[0]) as f:
        assert json.load(f) == {"spdxVersion": "SPDX-2.3"}
