"""Starts the real berth binary for the client tests."""

import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("BERTH_BIN", os.path.join(ROOT, "target", "debug", "berth"))


class Berth:
    def __init__(self, extra=()):
        self.tmp = tempfile.mkdtemp(prefix="berth-clients-")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.tmp, "data"), *extra],
            stdout=subprocess.PIPE,
            env={**os.environ, "BERTH_LOG": "warn"},
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
def workdir(tmp_path):
    return str(tmp_path)
