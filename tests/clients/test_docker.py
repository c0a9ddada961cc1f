"""The ECR tutorial with the real docker engine: create a repository, log in
with `aws ecr get-login-password | docker login`, tag, push, pull."""

import json
import os
import subprocess
import textwrap

import pytest

from conftest import aws


def docker(env, *args, stdin=None, check=True):
    result = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{result.stderr}"
    return result


@pytest.fixture
def docker_env(workdir):
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("no docker engine answers; scripts/test.sh starts one (containerd + dockerd)")
    # Credentials go to this test's own config, not ~/.docker.
    return {**os.environ, "DOCKER_CONFIG": os.path.join(workdir, "docker-config"), "DOCKER_BUILDKIT": "0"}


def build(env, workdir, name, text):
    context = os.path.join(workdir, name)
    os.makedirs(context)
    with open(os.path.join(context, "hello.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write(textwrap.dedent("""\
            FROM scratch
            COPY hello.txt /hello.txt
            CMD ["/hello"]
        """))
    docker(env, "build", "-t", name, context)


def test_the_ecr_tutorial_with_docker(ecr_berth, workdir, docker_env):
    registry = ecr_berth.host
    code, out, err = aws(ecr_berth, "ecr", "create-repository", "--repository-name", "hello-repository",
                         "--image-tag-mutability", "IMMUTABLE")
    assert code == 0, err
    repository_uri = json.loads(out)["repository"]["repositoryUri"]
    assert repository_uri == f"{registry}/hello-repository"

    code, password, err = aws(ecr_berth, "ecr", "get-login-password")
    assert code == 0, err
    login = docker(docker_env, "login", "--username", "AWS", "--password-stdin", registry, stdin=password)
    assert "Login Succeeded" in login.stdout

    build(docker_env, workdir, "hello-world", "hello from berth\n")
    docker(docker_env, "tag", "hello-world", f"{repository_uri}:v1")
    docker(docker_env, "push", f"{repository_uri}:v1")
    image_id = docker(docker_env, "image", "inspect", "--format", "{{.Id}}", f"{repository_uri}:v1").stdout.strip()

    docker(docker_env, "rmi", f"{repository_uri}:v1", "hello-world")
    docker(docker_env, "pull", f"{repository_uri}:v1")
    pulled = docker(docker_env, "image", "inspect", "--format", "{{.Id}}", f"{repository_uri}:v1").stdout.strip()
    assert pulled == image_id

    # The repository is immutable: another image under v1 is refused, with ECR's words.
    build(docker_env, workdir, "hello-other", "another image\n")
    docker(docker_env, "tag", "hello-other", f"{repository_uri}:v1")
    refused = docker(docker_env, "push", f"{repository_uri}:v1", check=False)
    assert refused.returncode != 0
    assert "cannot be overwritten because the repository is immutable" in refused.stderr + refused.stdout

    # Without logging in, docker is refused.
    docker(docker_env, "logout", registry)
    anonymous = docker(docker_env, "pull", f"{repository_uri}:v1", check=False)
    assert anonymous.returncode != 0
