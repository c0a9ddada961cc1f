"""Starts the real berth binary for the client tests."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("BERTH_BIN", os.path.join(ROOT, "target", "debug", "berth"))


ACCOUNT = "123456789012"
REGION = "eu-west-1"
ROOT_KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


class Berth:
    def __init__(self, extra=(), env=None, listen="127.0.0.1:0", share_with=None, log=None):
        # Where its log (stderr) goes: an open file, or inherited.
        self.log = log
        if share_with is not None:
            # Another node of the same install: its database, blobs and key.
            self.tmp, self.data, self.schema = share_with.tmp, share_with.data, share_with.schema
            self.install_args = share_with.install_args
            self.owns_install = False
            self.env = {**os.environ, **(env or {})}
            self.command = [BINARY, "serve", "--listen", listen, *self.install_args, *extra]
            self.start()
            return
        self.owns_install = True
        self.tmp = tempfile.mkdtemp(prefix="berth-clients-")
        self.data = os.path.join(self.tmp, "data")
        self.schema = None
        database = []
        if os.environ.get("BERTH_TEST_DATABASE_URL"):
            # A schema of its own in the test database (PostgreSQL).
            url = os.environ["BERTH_TEST_DATABASE_URL"]
            self.schema = "t" + os.path.basename(self.tmp).replace("-", "_")
            database = ["--database", f"{url}{'&' if '?' in url else '?'}schema={self.schema}"]
        if os.environ.get("BERTH_TEST_STORAGE_URL"):
            # A prefix of its own in the test bucket (S3).
            prefix = os.path.basename(self.tmp).replace("-", "_")
            database += ["--storage", os.environ["BERTH_TEST_STORAGE_URL"].rstrip("/") + "/" + prefix]
        # What `berth admin` needs to reach the same install.
        self.install_args = ["--data-dir", self.data, *database]
        self.env = {**os.environ, **(env or {})}
        self.command = [BINARY, "serve", "--listen", listen, *self.install_args, *extra]
        self.start()

    def start(self):
        """Starts the server on this install (again, after `halt`)."""
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={"BERTH_LOG": "warn", "BERTH_CHECK_MODEL_ERRORS": "1", **self.env},
            text=True,
        )
        first = self.proc.stdout.readline()
        # "berth is serving the OCI registry API on http[s]://127.0.0.1:PORT/v2/"
        url = first.strip().rsplit(" ", 1)[1]
        scheme, rest = url.split("://", 1)
        self.host = rest.split("/", 1)[0].replace("[::]", "127.0.0.1")
        self.url = f"{scheme}://{self.host}"

    def halt(self):
        """Stops the server and keeps its install."""
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def admin(self, *args) -> str:
        """Runs `berth admin …` on this install; returns its output."""
        result = subprocess.run(
            [BINARY, "admin", *self.install_args, *args],
            capture_output=True, text=True, env=self.env, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def sql(self, statement: str):
        """Runs one statement on berth's database: how tests move time forward
        for state with an expiry (temporary credentials)."""
        if self.schema:
            url = os.environ["BERTH_TEST_DATABASE_URL"].split("?", 1)[0]
            subprocess.run(
                ["psql", "-q", url, "-c", f"SET search_path TO {self.schema}; {statement}"],
                check=True, capture_output=True, timeout=30,
            )
        else:
            import sqlite3

            with sqlite3.connect(os.path.join(self.data, "metadata.db"), timeout=10) as db:
                db.execute(statement)

    def stop(self):
        self.halt()
        if self.owns_install:
            shutil.rmtree(self.tmp, ignore_errors=True)


def client(berth, service, key=ROOT_KEY, token=None, validate=True):
    """A boto3 client for berth's `service` API, without retries."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=berth.url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1}, parameter_validation=validate),
    )


def root_env():
    return {"BERTH_ROOT_ACCESS_KEY_ID": ROOT_KEY[0], "BERTH_ROOT_SECRET_ACCESS_KEY": ROOT_KEY[1], "BERTH_REGION": REGION}


@pytest.fixture
def berth():
    """berth creating repositories on push, with a known root key."""
    server = Berth(extra=["--create-on-push"], env=root_env())
    yield server
    server.stop()


def aws(berth, *args, env=None):
    """Runs the aws CLI against berth as the root; returns (exit code, stdout, stderr)."""
    full_env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ROOT_KEY[0],
        "AWS_SECRET_ACCESS_KEY": ROOT_KEY[1],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        **(env or {}),
    }
    result = subprocess.run(
        ["aws", "--endpoint-url", berth.url, *args], capture_output=True, text=True, env=full_env, timeout=60
    )
    return result.returncode, result.stdout, result.stderr


def ok(result):
    """The parsed JSON output of a successful `aws` call."""
    code, out, err = result
    assert code == 0, err
    return json.loads(out) if out.strip() else None


def failure(result, error_type):
    """The error output of an `aws` call that failed with `error_type`."""
    code, _, err = result
    assert code != 0
    assert f"({error_type})" in err, err
    return err


def basic_auth(user=ROOT_KEY[0], password=ROOT_KEY[1]) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def ecr_berth():
    """berth with a known account, region and root access key."""
    server = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, "BERTH_REGION": REGION, **root_env()})
    yield server
    server.stop()


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)
