"""Server-side builds from source bundles (`berth build`), with the real
builder (buildah, `--isolation chroot`) and the images checked with skopeo:
a `FROM scratch` + `COPY` bundle from a directory, a zip bundle with a `RUN`
step on a base image that is itself in berth, and a multi-stage bundle from
an S3 prefix (the tests' S3 server). A second run skips all three; a changed
file rebuilds only its image. Hostile bundles fail with a clear reason and
touch nothing outside the build."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile

import pytest

from conftest import ACCOUNT, BINARY, REGION, ROOT_KEY, Berth, aws, failure, ok, root_env
from test_scanning import request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def berth():
    if not shutil.which("buildah"):
        pytest.fail("buildah is missing; scripts/test.sh installs it")
    server = Berth(extra=["--create-on-push"], env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    yield server
    server.stop()


def cli_env(berth, **extra):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ROOT_KEY[0], "AWS_SECRET_ACCESS_KEY": ROOT_KEY[1],
           "AWS_REGION": REGION, "BERTH_ENDPOINT": berth.url}
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(extra)
    return env


def build(berth, *args, env=None):
    result = subprocess.run([BINARY, "build", *args], capture_output=True, text=True,
                            env=env or cli_env(berth), timeout=600)
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3:
            rows[parts[1]] = line
    return result, rows


def push_base(berth):
    """A tiny base image with a shell: the host's static busybox."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is missing; scripts/test.sh installs it"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for d in ("bin", "tmp"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for tool in ("sh", "echo", "cat"):
            link = tarfile.TarInfo(f"bin/{tool}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    layer = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        request(berth, "POST", f"/v2/base/blobs/uploads/?digest={digest}", data)
        return {"digest": digest, "size": len(data)}

    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(layer)}]}).encode()
    request(berth, "PUT", "/v2/base/manifests/1", manifest, {"Content-Type": OCI_MANIFEST})


def file_in_image(berth, image, path, tmp_path):
    """Copies the image out with skopeo and reads `path` from its layers."""
    out = tmp_path / ("layout-" + os.urandom(6).hex())
    copied = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--src-creds", f"{ROOT_KEY[0]}:{ROOT_KEY[1]}",
                             f"docker://{berth.host}/{image}", f"oci:{out}"], capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    index = json.loads((out / "index.json").read_text())
    manifest = json.loads((out / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    found = None
    for layer in manifest["layers"]:
        data = (out / "blobs" / "sha256" / layer["digest"][7:]).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.name.lstrip("./") == path.lstrip("/") and member.isfile():
                    found = tar.extractfile(member).read()
    config = json.loads((out / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
    return found, manifest, config


def s3_client():
    import boto3
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                        aws_access_key_id="s3-test-key", aws_secret_access_key="s3-test-secret")


def test_builds_from_a_manifest_skip_what_did_not_change(berth, tmp_path):
    push_base(berth)
    # A directory: FROM scratch + COPY.
    foo = tmp_path / "image-foo"
    foo.mkdir()
    (foo / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (foo / "hello.txt").write_text("hello from foo\n")
    # A zip (made of its folder, as `zip -r` does) with a RUN step on a base in berth.
    bar_zip = tmp_path / "image-bar.zip"
    with zipfile.ZipFile(bar_zip, "w") as z:
        z.writestr("image-bar/Dockerfile", "ARG BERTH_REGISTRY\nFROM ${BERTH_REGISTRY}/base:1\n"
                   "ARG GREETING=hi\nRUN echo \"$GREETING from bar\" > /bar.txt\n")
    # A multi-stage bundle under an S3 prefix.
    s3 = s3_client()
    bucket = "sources-" + os.path.basename(berth.tmp).replace("_", "-").lower()[-20:]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="container-source/image-baz/Dockerfile",
                  Body=b"ARG BERTH_REGISTRY\nFROM ${BERTH_REGISTRY}/base:1 AS make\n"
                       b"RUN echo made > /made.txt\nFROM scratch\nCOPY --from=make /made.txt /baz.txt\n")
    manifest = tmp_path / "container_build_manifest.json"
    manifest.write_text(json.dumps({"manifest": [
        {"source_uri": str(foo), "target_image": "foo:omics"},
        {"source_uri": str(bar_zip), "target_image": "mynamespace/bar:omics"},
        {"source_uri": f"s3://{bucket}/container-source/image-baz/", "target_image": "baz:omics"},
    ]}))
    env = cli_env(berth, BERTH_S3_ACCESS_KEY_ID="s3-test-key", BERTH_S3_SECRET_ACCESS_KEY="s3-test-secret")
    first, rows = build(berth, str(manifest), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert all(r.rstrip().endswith("built") for r in rows.values()) and len(rows) == 3, first.stdout

    hello, _, config = file_in_image(berth, "foo:omics", "hello.txt", tmp_path)
    assert hello == b"hello from foo\n"
    labels = config["config"].get("Labels") or {}
    assert labels.get("berth.build.source-digest", "").startswith("sha256:")
    greeting, _, _ = file_in_image(berth, "mynamespace/bar:omics", "bar.txt", tmp_path)
    assert greeting == b"hi from bar\n"
    made, _, _ = file_in_image(berth, "baz:omics", "baz.txt", tmp_path)
    assert made == b"made\n"

    # Nothing changed: all three skipped, nothing built.
    second, rows = build(berth, str(manifest), env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert all(r.rstrip().endswith("skipped") for r in rows.values()), second.stdout

    # One file changed: only its image is built again.
    (foo / "hello.txt").write_text("hello again\n")
    third, rows = build(berth, str(manifest), env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    results = {target: row.rstrip().rsplit(None, 1)[-1] for target, row in rows.items()}
    assert results == {"foo:omics": "built", "mynamespace/bar:omics": "skipped", "baz:omics": "skipped"}, third.stdout
    hello, _, _ = file_in_image(berth, "foo:omics", "hello.txt", tmp_path)
    assert hello == b"hello again\n"

    # --force builds anyway; a build argument changes what is built.
    forced, rows = build(berth, str(bar_zip), "--tag", "mynamespace/bar:omics", "--build-arg", "GREETING=hey")
    assert forced.returncode == 0 and rows["mynamespace/bar:omics"].rstrip().endswith("built"), forced.stdout
    greeting, _, _ = file_in_image(berth, "mynamespace/bar:omics", "bar.txt", tmp_path)
    assert greeting == b"hey from bar\n"

    # The builds are listed with their logs, through berth's API, and emitted events.
    listed = ok(aws(berth, "ecr", "describe-repositories"))  # the door answers
    assert any(r["repositoryName"] == "foo" for r in listed["repositories"])
    events = subprocess.run([BINARY, "events", *berth.install_args, "--limit", "200"],
                            capture_output=True, text=True, env=berth.env, timeout=60)
    assert "Berth Image Build State Change" in events.stdout


def test_failures_are_clear_and_hostile_bundles_touch_nothing(berth, tmp_path):
    # A failing step: its step and log tail.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Dockerfile").write_text("ARG BERTH_REGISTRY\nFROM ${BERTH_REGISTRY}/base:1\nRUN echo about to fail && false\n")
    result, rows = build(berth, str(bad), "--tag", "bad:1")
    assert result.returncode != 0
    assert "RUN echo about to fail && false" in rows["bad:1"] and "about to fail" in rows["bad:1"], result.stdout

    # No Dockerfile.
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README").write_text("no Dockerfile here\n")
    result, rows = build(berth, str(empty), "--tag", "bad:2")
    assert result.returncode != 0 and "Dockerfile" in rows["bad:2"], result.stdout

    outside = tmp_path / "outside"
    outside.mkdir()
    # Zip slip.
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("Dockerfile", "FROM scratch\n")
        z.writestr("../../../../../../../../tmp/berth-zip-slip.txt", "escaped")
    # A symlink out, then a file through it.
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        sym = tarfile.TarInfo("out")
        sym.type, sym.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(sym)
        data = b"escaped"
        info = tarfile.TarInfo("out/escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    # A header claiming a 10 GiB file (no data follows).
    sparse = tmp_path / "huge.tar"
    with open(sparse, "wb") as f:
        header = tarfile.TarInfo("Dockerfile")
        header.size = 10 << 30
        f.write(header.tobuf(format=tarfile.GNU_FORMAT))
        f.write(b"\0" * 1024)
    for bundle, tag, words in ((slip, "bad:3", "escapes"), (link, "bad:4", "out"), (sparse, "bad:5", "limit")):
        result, rows = build(berth, str(bundle), "--tag", tag)
        assert result.returncode != 0, (bundle, result.stdout)
        assert words in rows[tag], (bundle, result.stdout)
    assert not os.path.exists("/tmp/berth-zip-slip.txt")
    assert os.listdir(outside) == []


def test_a_node_without_a_builder_says_so(tmp_path):
    node = Berth(extra=["--create-on-push", "--builder", "/nonexistent/buildah"],
                 env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()})
    try:
        import urllib.request
        with urllib.request.urlopen(node.url + "/readyz", timeout=10) as r:
            assert json.loads(r.read())["builder"].startswith("absent")
        source = tmp_path / "src"
        source.mkdir()
        (source / "Dockerfile").write_text("FROM scratch\n")
        result, rows = build(node, str(source), "--tag", "app:1")
        assert result.returncode != 0 and "apt-get install buildah" in rows["app:1"], result.stdout
    finally:
        node.stop()


def test_a_target_stage(berth, tmp_path):
    source = tmp_path / "stages"
    source.mkdir()
    (source / "Dockerfile").write_text("FROM scratch AS one\nCOPY one.txt /one.txt\n"
                                       "FROM scratch AS two\nCOPY two.txt /two.txt\n")
    (source / "one.txt").write_text("one\n")
    (source / "two.txt").write_text("two\n")
    result, rows = build(berth, str(source), "--tag", "stages:one", "--target", "one")
    assert result.returncode == 0, result.stdout + result.stderr
    one, _, _ = file_in_image(berth, "stages:one", "one.txt", tmp_path)
    two, _, _ = file_in_image(berth, "stages:one", "two.txt", tmp_path)
    assert (one, two) == (b"one\n", None)
