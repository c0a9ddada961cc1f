"""Image scanning with the real aws CLI: the registry's scanning
configuration, scan on push, StartImageScan and its daily limit, findings
exact for Debian- and Alpine-based images with Python and npm packages
(whiteouts honoured), ENHANCED findings, continuous rescans when the
advisory database changes, and the `ECR Image Scan` event."""

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
import urllib.request

import pytest

from conftest import ACCOUNT, BINARY, ROOT, Berth, aws, basic_auth, failure, ok, root_env

FIXTURES = os.path.join(ROOT, "tests", "fixtures")

DPKG_STATUS = b"""Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u1)
Version: 3.0.11-1~deb12u1

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1

Package: tar
Status: install ok installed
Architecture: amd64
Version: 1.34+dfsg-1.2

Package: removed-one
Status: deinstall ok config-files
Version: 1.0
"""

APK_INSTALLED = b"""P:libcrypto3
V:3.1.4-r0
A:x86_64
o:openssl

P:busybox
V:1.36.1-r15
A:x86_64
o:busybox
"""


def request(berth, method, path, data=None, headers=None):
    req = urllib.request.Request(f"{berth.url}{path}", data=data, method=method,
                                 headers={"Authorization": basic_auth(), **(headers or {})})
    with urllib.request.urlopen(req) as r:
        return r.status, r.headers, r.read()


def layer(files):
    """A gzip'd tar of `files` (path -> bytes; None makes a whiteout entry)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def push(berth, repo, tag, layers, config_type="application/vnd.oci.image.config.v1+json"):
    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        request(berth, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        return {"digest": digest, "size": len(data)}

    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, **blob(json.dumps({"os": "linux", "tag": tag}).encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(l)} for l in layers],
    }).encode()
    request(berth, "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def debian_image(berth, repo, tag="v1"):
    base = layer({
        "etc/os-release": b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
        "var/lib/dpkg/status": DPKG_STATUS,
        "opt/old/node_modules/minimist/package.json": b'{"name": "minimist", "version": "1.2.5"}',
    })
    app = layer({
        "opt/.wh.old": b"",
        "usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n\nHTTP for Humans.\n",
        "usr/local/lib/python3.11/site-packages/Django-4.2rc1.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: Django\nVersion: 4.2rc1\n",
        "app/node_modules/lodash/package.json": b'{"name": "lodash", "version": "4.17.15"}',
    })
    return push(berth, repo, tag, [base, app])


def alpine_image(berth, repo, tag="v1"):
    base = layer({
        "etc/os-release": b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n',
        "lib/apk/db/installed": APK_INSTALLED,
    })
    return push(berth, repo, tag, [base])


def vulndb_import(berth, path):
    result = subprocess.run([BINARY, "vulndb", "import", *berth.install_args, path],
                            capture_output=True, text=True, env=berth.env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def berth():
    server = Berth(extra=["--create-on-push"],
                   env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    vulndb_import(server, os.path.join(FIXTURES, "osv"))
    yield server
    server.stop()


def wait_complete(berth, repo, tag):
    ok(aws(berth, "ecr", "wait", "image-scan-complete", "--repository-name", repo, "--image-id", f"imageTag={tag}"))


def findings(berth, repo, tag):
    out = ok(aws(berth, "ecr", "describe-image-scan-findings", "--repository-name", repo,
                 "--image-id", f"imageTag={tag}"))
    return out


def test_scan_on_push_finds_exactly_what_is_there(berth):
    ok(aws(berth, "ecr", "put-registry-scanning-configuration", "--scan-type", "BASIC", "--rules",
           json.dumps([{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "staging/*", "filterType": "WILDCARD"}]}])))
    config = ok(aws(berth, "ecr", "get-registry-scanning-configuration"))
    assert config["registryId"] == ACCOUNT
    assert config["scanningConfiguration"]["rules"][0]["repositoryFilters"] == [{"filter": "staging/*", "filterType": "WILDCARD"}]

    digest = debian_image(berth, "staging/alice")
    alpine_image(berth, "staging/bob")
    wait_complete(berth, "staging/alice", "v1")
    out = findings(berth, "staging/alice", "v1")
    assert out["imageScanStatus"]["status"] == "COMPLETE"
    assert out["imageId"]["imageDigest"] == digest
    scan = out["imageScanFindings"]
    got = sorted((f["name"], f["severity"], {a["key"]: a["value"] for a in f["attributes"]}["package_name"])
                 for f in scan["findings"])
    assert got == sorted([
        ("CVE-2023-0001", "CRITICAL", "libssl3"),
        ("GHSA-test-django", "HIGH", "Django"),
        ("CVE-2021-23337", "HIGH", "lodash"),
        ("CVE-2018-18074", "MEDIUM", "requests"),
        ("DEBIAN-TEST-3", "LOW", "tar"),
    ])
    assert scan["findingSeverityCounts"] == {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 1}
    openssl = next(f for f in scan["findings"] if f["name"] == "CVE-2023-0001")
    attributes = {a["key"]: a["value"] for a in openssl["attributes"]}
    assert attributes["package_version"] == "3.0.11-1~deb12u1"
    assert attributes["CVSS3_SCORE"] == "9.8"
    assert openssl["uri"] == "https://security-tracker.debian.org/tracker/CVE-2023-0001"
    assert "vulnerabilitySourceUpdatedAt" in scan and "imageScanCompletedAt" in scan

    wait_complete(berth, "staging/bob", "v1")
    alpine = findings(berth, "staging/bob", "v1")["imageScanFindings"]
    assert [(f["name"], f["severity"]) for f in alpine["findings"]] == [("CVE-2023-0005", "HIGH")]

    # Paging: two at a time, the CLI's own paginator off.
    page = ok(aws(berth, "ecr", "describe-image-scan-findings", "--repository-name", "staging/alice",
                  "--image-id", "imageTag=v1", "--max-results", "2", "--no-paginate"))
    assert len(page["imageScanFindings"]["findings"]) == 2 and "nextToken" in page

    images = ok(aws(berth, "ecr", "describe-images", "--repository-name", "staging/alice"))["imageDetails"]
    assert images[0]["imageScanStatus"]["status"] == "COMPLETE"
    assert images[0]["imageScanFindingsSummary"]["findingSeverityCounts"]["CRITICAL"] == 1

    configs = ok(aws(berth, "ecr", "batch-get-repository-scanning-configuration",
                     "--repository-names", "staging/alice", "missing"))
    assert configs["scanningConfigurations"][0]["scanFrequency"] == "SCAN_ON_PUSH"
    assert configs["scanningConfigurations"][0]["appliedScanFilters"] == [{"filter": "staging/*", "filterType": "WILDCARD"}]
    assert configs["failures"][0]["failureCode"] == "REPOSITORY_NOT_FOUND"

    events = subprocess.run([BINARY, "events", *berth.install_args], capture_output=True, text=True,
                            env=berth.env, timeout=60).stdout.splitlines()
    scans = [json.loads(e) for e in events if '"ECR Image Scan"' in e]
    alice = next(e for e in scans if e["detail"]["repository-name"] == "staging/alice")
    assert alice["detail"]["scan-status"] == "COMPLETE"
    assert alice["detail"]["finding-severity-counts"] == {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 1}
    assert alice["resources"] == [f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/staging/alice"]


def test_an_rpm_based_image(berth):
    """A Rocky Linux image: its sqlite rpm database (made by rpm 4.18)."""
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "rocky", "--image-scanning-configuration", "scanOnPush=true"))
    with open(os.path.join(FIXTURES, "rpm", "rpmdb.sqlite"), "rb") as f:
        rpmdb = f.read()
    push(berth, "rocky", "9", [layer({
        "etc/os-release": b'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.3"\n',
        "var/lib/rpm/rpmdb.sqlite": rpmdb,
    })])
    wait_complete(berth, "rocky", "9")
    scan = findings(berth, "rocky", "9")["imageScanFindings"]
    got = [(f["name"], f["severity"], {a["key"]: a["value"] for a in f["attributes"]}["package_version"])
           for f in scan["findings"]]
    # bash 5.1.8-6.el9 is the fixed release itself; the epoch counts for openssl-libs.
    assert got == [("CVE-2023-0007", "HIGH", "1:3.0.7-24.el9")]


def test_manual_scans_and_their_errors(berth):
    debian_image(berth, "manual/app")
    # Not scanned on push: no rule, no repository switch.
    time.sleep(2)
    failure(aws(berth, "ecr", "describe-image-scan-findings", "--repository-name", "manual/app",
                "--image-id", "imageTag=v1"), "ScanNotFoundException")
    started = ok(aws(berth, "ecr", "start-image-scan", "--repository-name", "manual/app", "--image-id", "imageTag=v1"))
    assert started["imageScanStatus"]["status"] == "IN_PROGRESS"
    failure(aws(berth, "ecr", "start-image-scan", "--repository-name", "manual/app", "--image-id", "imageTag=v1"),
            "LimitExceededException")
    wait_complete(berth, "manual/app", "v1")
    failure(aws(berth, "ecr", "start-image-scan", "--repository-name", "manual/app", "--image-id", "imageTag=nope"),
            "ImageNotFoundException")
    failure(aws(berth, "ecr", "start-image-scan", "--repository-name", "nope", "--image-id", "imageTag=v1"),
            "RepositoryNotFoundException")
    push(berth, "manual/app", "artifact", [b"not a layer"], config_type="application/vnd.example.thing.v1+json")
    failure(aws(berth, "ecr", "start-image-scan", "--repository-name", "manual/app", "--image-id", "imageTag=artifact"),
            "UnsupportedImageTypeException")
    failure(aws(berth, "ecr", "put-registry-scanning-configuration", "--scan-type", "BASIC", "--rules",
                json.dumps([{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}])),
            "ValidationException")
    # The older repository switch still means scan on push.
    ok(aws(berth, "ecr", "create-repository", "--repository-name", "legacy", "--image-scanning-configuration", "scanOnPush=true"))
    alpine_image(berth, "legacy")
    wait_complete(berth, "legacy", "v1")


def test_enhanced_findings_and_continuous_rescans(berth):
    ok(aws(berth, "ecr", "put-registry-scanning-configuration", "--scan-type", "ENHANCED", "--rules",
           json.dumps([{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "prod/*", "filterType": "WILDCARD"}]}])))
    alpine_image(berth, "prod/api")
    debian_image(berth, "prod/web")
    wait_complete(berth, "prod/api", "v1")
    wait_complete(berth, "prod/web", "v1")
    web = findings(berth, "prod/web", "v1")["imageScanFindings"]["enhancedFindings"]
    openssl = next(f for f in web if f["packageVulnerabilityDetails"]["vulnerabilityId"] == "CVE-2023-0001")
    package = openssl["packageVulnerabilityDetails"]["vulnerablePackages"][0]
    assert package["name"] == "libssl3" and package["version"] == "3.0.11"
    assert package["release"] == "1~deb12u1" and package["fixedInVersion"] == "3.0.11-1~deb12u2"
    assert package["packageManager"] == "OS" and package["filePath"] == "var/lib/dpkg/status"
    assert openssl["score"] == 9.8 and openssl["fixAvailable"] == "YES" and openssl["status"] == "ACTIVE"
    zlib_epoch = [f for f in web if f["packageVulnerabilityDetails"]["vulnerablePackages"][0]["name"] == "zlib1g"]
    assert zlib_epoch == []

    before = findings(berth, "prod/api", "v1")["imageScanFindings"]
    assert len(before["enhancedFindings"]) == 1
    # A new advisory: continuously scanned images are scanned again.
    vulndb_import(berth, os.path.join(FIXTURES, "osv-later.json"))
    deadline = time.time() + 60
    while time.time() < deadline:
        after = findings(berth, "prod/api", "v1")["imageScanFindings"]
        if len(after.get("enhancedFindings", [])) == 2:
            break
        time.sleep(1)
    names = sorted(f["packageVulnerabilityDetails"]["vulnerabilityId"] for f in after["enhancedFindings"])
    assert names == ["CVE-2023-0005", "CVE-2024-0006"]
    assert after["vulnerabilitySourceUpdatedAt"] > before["vulnerabilitySourceUpdatedAt"]


def test_vulndb_update_downloads_osv_exports(berth, tmp_path):
    """`berth vulndb update` fetches `<source>/<ecosystem>/all.zip` (here from
    a local server standing in for OSV's bucket) and loads it."""
    import socket
    import zipfile

    os.makedirs(tmp_path / "Alpine")
    with zipfile.ZipFile(tmp_path / "Alpine" / "all.zip", "w") as z:
        z.write(os.path.join(FIXTURES, "osv-later.json"), "ALPINE-TEST-3.json")
        z.writestr("broken.json", "{not json")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/Alpine/all.zip").read()
                break
            except OSError:
                time.sleep(0.1)
        result = subprocess.run([BINARY, "vulndb", "update", *berth.install_args, "--source",
                                 f"http://127.0.0.1:{port}", "--ecosystem", "Alpine"],
                                capture_output=True, text=True, env=berth.env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "1 advisories stored, 1 files skipped" in result.stdout
        missing = subprocess.run([BINARY, "vulndb", "update", *berth.install_args, "--source",
                                  f"http://127.0.0.1:{port}", "--ecosystem", "Nowhere"],
                                 capture_output=True, text=True, env=berth.env, timeout=60)
        assert missing.returncode != 0 and "404" in missing.stderr
    finally:
        server.terminate()
    # The new advisory is matched at the next scan.
    alpine_image(berth, "later")
    ok(aws(berth, "ecr", "start-image-scan", "--repository-name", "later", "--image-id", "imageTag=v1"))
    wait_complete(berth, "later", "v1")
    names = sorted(f["name"] for f in findings(berth, "later", "v1")["imageScanFindings"]["findings"])
    assert names == ["CVE-2023-0005", "CVE-2024-0006"]
