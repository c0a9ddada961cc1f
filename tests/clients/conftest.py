"""Starts the real berth binary for the client tests."""

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
    def __init__(self, extra=(), env=None):
        self.tmp = tempfile.mkdtemp(prefix="berth-clients-")
        self.data = os.path.join(self.tmp, "data")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data, *extra],
            stdout=subprocess.PIPE,
            env={**os.environ, "BERTH_LOG": "warn", **(env or {})},
            text=True,
        )
        first = self.proc.stdout.readline()
        # "berth is serving the OCI registry API on http://127.0.0.1:PORT/v2/"
        self.host = first.split("http://", 1)[1].split("/", 1)[0]
        self.url = f"http://{self.host}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def berth():
    server = Berth()
    yield server
    server.stop()


@pytest.fixture
def ecr_berth():
    """berth with a known account, region and root access key."""
    server = Berth(
        env={
            "BERTH_ACCOUNT_ID": ACCOUNT,
            "BERTH_REGION": REGION,
            "BERTH_ROOT_ACCESS_KEY_ID": ROOT_KEY[0],
            "BERTH_ROOT_SECRET_ACCESS_KEY": ROOT_KEY[1],
        }
    )
    yield server
    server.stop()


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)
