"""berth over HTTPS (--tls-cert/--tls-key): the aws CLI, boto3 and skopeo
verifying the certificate, and a certificate replaced on SIGHUP."""

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import boto3
import pytest

from conftest import REGION, ROOT_KEY, Berth, aws, root_env


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory):
    key, cert = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "2", "-subj", "/CN=berth test CA")
    return key, cert


def make_server_cert(directory, ca, name):
    key, csr, cert = (os.path.join(directory, f"{name}.{x}") for x in ("key", "csr", "crt"))
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial", "-out", cert,
            "-days", "2", "-extfile", ext)
    return cert, key


def served_certificate(host, ca_cert):
    address, port = host.split(":")
    context = ssl.create_default_context(cafile=ca_cert)
    with socket.create_connection((address, int(port))) as raw:
        with context.wrap_socket(raw, server_hostname=address) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


@pytest.fixture
def tls_berth(workdir):
    ca = make_ca(workdir)
    cert, key = make_server_cert(workdir, ca, "server")
    server = Berth(extra=["--tls-cert", cert, "--tls-key", key], env=root_env())
    assert server.url == f"https://{server.host}"
    yield server, ca, (cert, key)
    server.stop()


def test_https_with_verified_certificates(tls_berth, workdir):
    server, ca, _ = tls_berth
    env = {"AWS_CA_BUNDLE": ca[1]}
    code, out, err = aws(server, "ecr", "create-repository", "--repository-name", "secure", env=env)
    assert code == 0, err
    assert json.loads(out)["repository"]["repositoryUri"] == f"{server.host}/secure"
    client = boto3.client("ecr", endpoint_url=server.url, region_name=REGION, verify=ca[1],
                          aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1])
    data = client.get_authorization_token()["authorizationData"][0]
    assert data["proxyEndpoint"] == server.url

    # Without the CA, clients refuse the certificate.
    system_bundle = "/etc/ssl/certs/ca-certificates.crt"
    code, out, err = aws(server, "ecr", "describe-registry", env={"AWS_CA_BUNDLE": system_bundle})
    assert code != 0 and "certificate" in err.lower()

    # skopeo logs in and pushes with TLS verification on, given the CA.
    certs = os.path.join(workdir, "certs.d")
    os.makedirs(certs)
    subprocess.run(["cp", ca[1], os.path.join(certs, "ca.crt")], check=True)
    code, password, err = aws(server, "ecr", "get-login-password", env=env)
    assert code == 0, err
    auth = os.path.join(workdir, "auth.json")
    login = subprocess.run(["skopeo", "login", "--authfile", auth, "--cert-dir", certs, "--username", "AWS",
                            "--password-stdin", server.host], input=password, capture_output=True, text=True)
    assert login.returncode == 0, login.stderr
    from oci_layout import Layout, sample_files

    layout = Layout(os.path.join(workdir, "src"))
    layout.tag(layout.image("amd64", [sample_files("tls", 2, 10_000)]), "v1")
    push = subprocess.run(["skopeo", "copy", "--authfile", auth, "--dest-cert-dir", certs,
                           f"oci:{layout.root}:v1", f"docker://{server.host}/secure:v1"], capture_output=True, text=True)
    assert push.returncode == 0, push.stderr
    images = client.list_images(repositoryName="secure")["imageIds"]
    assert [i["imageTag"] for i in images] == ["v1"]


def test_certificate_is_reloaded_on_sighup(tls_berth, workdir):
    server, ca, (cert, key) = tls_berth
    before = served_certificate(server.host, ca[1])
    new_cert, new_key = make_server_cert(workdir, ca, "renewed")
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while served_certificate(server.host, ca[1]) == before:
        assert time.time() < deadline, "certificate not reloaded"
        time.sleep(0.2)
