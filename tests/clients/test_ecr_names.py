"""berth under ECR-style names with TLS (`--ecr-domain`, `berth tls`): the
shapes clients are told, an HTTP/2 client signing ECR calls, certificates
reloaded when their files change, and Amazon's ECR credential helper logging
docker in with no `docker login`, through `/etc/hosts` and port 443."""

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import boto3

from conftest import ACCOUNT, BINARY, REGION, ROOT_KEY, Berth, aws, root_env

DOMAIN = "amazonaws.com"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.{DOMAIN}"
API = f"api.ecr.{REGION}.{DOMAIN}"


def berth_tls(directory, *args):
    result = subprocess.run(
        [BINARY, "tls", "--dir", directory, "--ecr-domain", DOMAIN, "--account-id", ACCOUNT,
         "--region", REGION, *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def served_certificate(port, ca, name):
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def ecr_style_berth(tls_dir, listen="127.0.0.1:0", extra=()):
    return Berth(
        extra=["--tls-cert", f"{tls_dir}/berth.crt", "--tls-key", f"{tls_dir}/berth.key",
               "--ecr-domain", DOMAIN, *extra],
        env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()},
        listen=listen,
    )


@pytest.fixture
def ecr_named(workdir):
    tls_dir = os.path.join(workdir, "tls")
    printed = berth_tls(tls_dir)
    server = ecr_style_berth(tls_dir)
    yield server, tls_dir, printed
    server.stop()


def test_berth_tls_prints_what_each_client_needs(ecr_named):
    _, tls_dir, printed = ecr_named
    ca = f"{tls_dir}/ca.crt"
    assert f"127.0.0.1 {REGISTRY} {API}" in printed
    assert f"/etc/docker/certs.d/{REGISTRY}/ca.crt" in printed
    assert f"/etc/containers/certs.d/{REGISTRY}/ca.crt" in printed
    assert f"export AWS_CA_BUNDLE={ca}" in printed
    assert os.stat(f"{tls_dir}/berth.key").st_mode & 0o077 == 0
    assert os.stat(f"{tls_dir}/ca.key").st_mode & 0o077 == 0
    names = subprocess.run(["openssl", "x509", "-in", f"{tls_dir}/berth.crt", "-noout", "-ext", "subjectAltName"],
                           capture_output=True, text=True, check=True).stdout
    for name in (f"DNS:{REGISTRY}", f"DNS:{API}", "DNS:localhost", "IP Address:127.0.0.1"):
        assert name in names
    subprocess.run(["openssl", "verify", "-CAfile", ca, f"{tls_dir}/berth.crt"], check=True, capture_output=True)


def test_shapes_are_ecrs_with_the_port_used(ecr_named):
    server, tls_dir, _ = ecr_named
    port = server.host.rsplit(":", 1)[1]
    env = {"AWS_CA_BUNDLE": f"{tls_dir}/ca.crt"}
    code, out, err = aws(server, "ecr", "create-repository", "--repository-name", "team/app", env=env)
    assert code == 0, err
    assert json.loads(out)["repository"]["repositoryUri"] == f"{REGISTRY}:{port}/team/app"
    code, out, err = aws(server, "ecr", "get-authorization-token", env=env)
    assert code == 0, err
    assert json.loads(out)["authorizationData"][0]["proxyEndpoint"] == f"https://{REGISTRY}:{port}"
    challenge = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{header_json}", "--cacert", f"{tls_dir}/ca.crt",
         f"https://localhost:{port}/v2/"], capture_output=True, text=True, check=True).stdout
    assert json.loads(challenge)["www-authenticate"] == [
        f'Basic realm="https://{REGISTRY}:{port}/",service="ecr.amazonaws.com"']


def test_an_http2_client_signs_ecr_calls(ecr_named):
    """HTTP/2 carries the host in `:authority`, not `Host`; SigV4 signs it."""
    server, tls_dir, _ = ecr_named
    port = server.host.rsplit(":", 1)[1]
    result = subprocess.run(
        ["curl", "-sS", "--http2", "-w", "\n%{http_version} %{http_code}", "--cacert", f"{tls_dir}/ca.crt",
         "--aws-sigv4", f"aws:amz:{REGION}:ecr", "--user", f"{ROOT_KEY[0]}:{ROOT_KEY[1]}",
         "-H", "X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeRegistry",
         "-H", "Content-Type: application/x-amz-json-1.1", "-d", "{}",
         f"https://localhost:{port}/"],
        capture_output=True, text=True, timeout=60,
    )
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "2 200", result.stdout + result.stderr
    assert json.loads(body)["registryId"] == ACCOUNT
    # A wrong secret is still refused over HTTP/2.
    result = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", f"{tls_dir}/ca.crt", "--aws-sigv4", f"aws:amz:{REGION}:ecr",
         "--user", f"{ROOT_KEY[0]}:wrong", "-H", "X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeRegistry",
         "-H", "Content-Type: application/x-amz-json-1.1", "-d", "{}", f"https://localhost:{port}/"],
        capture_output=True, text=True, timeout=60,
    )
    assert json.loads(result.stdout)["__type"] == "InvalidSignatureException"


def test_a_certificate_reloads_when_its_files_change(ecr_named):
    server, tls_dir, _ = ecr_named
    port = int(server.host.rsplit(":", 1)[1])
    ca = f"{tls_dir}/ca.crt"
    before = served_certificate(port, ca, "localhost")
    # A renewal for one more name, signed by the authority kept in the directory.
    berth_tls(tls_dir, "--name", "registry.internal")
    deadline = time.time() + 15
    while served_certificate(port, ca, "localhost") == before:
        assert time.time() < deadline, "the renewed certificate was not picked up"
        time.sleep(0.5)
    # The new one names the new host, and clients trusting the authority still trust it.
    served_certificate(port, ca, "registry.internal")


@pytest.fixture
def on_port_443(workdir):
    """berth as ECR at its own names: /etc/hosts points them at 127.0.0.1,
    berth listens on 443, docker trusts the authority for the registry host."""
    if os.geteuid() != 0:
        pytest.skip("needs root: /etc/hosts, port 443 and /etc/docker/certs.d")
    if shutil.which("docker-credential-ecr-login") is None:
        pytest.fail("amazon-ecr-credential-helper is not installed; scripts/test.sh installs it")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("no docker engine answers; scripts/test.sh starts one (containerd + dockerd)")
    tls_dir = os.path.join(workdir, "tls")
    berth_tls(tls_dir)
    with open("/etc/hosts") as f:
        hosts = f.read()
    certs = f"/etc/docker/certs.d/{REGISTRY}"
    try:
        with open("/etc/hosts", "a") as f:  # in place: /etc/hosts may be a mount
            f.write(f"\n127.0.0.1 {REGISTRY} {API}\n")
        os.makedirs(certs, exist_ok=True)
        shutil.copy(f"{tls_dir}/ca.crt", f"{certs}/ca.crt")
        server = ecr_style_berth(tls_dir, listen="127.0.0.1:443", extra=["--create-on-push"])
        try:
            yield server, tls_dir
        finally:
            server.stop()
    finally:
        with open("/etc/hosts", "w") as f:
            f.write(hosts)
        shutil.rmtree(certs, ignore_errors=True)


def tls_client(server, tls_dir, service, key=ROOT_KEY):
    return boto3.client(service, endpoint_url=server.url, region_name=REGION, verify=f"{tls_dir}/ca.crt",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1])


def docker(env, *args):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def helper_env(workdir, tls_dir, key, token=None):
    """docker with the credential helper for the registry host and nothing else."""
    config = os.path.join(workdir, "docker-config")
    os.makedirs(config, exist_ok=True)
    with open(os.path.join(config, "config.json"), "w") as f:
        json.dump({"credHelpers": {REGISTRY: "ecr-login"}}, f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "DOCKER_CONFIG": config,
        "DOCKER_BUILDKIT": "0",
        "HOME": workdir,  # the helper's log and cache directory (~/.ecr)
        "AWS_ECR_DISABLE_CACHE": "true",
        "AWS_CA_BUNDLE": f"{tls_dir}/ca.crt",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ACCESS_KEY_ID": key[0],
        "AWS_SECRET_ACCESS_KEY": key[1],
    })
    if token:
        env["AWS_SESSION_TOKEN"] = token
    return env


def test_the_credential_helper_logs_docker_in(on_port_443, workdir):
    server, tls_dir = on_port_443
    assert server.host == "127.0.0.1:443"
    # A user who may push and pull, with an access key of their own.
    iam = tls_client(server, tls_dir, "iam")
    iam.create_user(UserName="ci")
    iam.put_user_policy(UserName="ci", PolicyName="push", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ecr:*"], "Resource": "*"}],
    }))
    created = iam.create_access_key(UserName="ci")["AccessKey"]
    user_key = (created["AccessKeyId"], created["SecretAccessKey"])

    # The helper alone: what docker will ask it.
    env = helper_env(os.path.join(workdir, "as-user"), tls_dir, user_key)
    got = subprocess.run(["docker-credential-ecr-login", "get"], input=REGISTRY, capture_output=True,
                         text=True, env=env, timeout=60)
    assert got.returncode == 0, got.stderr + open(os.path.join(workdir, "as-user", ".ecr", "log", "ecr-login.log")).read()
    assert json.loads(got.stdout)["Username"] == "AWS"

    # docker push and pull with no `docker login`.
    context = os.path.join(workdir, "context")
    os.makedirs(context)
    with open(os.path.join(context, "hello.txt"), "w") as f:
        f.write("hello through the credential helper\n")
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY hello.txt /hello.txt\n")
    image = f"{REGISTRY}/helper/hello:v1"
    docker(env, "build", "-t", image, context)
    docker(env, "push", image)
    pushed = docker(env, "image", "inspect", "--format", "{{.Id}}", image).strip()
    docker(env, "rmi", image)
    docker(env, "pull", image)
    assert docker(env, "image", "inspect", "--format", "{{.Id}}", image).strip() == pushed

    # With temporary credentials from STS.
    sts = tls_client(server, tls_dir, "sts", key=user_key)
    session = sts.get_session_token(DurationSeconds=900)["Credentials"]
    temporary = (session["AccessKeyId"], session["SecretAccessKey"])
    env = helper_env(os.path.join(workdir, "as-session"), tls_dir, temporary, session["SessionToken"])
    docker(env, "rmi", image)
    docker(env, "pull", image)
    assert docker(env, "image", "inspect", "--format", "{{.Id}}", image).strip() == pushed
    docker(env, "rmi", image)

    # A key that is not berth's gets nothing.
    env = helper_env(os.path.join(workdir, "as-nobody"), tls_dir, ("AKIANOBODYNOBODY1234", "nope"))
    refused = subprocess.run(["docker", "pull", image], capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode != 0
