"""The pull-through cache with the real aws CLI and docker, against Debian's
`docker-registry` as the upstream on 127.0.0.1: the rule API as botocore's
model says, a first pull through either door that imports the image (an
index with every child), what a caller without `ecr:BatchImportUpstreamImage`
gets, and cached images served while the upstream is down."""

import gzip
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import ACCOUNT, BINARY, REGION, ROOT_KEY, Berth, aws, basic_auth, client, failure, ok, root_env
from test_scanning import layer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """Debian's docker-registry (CNCF Distribution), anonymous, on loopback."""

    def __init__(self, tmp, auth=""):
        self.root = os.path.join(tmp, "upstream")
        self.port = free_port()
        self.config = os.path.join(tmp, "upstream.yml")
        with open(self.config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {self.root}\n"
                    f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{self.port}\n{auth}")
        self.open_root = None
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/v2/").read()
                return
            except urllib.error.HTTPError:
                return  # up, asking for a token
            except OSError:
                time.sleep(0.1)
        raise AssertionError("docker-registry did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)

    def request(self, method, path, data=None, headers=None):
        url = path if path.startswith("http") else self.url + path
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()

    def blob(self, repo, data):
        """POST then PUT, as Distribution takes a monolithic upload."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        _, headers, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", b"")
        location = headers["Location"]
        if not location.startswith("http"):
            location = self.url + location
        separator = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{separator}digest={digest}", data,
                     {"Content-Type": "application/octet-stream"})
        return {"digest": digest, "size": len(data)}

    def image(self, repo, reference, files, arch="amd64"):
        compressed = layer(files)
        diff_id = "sha256:" + hashlib.sha256(gzip.decompress(compressed)).hexdigest()
        config = json.dumps({"architecture": arch, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **self.blob(repo, config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **self.blob(repo, compressed)}],
        }).encode()
        self.request("PUT", f"/v2/{repo}/manifests/{reference}", manifest, {"Content-Type": OCI_MANIFEST})
        return "sha256:" + hashlib.sha256(manifest).hexdigest(), manifest

    def index(self, repo, tag, children):
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d, "size": len(m), "platform": {"os": "linux", "architecture": a}}
            for a, (d, m) in children.items()]}).encode()
        self.request("PUT", f"/v2/{repo}/manifests/{tag}", index, {"Content-Type": OCI_INDEX})
        return "sha256:" + hashlib.sha256(index).hexdigest()


@pytest.fixture
def upstream(tmp_path):
    server = Upstream(str(tmp_path))
    yield server
    server.stop()


@pytest.fixture
def berth(upstream):
    server = Berth(extra=["--insecure-upstream", upstream.host], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    yield server
    server.stop()


def get(berth, path, auth=None, accept=None):
    headers = {"Authorization": auth or basic_auth()}
    if accept:
        headers["Accept"] = accept
    req = urllib.request.Request(berth.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def head(berth, path):
    req = urllib.request.Request(berth.url + path, headers={"Authorization": basic_auth()}, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def test_rule_api_as_the_model_says(berth, upstream):
    created = ok(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
                     "--upstream-registry-url", upstream.host))
    assert created["ecrRepositoryPrefix"] == "mirror" and created["upstreamRegistryUrl"] == upstream.host
    assert created["registryId"] == ACCOUNT and created["upstreamRepositoryPrefix"] == "ROOT"
    failure(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
                "--upstream-registry-url", upstream.host), "PullThroughCacheRuleAlreadyExistsException")
    failure(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "hub",
                "--upstream-registry-url", "registry-1.docker.io", "--upstream-registry", "docker-hub"),
            "ValidationException")
    failure(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "qq",
                "--upstream-registry-url", "ghcr.io", "--upstream-registry", "quay"), "ValidationException")
    quay = ok(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "quay",
                  "--upstream-registry-url", "quay.io"))
    assert quay["upstreamRegistry"] == "quay"
    rules = ok(aws(berth, "ecr", "describe-pull-through-cache-rules"))["pullThroughCacheRules"]
    assert [r["ecrRepositoryPrefix"] for r in rules] == ["mirror", "quay"]
    one = ok(aws(berth, "ecr", "describe-pull-through-cache-rules", "--ecr-repository-prefixes", "quay"))
    assert [r["ecrRepositoryPrefix"] for r in one["pullThroughCacheRules"]] == ["quay"]
    failure(aws(berth, "ecr", "describe-pull-through-cache-rules", "--ecr-repository-prefixes", "nope"),
            "PullThroughCacheRuleNotFoundException")
    valid = ok(aws(berth, "ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "mirror"))
    assert valid["isValid"] is True and valid["upstreamRegistryUrl"] == upstream.host
    upstream.stop()
    down = ok(aws(berth, "ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "mirror"))
    assert down["isValid"] is False and down["failure"]
    upstream.start()
    deleted = ok(aws(berth, "ecr", "delete-pull-through-cache-rule", "--ecr-repository-prefix", "quay"))
    assert deleted["ecrRepositoryPrefix"] == "quay"
    failure(aws(berth, "ecr", "delete-pull-through-cache-rule", "--ecr-repository-prefix", "quay"),
            "PullThroughCacheRuleNotFoundException")
    failure(aws(berth, "ecr", "update-pull-through-cache-rule", "--ecr-repository-prefix", "quay",
                "--credential-arn", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/x"),
            "PullThroughCacheRuleNotFoundException")


def test_first_pulls_import_through_both_doors(berth, upstream):
    app_digest, app_manifest = upstream.image("team/app", "v1", {"app.txt": b"hello from upstream\n"})
    children = {a: upstream.image("team/multi", f"child-{a}", {f"{a}.txt": a.encode()}, arch=a)
                for a in ("amd64", "arm64")}
    index_digest = upstream.index("team/multi", "v2", children)
    ok(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
           "--upstream-registry-url", upstream.host))

    # /v2/: the manifest, byte for byte, then its blobs.
    status, body = get(berth, "/v2/mirror/team/app/manifests/v1", accept=OCI_MANIFEST)
    assert status == 200 and body == app_manifest
    for blob in json.loads(body)["layers"]:
        status, data = get(berth, f"/v2/mirror/team/app/blobs/{blob['digest']}")
        assert status == 200 and "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]
    listed = ok(aws(berth, "ecr", "describe-images", "--repository-name", "mirror/team/app"))["imageDetails"]
    assert [(i["imageDigest"], i.get("imageTags")) for i in listed] == [(app_digest, ["v1"])]

    # ECR door: BatchGetImage of a multi-platform tag caches the index and every child.
    got = ok(aws(berth, "ecr", "batch-get-image", "--repository-name", "mirror/team/multi",
                 "--image-ids", "imageTag=v2"))
    assert got["images"][0]["imageId"]["imageDigest"] == index_digest and got["failures"] == []
    cached = {i["imageDigest"] for i in ok(aws(berth, "ecr", "describe-images", "--repository-name",
                                                  "mirror/team/multi"))["imageDetails"]}
    assert cached == {index_digest, *(d for d, _ in children.values())}
    missing = ok(aws(berth, "ecr", "batch-get-image", "--repository-name", "mirror/team/multi",
                     "--image-ids", "imageTag=nope"))
    assert missing["failures"][0]["failureCode"] == "ImageNotFound"
    status, _ = get(berth, "/v2/mirror/team/app/manifests/nope")
    assert status == 404

    # The upstream goes away: what is cached is still served, the rest fails in ECR's words.
    upstream.image("team/app", "v3", {"later.txt": b"later"})
    upstream.stop()
    status, body = get(berth, "/v2/mirror/team/app/manifests/v1", accept=OCI_MANIFEST)
    assert status == 200 and body == app_manifest
    status, body = get(berth, "/v2/mirror/team/app/manifests/v3")
    assert status == 503 and json.loads(body)["errors"][0]["code"] == "UNAVAILABLE"
    down = ok(aws(berth, "ecr", "batch-get-image", "--repository-name", "mirror/team/app",
                  "--image-ids", "imageTag=v3"))
    assert down["failures"][0]["failureCode"] == "UpstreamUnavailable"
    upstream.start()


def test_importing_needs_batch_import_upstream_image(berth, upstream):
    upstream.image("lib/tool", "v1", {"tool": b"tool"})
    upstream.image("lib/tool", "v2", {"tool": b"tool v2"})
    ok(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
           "--upstream-registry-url", upstream.host))
    iam = client(berth, "iam")

    def user(name, actions):
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return (key["AccessKeyId"], key["SecretAccessKey"])

    reader = user("reader", ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages"])
    importer = user("importer", ["ecr:BatchGetImage", "ecr:BatchImportUpstreamImage", "ecr:CreateRepository"])
    # A reader cannot make berth import (nor create the repository).
    status, _ = get(berth, "/v2/mirror/lib/tool/manifests/v1", auth=basic_auth(*reader))
    assert status == 404
    # An importer can; then the reader pulls what is cached.
    status, _ = get(berth, "/v2/mirror/lib/tool/manifests/v1", auth=basic_auth(*importer))
    assert status == 200
    status, _ = get(berth, "/v2/mirror/lib/tool/manifests/v1", auth=basic_auth(*reader))
    assert status == 200
    ecr = client(berth, "ecr", reader)
    refused = ecr.batch_get_image(repositoryName="mirror/lib/tool", imageIds=[{"imageTag": "v2"}])
    assert refused["failures"][0]["failureCode"] == "ImageNotFound"


def test_docker_pulls_through_the_cache(berth, upstream, workdir):
    from test_docker import docker

    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("no docker engine answers; scripts/test.sh starts one (containerd + dockerd)")
    env = {**os.environ, "DOCKER_CONFIG": os.path.join(workdir, "docker-config")}
    upstream.image("library/hello", "1.0", {"hello.txt": b"hello through the cache\n"})
    ok(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "hub",
           "--upstream-registry-url", upstream.host))
    code, password, err = aws(berth, "ecr", "get-login-password")
    assert code == 0, err
    docker(env, "login", "--username", "AWS", "--password-stdin", berth.host, stdin=password)
    docker(env, "pull", f"{berth.host}/hub/library/hello:1.0")
    images = ok(aws(berth, "ecr", "describe-images", "--repository-name", "hub/library/hello"))["imageDetails"]
    assert images[0]["imageTags"] == ["1.0"]
    # containerd's own client, a cold miss of its own.
    upstream.image("library/hello", "2.0", {"hello.txt": b"hello again\n"})
    pulled = subprocess.run(["ctr", "--namespace", "berth-test", "images", "pull", "--plain-http",
                             "--user", f"AWS:{password.strip()}", f"{berth.host}/hub/library/hello:2.0"],
                            capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    subprocess.run(["ctr", "--namespace", "berth-test", "images", "rm", f"{berth.host}/hub/library/hello:2.0"],
                   capture_output=True)
    # podman, a third.
    upstream.image("library/hello", "3.0", {"hello.txt": b"hello once more\n"})
    import tempfile
    storage = os.path.join(workdir, "podman")
    runroot = tempfile.mkdtemp(prefix="podman-")  # podman wants it short
    pulled = subprocess.run(["podman", "--root", f"{storage}/root", "--runroot", runroot,
                             "--storage-driver", "vfs", "pull", "--tls-verify=false",
                             "--creds", f"AWS:{password.strip()}", f"{berth.host}/hub/library/hello:3.0"],
                            capture_output=True, text=True, timeout=120)
    shutil.rmtree(runroot, ignore_errors=True)
    assert pulled.returncode == 0, pulled.stderr
    tags = ok(aws(berth, "ecr", "describe-images", "--repository-name", "hub/library/hello"))["imageDetails"]
    assert sorted(t for d in tags for t in d.get("imageTags", [])) == ["1.0", "2.0", "3.0"]


def test_an_upstream_that_needs_credentials(tmp_path):
    """A second berth as the upstream, with Basic authentication; the
    credentials kept as a Secrets Manager secret the rule names, as in
    ECR's tutorial (`aws secretsmanager create-secret`)."""
    from test_scanning import push

    source = Berth(extra=["--create-on-push"], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    cache = Berth(extra=["--insecure-upstream", source.host], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    try:
        digest = push(source, "private/app", "v1", [layer({"app": b"private app"})])
        failure(aws(cache, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "private",
                    "--upstream-registry-url", source.host, "--credential-arn",
                    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/missing-AbCdEf"),
                "SecretNotFoundException")
        secret = ok(aws(cache, "secretsmanager", "create-secret", "--name", "ecr-pullthroughcache/source",
                        "--secret-string", json.dumps({"username": ROOT_KEY[0], "accessToken": ROOT_KEY[1]})))
        assert secret["Name"] == "ecr-pullthroughcache/source"
        assert secret["ARN"].startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/source-")
        failure(aws(cache, "secretsmanager", "create-secret", "--name", "ecr-pullthroughcache/source",
                    "--secret-string", "{}"), "ResourceExistsException")
        described = ok(aws(cache, "secretsmanager", "describe-secret", "--secret-id", secret["ARN"]))
        assert described["Name"] == "ecr-pullthroughcache/source" and "SecretString" not in described
        listed = ok(aws(cache, "secretsmanager", "list-secrets"))["SecretList"]
        assert [s["Name"] for s in listed] == ["ecr-pullthroughcache/source"]

        # Anonymous first: the upstream refuses, in ECR's words.
        ok(aws(cache, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "anon",
               "--upstream-registry-url", source.host))
        refused = ok(aws(cache, "ecr", "batch-get-image", "--repository-name", "anon/private/app",
                         "--image-ids", "imageTag=v1"))
        assert refused["failures"][0]["failureCode"] == "UpstreamAccessDenied"

        rule = ok(aws(cache, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "private",
                      "--upstream-registry-url", source.host, "--credential-arn", secret["ARN"]))
        assert rule["credentialArn"] == secret["ARN"]
        got = ok(aws(cache, "ecr", "batch-get-image", "--repository-name", "private/private/app",
                     "--image-ids", "imageTag=v1"))
        assert got["images"][0]["imageId"]["imageDigest"] == digest
        status, _ = get(cache, f"/v2/private/private/app/manifests/{digest}")
        assert status == 200

        ok(aws(cache, "secretsmanager", "delete-secret", "--secret-id", "ecr-pullthroughcache/source",
               "--force-delete-without-recovery"))
        failure(aws(cache, "secretsmanager", "get-secret-value", "--secret-id", "ecr-pullthroughcache/source"),
                "ResourceNotFoundException")
    finally:
        cache.stop()
        source.stop()


def test_a_cached_tag_is_checked_again_after_its_time_to_live(upstream):
    cache = Berth(extra=["--insecure-upstream", upstream.host, "--pull-through-ttl", "1s"],
                  env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    try:
        first, first_manifest = upstream.image("lib/moving", "latest", {"v": b"one"})
        ok(aws(cache, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
               "--upstream-registry-url", upstream.host))
        status, body = get(cache, "/v2/mirror/lib/moving/manifests/latest", accept=OCI_MANIFEST)
        assert status == 200 and body == first_manifest
        second, second_manifest = upstream.image("lib/moving", "latest", {"v": b"two"})
        # Within the time to live the cache answers alone; after it, it asks and follows.
        status, body = get(cache, "/v2/mirror/lib/moving/manifests/latest", accept=OCI_MANIFEST)
        assert body == first_manifest
        time.sleep(1.5)
        status, body = get(cache, "/v2/mirror/lib/moving/manifests/latest", accept=OCI_MANIFEST)
        assert status == 200 and body == second_manifest
        images = ok(aws(cache, "ecr", "describe-images", "--repository-name", "mirror/lib/moving"))["imageDetails"]
        assert {i["imageDigest"]: i.get("imageTags") for i in images} == {first: None, second: ["latest"]}
        # The upstream goes away: the cached tag is served, and counted as stale.
        upstream.stop()
        time.sleep(1.5)
        req = urllib.request.Request(cache.url + "/v2/mirror/lib/moving/manifests/latest",
                                     headers={"Authorization": basic_auth(), "Accept": OCI_MANIFEST})
        with urllib.request.urlopen(req) as r:
            assert r.read() == second_manifest
            assert r.headers["Warning"].startswith("110 berth")
        metrics = urllib.request.urlopen(cache.url + "/metrics").read().decode()
        stale = [l for l in metrics.splitlines() if l.startswith("berth_pull_through_stale_total")]
        assert stale and int(stale[0].split()[1]) >= 1
        upstream.start()
    finally:
        cache.stop()


def test_privatize_copies_under_namespaces_and_skips_what_is_there(tmp_path):
    """Seven references across four namespaces: three anonymous upstreams
    named by --namespace, and one behind a credentialed pull-through rule
    (copied through the rule). A second run skips everything copied."""
    from test_scanning import push

    for name in ("a", "b", "d"):
        os.makedirs(tmp_path / name)
    uploads = [Upstream(str(tmp_path / name)) for name in ("a", "b", "d")]
    a, b, d = uploads
    source = Berth(extra=["--create-on-push"], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    hosts = [a.host, b.host, d.host, source.host]
    target = Berth(extra=["--insecure-upstream", ",".join(hosts)], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    try:
        children = {arch: a.image("team/tool", f"c-{arch}", {arch: arch.encode()}, arch=arch) for arch in ("amd64", "arm64")}
        a.index("team/tool", "1.0", children)
        bcftools, _ = b.image("biocontainers/bcftools", "1.16--hfe4b78e_1", {"bcftools": b"bcf"})
        b.image("x/y", "v1", {"y": b"y"})
        d.image("broad-gatk/gatk", "4.4.0.0", {"gatk": b"gatk"})
        private = push(source, "private/app", "v1", [layer({"app": b"secret app"})])
        # A signature of the private image (the source answers the referrers
        # API) and an SBOM of ubuntu (docker-registry has no referrers API:
        # the OCI fallback tag lists it).
        from test_scanning import request as berth_request

        def referrer(put_blob, subject, artifact_type):
            empty = put_blob(b"{}")
            return json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
                "layers": [{"mediaType": "application/octet-stream", **put_blob(os.urandom(64))}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject[0], "size": len(subject[1])},
            }).encode()

        def source_blob(data):
            d = "sha256:" + hashlib.sha256(data).hexdigest()
            berth_request(source, "POST", f"/v2/private/app/blobs/uploads/?digest={d}", data)
            return {"digest": d, "size": len(data)}

        private_manifest = berth_request(source, "GET", f"/v2/private/app/manifests/v1", None,
                                         {"Accept": OCI_MANIFEST})[2]
        signature = referrer(source_blob, (private, private_manifest), "application/vnd.dev.cosign.artifact.sig.v1+json")
        signature_digest = "sha256:" + hashlib.sha256(signature).hexdigest()
        berth_request(source, "PUT", f"/v2/private/app/manifests/{signature_digest}", signature,
                      {"Content-Type": OCI_MANIFEST})
        ubuntu = a.image("lib/ubuntu", "20.04", {"etc/os-release": b"ID=ubuntu\n"})
        sbom = referrer(lambda data: a.blob("lib/ubuntu", data), ubuntu, "application/spdx+json")
        sbom_digest = "sha256:" + hashlib.sha256(sbom).hexdigest()
        a.request("PUT", f"/v2/lib/ubuntu/manifests/{sbom_digest}", sbom, {"Content-Type": OCI_MANIFEST})
        fallback = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sbom_digest, "size": len(sbom), "artifactType": "application/spdx+json"}]}).encode()
        a.request("PUT", f"/v2/lib/ubuntu/manifests/sha256-{ubuntu[0][7:]}", fallback, {"Content-Type": OCI_INDEX})
        secret = ok(aws(target, "secretsmanager", "create-secret", "--name", "ecr-pullthroughcache/source",
                        "--secret-string", json.dumps({"username": ROOT_KEY[0], "accessToken": ROOT_KEY[1]})))
        ok(aws(target, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mine",
               "--upstream-registry-url", source.host, "--credential-arn", secret["ARN"]))
        manifest = tmp_path / "container_image_manifest.json"
        manifest.write_text(json.dumps({"manifest": [
            f"{a.host}/lib/ubuntu:20.04",
            f"{a.host}/team/tool:1.0",
            f"{b.host}/biocontainers/bcftools:1.16--hfe4b78e_1",
            f"{b.host}/biocontainers/bcftools@{bcftools}",
            f"{d.host}/broad-gatk/gatk:4.4.0.0",
            f"{source.host}/private/app:v1",
            f"{a.host}/does/not-exist:1",
        ]}))
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ROOT_KEY[0], "AWS_SECRET_ACCESS_KEY": ROOT_KEY[1],
               "AWS_REGION": REGION}
        command = [BINARY, "privatize", str(manifest), "--endpoint", target.url,
                   "--namespace", f"{a.host}=dockerhub", "--namespace", f"{b.host}=quay",
                   "--namespace", f"{d.host}=gcr"]
        first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert first.returncode != 0, first.stdout
        rows = {line.split()[0]: line for line in first.stdout.splitlines()[1:]}
        assert rows[f"{a.host}/lib/ubuntu:20.04"].split()[1] == "dockerhub/lib/ubuntu:20.04"
        assert rows[f"{a.host}/lib/ubuntu:20.04"].rstrip().endswith("copied")
        assert rows[f"{source.host}/private/app:v1"].split()[1] == "mine/private/app:v1"
        assert rows[f"{d.host}/broad-gatk/gatk:4.4.0.0"].split()[1] == "gcr/broad-gatk/gatk:4.4.0.0"
        assert "failed" in rows[f"{a.host}/does/not-exist:1"]
        assert sum(1 for r in rows.values() if r.rstrip().endswith("copied")) >= 5
        tool = ok(aws(target, "ecr", "describe-images", "--repository-name", "dockerhub/team/tool"))["imageDetails"]
        assert len(tool) == 3  # the index and both platforms
        got = ok(aws(target, "ecr", "batch-get-image", "--repository-name", "mine/private/app", "--image-ids", "imageTag=v1"))
        assert got["images"][0]["imageId"]["imageDigest"] == private
        # The referrers came along, each with its blobs.
        for repo, subject, digest in (("mine/private/app", private, signature_digest),
                                      ("dockerhub/lib/ubuntu", ubuntu[0], sbom_digest)):
            status, body = get(target, f"/v2/{repo}/referrers/{subject}")
            assert status == 200 and [m["digest"] for m in json.loads(body)["manifests"]] == [digest], body

        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        rows = {line.split()[0]: line for line in second.stdout.splitlines()[1:]}
        assert all(r.rstrip().endswith("skipped") for s, r in rows.items() if "not-exist" not in s), second.stdout
        assert second.returncode != 0
    finally:
        target.stop()
        source.stop()
        for u in uploads:
            u.stop()


class FaultyProxy:
    """An HTTP proxy in front of an upstream that counts what it is asked
    and injects faults on request: 429 with Retry-After, a body cut short,
    a body whose bytes do not match its digest."""

    def __init__(self, upstream_url):
        import http.server
        import threading

        proxy = self
        self.upstream_url = upstream_url
        self.counts = {}
        self.faults = {}  # digest or tag -> "429" | "cut" | "corrupt"
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.forward(head=True)

            def do_GET(self):
                self.forward(head=False)

            def forward(self, head):
                with proxy.lock:
                    proxy.counts[self.path] = proxy.counts.get(self.path, 0) + 1
                last = self.path.rsplit("/", 1)[-1]
                fault = proxy.faults.get(last)
                if fault == "429":
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
                req = urllib.request.Request(proxy.upstream_url + self.path, headers=headers,
                                             method="HEAD" if head else "GET")
                try:
                    with urllib.request.urlopen(req) as r:
                        status, body, rheaders = r.status, r.read(), r.headers
                except urllib.error.HTTPError as e:
                    status, body, rheaders = e.code, e.read(), e.headers
                self.send_response(status)
                for k, v in rheaders.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                        self.send_header(k, v)
                length = int(rheaders.get("Content-Length", len(body))) if head else len(body)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if head:
                    return
                if fault == "cut":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault == "corrupt":
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, suffix):
        with self.lock:
            return sum(n for path, n in self.counts.items() if path.endswith(suffix))

    def stop(self):
        self.server.shutdown()


def test_faults_between_the_cache_and_its_upstream(upstream):
    """A client gets a correct image or a clear error; a cut or corrupt
    blob is never kept; a 429 is passed on in ECR's words."""
    proxy = FaultyProxy(upstream.url)
    cache = Berth(extra=["--insecure-upstream", proxy.host], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    try:
        digest, manifest = upstream.image("lib/app", "v1", {"app": os.urandom(200_000)})
        layer_digest = json.loads(manifest)["layers"][0]["digest"]
        ok(aws(cache, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
               "--upstream-registry-url", proxy.host))
        blob = f"/v2/mirror/lib/app/blobs/{layer_digest}"
        # The manifest is cached at once; blobs stream as they are asked for.
        status, body = get(cache, "/v2/mirror/lib/app/manifests/v1", accept=OCI_MANIFEST)
        assert status == 200 and body == manifest
        for fault in ("cut", "corrupt"):
            proxy.faults = {layer_digest: fault}
            # The streamed body ends in an error before its last bytes: the
            # client never holds the whole of a wrong blob.
            with pytest.raises((http.client.IncompleteRead, ConnectionError, urllib.error.URLError)):
                get(cache, blob)
            # Nothing was kept: the next read asks the upstream again.
            asked = proxy.count(layer_digest)
            status, _ = head(cache, blob)
            assert status == 503 and proxy.count(layer_digest) == asked + 1, fault
        upstream.image("lib/app", "v2", {"app": os.urandom(1000)})
        proxy.faults = {"v2": "429"}
        status, body = get(cache, "/v2/mirror/lib/app/manifests/v2", accept=OCI_MANIFEST)
        assert status == 429 and json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
        throttled = ok(aws(cache, "ecr", "batch-get-image", "--repository-name", "mirror/lib/app",
                           "--image-ids", "imageTag=v2"))
        assert throttled["failures"][0]["failureCode"] == "UpstreamTooManyRequests"
        # Berth leaves a throttling upstream alone for a moment, then asks again.
        asked = proxy.count("/manifests/v2")
        status, _ = get(cache, "/v2/mirror/lib/app/manifests/v2", accept=OCI_MANIFEST)
        assert status == 429 and proxy.count("/manifests/v2") == asked
        time.sleep(2.2)
        # The upstream mends: the image comes whole, every byte its digest's.
        proxy.faults = {}
        status, body = get(cache, "/v2/mirror/lib/app/manifests/v2", accept=OCI_MANIFEST)
        assert status == 200
        status, data = get(cache, blob)
        assert status == 200 and "sha256:" + hashlib.sha256(data).hexdigest() == layer_digest
    finally:
        cache.stop()
        proxy.stop()


def test_concurrent_first_pulls_reach_upstream_once_per_blob(upstream):
    """Twenty clients pull one new image at once through two nodes sharing
    one database and blob store: each blob and the manifest reach the
    upstream once."""
    from concurrent.futures import ThreadPoolExecutor

    proxy = FaultyProxy(upstream.url)
    first = Berth(extra=["--insecure-upstream", proxy.host], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    second_env = {"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()}
    second = Berth(extra=["--insecure-upstream", proxy.host], env=second_env, share_with=first)
    try:
        digest, manifest = upstream.image("lib/big", "v1", {"big": os.urandom(8 << 20)})
        layer_digest = json.loads(manifest)["layers"][0]["digest"]
        ok(aws(first, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
               "--upstream-registry-url", proxy.host))

        def pull(i):
            node = first if i % 2 else second
            status, body = get(node, "/v2/mirror/lib/big/manifests/v1", accept=OCI_MANIFEST)
            assert status == 200 and body == manifest
            status, data = get(node, f"/v2/mirror/lib/big/blobs/{layer_digest}")
            assert status == 200 and "sha256:" + hashlib.sha256(data).hexdigest() == layer_digest

        with ThreadPoolExecutor(20) as pool:
            list(pool.map(pull, range(20)))
        assert proxy.count(f"/blobs/{layer_digest}") == 1
        assert proxy.count("/manifests/v1") == 1
    finally:
        second.stop()
        first.stop()
        proxy.stop()


def test_skopeo_copies_a_multi_platform_image_through_the_cache(berth, upstream, workdir):
    children = {a: upstream.image("lib/multi", f"c-{a}", {a: a.encode() * 1000}, arch=a) for a in ("amd64", "arm64")}
    index = upstream.index("lib/multi", "2.0", children)
    ok(aws(berth, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mirror",
           "--upstream-registry-url", upstream.host))
    code, password, err = aws(berth, "ecr", "get-login-password")
    assert code == 0, err
    out = os.path.join(workdir, "copy")
    result = subprocess.run(
        ["skopeo", "copy", "--all", "--src-tls-verify=false", "--src-creds", f"AWS:{password.strip()}",
         f"docker://{berth.host}/mirror/lib/multi:2.0", f"oci:{out}:2.0"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(out, "index.json")) as f:
        assert json.load(f)["manifests"][0]["digest"] == index



def test_an_upstream_with_token_authentication(tmp_path):
    """Debian's docker-registry behind token authentication, as Docker Hub,
    GHCR and Quay work: the cache gets an anonymous pull token from the
    challenge's realm and imports with it."""
    from token_issuer import TokenIssuer

    issuer = TokenIssuer(str(tmp_path))
    # The images go in through an open registry on the same storage.
    open_side = Upstream(str(tmp_path))
    locked = Upstream.__new__(Upstream)
    locked.root = open_side.root
    locked.port = free_port()
    locked.config = os.path.join(str(tmp_path), "locked.yml")
    with open(locked.config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {open_side.root}\n"
                f"http:\n  addr: 127.0.0.1:{locked.port}\n{issuer.registry_config()}")
    locked.host = f"127.0.0.1:{locked.port}"
    locked.url = f"http://{locked.host}"
    locked.start()
    cache = Berth(extra=["--insecure-upstream", locked.host], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    try:
        digest, manifest = open_side.image("org/tool", "3.1", {"tool": b"behind a token"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{locked.url}/v2/org/tool/manifests/3.1")
        assert refused.value.code == 401 and "Bearer" in refused.value.headers["WWW-Authenticate"]
        ok(aws(cache, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "hub",
               "--upstream-registry-url", locked.host))
        status, body = get(cache, "/v2/hub/org/tool/manifests/3.1", accept=OCI_MANIFEST)
        assert status == 200 and body == manifest
        layer_digest = json.loads(manifest)["layers"][0]["digest"]
        status, data = get(cache, f"/v2/hub/org/tool/blobs/{layer_digest}")
        assert status == 200 and "sha256:" + hashlib.sha256(data).hexdigest() == layer_digest
        assert issuer.issued >= 1
    finally:
        cache.stop()
        locked.stop()
        open_side.stop()
        issuer.stop()
