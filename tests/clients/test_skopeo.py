"""skopeo (Debian's) copies images into berth and back out."""

import hashlib
import json
import os
import subprocess

import pytest

from conftest import aws
from oci_layout import Layout, sample_files

AUTH_FILE = None


def skopeo(*args, stdin=None) -> str:
    command, rest = args[0], args[1:]
    result = subprocess.run(
        ["skopeo", command, "--authfile", AUTH_FILE, *rest],
        input=stdin, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture(autouse=True)
def logged_in(berth, workdir):
    """The ECR way: `aws ecr get-login-password | skopeo login --username AWS --password-stdin`."""
    global AUTH_FILE
    AUTH_FILE = os.path.join(workdir, "auth.json")
    code, password, err = aws(berth, "ecr", "get-login-password")
    assert code == 0, err
    skopeo("login", "--tls-verify=false", "--username", "AWS", "--password-stdin", berth.host, stdin=password)
    with open(AUTH_FILE) as f:
        assert berth.host in json.load(f)["auths"]


def layout_blobs(root: str) -> set:
    return set(os.listdir(os.path.join(root, "blobs", "sha256")))


def test_without_login_skopeo_is_refused(berth, workdir):
    result = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", "--authfile", os.path.join(workdir, "none.json"),
         f"docker://{berth.host}/team/app"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower() or "authentication required" in result.stderr.lower()


def test_multi_layer_image_round_trip(berth, workdir):
    src = os.path.join(workdir, "src")
    layout = Layout(src)
    image = layout.image(
        "amd64",
        [sample_files("base", 20, 50_000), sample_files("app", 3, 2_000_000), {"etc/hello": b"hi\n"}],
    )
    layout.tag(image, "v1")

    dest = f"docker://{berth.host}/team/app:v1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:v1", dest)

    raw = skopeo("inspect", "--tls-verify=false", "--raw", dest)
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == image["digest"]
    info = json.loads(skopeo("inspect", "--tls-verify=false", dest))
    assert info["Digest"] == image["digest"]
    assert len(info["Layers"]) == 3

    out = os.path.join(workdir, "out")
    skopeo("copy", "--src-tls-verify=false", dest, f"oci:{out}:v1")
    assert layout_blobs(out) == layout_blobs(src)

    # A second tag, listed, then deleted by digest (skopeo resolves the tag).
    skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:v1", f"docker://{berth.host}/team/app:v2")
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{berth.host}/team/app"))
    assert tags["Tags"] == ["v1", "v2"]
    skopeo("delete", "--tls-verify=false", dest)
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{berth.host}/team/app"))
    assert tags["Tags"] == []


def test_multi_platform_index_round_trip(berth, workdir):
    src = os.path.join(workdir, "src")
    layout = Layout(src)
    amd = layout.image("amd64", [sample_files("amd", 4, 100_000)])
    arm = layout.image("arm64", [sample_files("arm", 4, 100_000)])
    index = layout.index([amd, arm])
    layout.tag(index, "multi")

    dest = f"docker://{berth.host}/multi/arch:latest"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{src}:multi", dest)
    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", dest))
    assert [m["digest"] for m in raw["manifests"]] == [amd["digest"], arm["digest"]]

    out = os.path.join(workdir, "out")
    skopeo("copy", "--all", "--src-tls-verify=false", dest, f"oci:{out}:multi")
    assert layout_blobs(out) == layout_blobs(src)

    # Mounting: the same image into another repository of the same registry.
    skopeo(
        "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
        dest, f"docker://{berth.host}/multi/copy:latest",
    )
    copied = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{berth.host}/multi/copy:latest"))
    assert copied == raw


def test_docker_schema2_conversion_push(berth, workdir):
    """skopeo --format v2s2 pushes a Docker schema 2 manifest, as docker does."""
    src = os.path.join(workdir, "src")
    layout = Layout(src)
    layout.tag(layout.image("amd64", [sample_files("d", 2, 10_000)]), "v1")
    dest = f"docker://{berth.host}/dockerish:v1"
    skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false", f"oci:{src}:v1", dest)
    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", dest))
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    skopeo("copy", "--src-tls-verify=false", dest, f"oci:{os.path.join(workdir, 'back')}:v1")
