"""berth packaged (deploy/): the container image, the systemd unit and the
Kubernetes manifests.

The image is built from deploy/Containerfile with buildah, offline: its
runtime base is a real Debian bookworm made here with debootstrap from the
machine's own Debian mirror (cached under target/packaging/), the binary the
one under test, stripped. The image is pushed to berth, inspected there with
skopeo (non-root user, HEALTHCHECK, volume, entrypoint), pulled back and run
(chroot isolation: podman's runtime cannot set its rlimits on this machine
kind). The default, compiling path of the Containerfile is built with a
stand-in for the Rust image. The unit passes `systemd-analyze verify` and
`security`; every Kubernetes document parses and fits the others."""

import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import urllib.request

import pytest

from conftest import BINARY, REGION, ROOT, aws, basic_auth, ok

DEPLOY = os.path.join(ROOT, "deploy")
CONTAINERFILE = os.path.join(DEPLOY, "Containerfile")
# The Debian rootfs, kept between runs (delete it to make a fresh one).
CACHE = os.path.join(ROOT, "target", "packaging")
SUITE = "bookworm"
BASE_IMAGE = "localhost/debian:bookworm-slim"


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses (BERTH_TEST_DEBIAN_MIRROR wins)."""
    if os.environ.get("BERTH_TEST_DEBIAN_MIRROR"):
        return os.environ["BERTH_TEST_DEBIAN_MIRROR"]
    sources = ["/etc/apt/sources.list"]
    directory = "/etc/apt/sources.list.d"
    if os.path.isdir(directory):
        sources += [os.path.join(directory, f) for f in sorted(os.listdir(directory))
                    if f.endswith((".list", ".sources"))]
    for path in sources:
        try:
            text = open(path).read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        key, value = line.split(":", 1)
                        fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []) and SUITE in fields.get("suites", []) and fields.get("uris"):
                    return fields["uris"][0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    return "http://deb.debian.org/debian"


def debian_rootfs() -> str:
    """A minimal Debian bookworm (with ca-certificates) as a tar, made once."""
    tarball = os.path.join(CACHE, f"debian-{SUITE}-minbase.tar")
    if os.path.exists(tarball):
        return tarball
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if not debootstrap:
        pytest.fail("debootstrap is missing; scripts/test.sh installs it")
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE)
    try:
        rootfs = os.path.join(work, "rootfs")
        made = subprocess.run([debootstrap, "--variant=minbase", "--include=ca-certificates", SUITE, rootfs,
                               debian_mirror()], capture_output=True, text=True, timeout=900)
        assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
        # What an image leaves out: device nodes, apt's caches and indexes, docs.
        excluded = ["./dev/*", "./proc/*", "./sys/*", "./run/*", "./tmp/*", "./var/cache/apt/*",
                    "./var/lib/apt/lists/*", "./usr/share/doc/*", "./usr/share/man/*", "./usr/share/info/*",
                    "./usr/share/locale/*", "./var/log/*"]
        partial = os.path.join(work, "rootfs.tar")
        packed = subprocess.run(["tar", "-C", rootfs, "--numeric-owner", *(f"--exclude={e}" for e in excluded),
                                 "-cf", partial, "."], capture_output=True, text=True, timeout=300)
        assert packed.returncode == 0, packed.stderr
        os.replace(partial, tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


class Buildah:
    """buildah with storage of its own (vfs), removed afterwards."""

    def __init__(self):
        if not shutil.which("buildah"):
            pytest.fail("buildah is missing; scripts/test.sh installs it")
        self.dir = tempfile.mkdtemp(prefix="berth-packaging-")
        self.storage = ["--root", os.path.join(self.dir, "root"), "--runroot", os.path.join(self.dir, "run"),
                        "--storage-driver", "vfs"]

    def __call__(self, *args, offline=False, timeout=300, check=True):
        # offline: in a network namespace with nothing in it.
        command = (["unshare", "--net"] if offline else []) + ["buildah", *self.storage, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "BUILDAH_ISOLATION": "chroot"})
        if check:
            assert result.returncode == 0, f"buildah {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    def popen(self, *args):
        return subprocess.Popen(["buildah", *self.storage, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "BUILDAH_ISOLATION": "chroot"})

    def remove(self):
        subprocess.run(["buildah", *self.storage, "rm", "--all"], capture_output=True, timeout=120)
        subprocess.run(["buildah", *self.storage, "rmi", "--all", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def buildah():
    """buildah, with the Debian base image in its storage."""
    tool = Buildah()
    try:
        container = tool("from", "scratch").stdout.strip()
        tool("add", container, debian_rootfs(), "/")
        tool("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--cmd", "bash", container)
        tool("commit", "--rm", "--format", "docker", container, BASE_IMAGE)
        yield tool
    finally:
        tool.remove()


def build_args(**args):
    return [a for name, value in args.items() for a in ("--build-arg", f"{name}={value}")]


def bud(buildah, context, tag, *extra):
    """Builds deploy/Containerfile offline: nothing may be pulled or downloaded."""
    return buildah("bud", "--format", "docker", "--pull=never", *extra, "-f", CONTAINERFILE, "-t", tag, context,
                   offline=True, timeout=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_line(proc, timeout=60) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    assert selector.select(timeout), "no output from the container in time"
    return proc.stdout.readline()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_the_image_from_a_prebuilt_binary(berth, buildah, tmp_path):
    # The binary under test, stripped, alone in the build context.
    context = tmp_path / "context"
    context.mkdir()
    stripped = subprocess.run(["strip", "-o", str(context / "berth"), BINARY], capture_output=True, text=True)
    assert stripped.returncode == 0, stripped.stderr
    built = bud(buildah, str(context), "localhost/berth:packaging",
                *build_args(BINARY_FROM="prebuilt", BERTH_BINARY="berth", RUNTIME_IMAGE=BASE_IMAGE))
    # The Rust stage was skipped (its image, never pulled, would have failed
    # offline), and so was apt: the base image has its CA certificates.
    assert " AS compiled" not in built.stdout, built.stdout
    assert "Reading package lists" not in built.stdout + built.stderr

    # Pushed to berth as docker does, with an ECR password.
    code, password, err = aws(berth, "ecr", "get-login-password")
    assert code == 0 and password.strip(), err
    creds = f"AWS:{password.strip()}"
    image = f"{berth.host}/deploy/berth:1"
    buildah("push", "--tls-verify=false", "--creds", creds, "localhost/berth:packaging", f"docker://{image}")
    ok(aws(berth, "ecr", "describe-images", "--repository-name", "deploy/berth"))

    def skopeo(*args):
        result = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", creds, *args,
                                 f"docker://{image}"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    manifest = skopeo("--raw")
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    config = skopeo("--config", "--raw")["config"]
    assert config["User"] == "10001:10001"
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/berth", "healthcheck"]
    assert config["Volumes"] == {"/data": {}}
    assert config["ExposedPorts"] == {"5000/tcp": {}}
    assert config["Entrypoint"] == ["/usr/local/bin/berth"] and config["Cmd"] == ["serve"]
    assert {"BERTH_LISTEN=0.0.0.0:5000", "BERTH_DATA_DIR=/data"} <= set(config["Env"])
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "berth"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.base.name"] == BASE_IMAGE

    # Pulled back from berth and run: as 10001, with CA certificates and a
    # data directory of its own.
    container = buildah("from", "--tls-verify=false", "--creds", creds, f"docker://{image}").stdout.strip()
    shown = buildah("run", container, "--", "/bin/sh", "-c",
                    "id -u; id -g; stat -c %u:%g:%a /data; test -s /etc/ssl/certs/ca-certificates.crt && echo ca; "
                    "/usr/local/bin/berth --version").stdout.split()
    assert shown[:5] == ["10001", "10001", "10001:10001:750", "ca", "berth"], shown
    port = free_port()
    listen = f"--env=BERTH_LISTEN=127.0.0.1:{port}"
    server = buildah.popen("run", listen, container, "--", "/usr/local/bin/berth", "serve")
    try:
        line = first_line(server)
        assert f"http://127.0.0.1:{port}/v2/" in line, line + server.stderr.read() if server.poll() is not None else line
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and json.loads(body)["database"] == "ok", body
        # The image's own HEALTHCHECK, as an engine runs it (in the container,
        # with the image's environment).
        healthy = buildah("run", listen, container, "--", *config["Healthcheck"]["Test"][1:], check=False)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    unhealthy = buildah("run", listen, container, "--", *config["Healthcheck"]["Test"][1:], check=False)
    assert unhealthy.returncode != 0


def test_the_default_build_compiles_the_sources(buildah):
    """No build argument but the images: the Rust stage runs, from the
    repository root as context, and its binary is the image's. A stand-in for
    the Rust image records what cargo was asked and what it was given."""
    cargo = (
        "#!/bin/sh\nset -eu\n"
        "sources=$(ls -A | tr '\\n' ' ')\n"
        "mkdir -p target/release\n"
        "cat > target/release/berth <<EOF\n#!/bin/sh\ncat <<'RECORD'\n"
        "args: $*\nstrip: ${CARGO_PROFILE_RELEASE_STRIP:-}\nsources: $sources\nRECORD\nEOF\n"
        "chmod 755 target/release/berth\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix="-cargo", delete=False) as f:
        f.write(cargo)
    try:
        container = buildah("from", "--pull=never", BASE_IMAGE).stdout.strip()
        buildah("copy", "--chmod", "0755", container, f.name, "/usr/local/bin/cargo")
        buildah("commit", "--rm", "--format", "docker", container, "localhost/rust-stand-in:1")
    finally:
        os.unlink(f.name)
    built = bud(buildah, ROOT, "localhost/berth:compiled",
                *build_args(RUST_IMAGE="localhost/rust-stand-in:1", RUNTIME_IMAGE=BASE_IMAGE))
    assert " AS prebuilt" not in built.stdout, built.stdout
    container = buildah("from", "--pull=never", "localhost/berth:compiled").stdout.strip()
    record = buildah("run", container, "--", "/usr/local/bin/berth").stdout
    assert "args: build --release --locked --bin berth\n" in record, record
    assert "strip: debuginfo\n" in record, record
    # Only what cargo needs was copied in (not target/, .git, .venv …).
    assert record.split("sources:", 1)[1].split() == ["Cargo.lock", "Cargo.toml", "crates"], record


def test_the_pull_secret_job_logs_in_as_a_robot(berth, tmp_path):
    """The refresher's login step, as written in its manifest, with a robot's
    key: its password lets the robot into berth's /v2/."""
    import yaml

    with open(os.path.join(DEPLOY, "kubernetes", "pull-secret", "refresher.yaml")) as f:
        cronjob = next(d for d in yaml.safe_load_all(f) if d and d["kind"] == "CronJob")
    [login] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"]
    robot = berth.admin("create-robot", "k8s-pull", "--pull", "deploy/*")
    key = dict(re.findall(r"^(aws_access_key_id|aws_secret_access_key) = (\S+)$", robot, re.M))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({e["name"]: e["value"] for e in login["env"]})
    env.update({"BERTH_ENDPOINT": berth.url, "AWS_DEFAULT_REGION": REGION, "HOME": str(tmp_path),
                "AWS_ACCESS_KEY_ID": key["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": key["aws_secret_access_key"],
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    script = login["args"][0].replace("/work/", f"{tmp_path}/")
    ran = subprocess.run([*login["command"], script], capture_output=True, text=True, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    password = (tmp_path / "password").read_text().strip()
    request = urllib.request.Request(berth.url + "/v2/", headers={"Authorization": basic_auth("AWS", password)})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def serve_env_names() -> set:
    """The environment variables `berth serve` reads, from its help."""
    help_text = subprocess.run([BINARY, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    return set(re.findall(r"\[env: (BERTH_[A-Z0-9_]+)=", help_text)) | {
        "BERTH_ROOT_ACCESS_KEY_ID", "BERTH_ROOT_SECRET_ACCESS_KEY", "BERTH_LOG"}


AWS_ENV = {"AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_the_systemd_unit(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing; scripts/test.sh installs systemd")
    unit = open(os.path.join(DEPLOY, "systemd", "berth.service")).read()
    directives = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            directives.setdefault(key, []).append(value)
    assert directives["ExecStart"] == ["/usr/local/bin/berth serve"]
    assert directives["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert directives["EnvironmentFile"] == ["-/etc/berth/berth.env"]
    assert directives["DynamicUser"] == ["yes"] and directives["StateDirectory"] == ["berth"]
    assert "BERTH_DATA_DIR=/var/lib/berth" in directives["Environment"]
    # Longer than berth's job drain (60s).
    assert int(directives["TimeoutStopSec"][0].rstrip("s")) > 60

    # verify checks that ExecStart's program exists: the same unit, with the
    # binary under test where it would be installed.
    copy = tmp_path / "berth.service"
    copy.write_text(unit.replace("ExecStart=/usr/local/bin/berth ", f"ExecStart={BINARY} ", 1))
    verified = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and not (verified.stdout + verified.stderr).strip(), verified.stdout + verified.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(copy)],
                              capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for berth\.service: ([0-9.]+)", security.stdout)
    assert exposure, security.stdout + security.stderr
    assert float(exposure.group(1)) <= 2.0, security.stdout

    # The example environment file names only what berth reads.
    known = serve_env_names() | AWS_ENV
    for line in open(os.path.join(DEPLOY, "systemd", "berth.env")).read().splitlines():
        setting = line.lstrip("#")
        if re.match(r"^[A-Z][A-Z0-9_]*=", setting):
            assert setting.split("=", 1)[0] in known, line


def yaml_documents(directory):
    import yaml

    documents = {}
    for folder, _, files in os.walk(directory):
        for name in sorted(files):
            assert name.endswith(".yaml"), name
            path = os.path.join(folder, name)
            with open(path) as f:
                documents[os.path.relpath(path, directory)] = [d for d in yaml.safe_load_all(f) if d is not None]
    return documents


def test_the_kubernetes_manifests():
    files = yaml_documents(os.path.join(DEPLOY, "kubernetes"))
    objects = {}
    for path, documents in files.items():
        for doc in documents:
            assert doc.get("apiVersion") and doc.get("kind"), (path, doc)
            if doc["kind"] != "CredentialProviderConfig":
                assert not doc["metadata"].get("namespace"), (path, doc["metadata"])  # any namespace
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    kinds = sorted({kind for kind, _ in objects})
    assert kinds == ["CronJob", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Secret",
                     "Service", "ServiceAccount"], kinds
    secrets = {name: {**doc.get("data", {}), **doc.get("stringData", {})}
               for (kind, name), doc in objects.items() if kind == "Secret"}

    def check_pod(spec, where):
        """Every volume, Secret and key a pod names exists; its scripts parse."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (where, mount)
            for source in container.get("envFrom", []):
                assert source["secretRef"]["name"] in secrets, (where, source)
            command = container.get("command", [])
            if command[-1:] == ["-c"]:
                shell = os.path.basename(command[0])
                parsed = subprocess.run([shell, "-n", "-c", container["args"][0]], capture_output=True, text=True)
                assert parsed.returncode == 0, (where, parsed.stderr)
        for volume in volumes.values():
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, (where, volume)
        return volumes

    # berth: three nodes, probes on the container's port, not root, read-only.
    deployment = objects[("Deployment", "berth")]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    volumes = check_pod(pod["spec"], "berth")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    [container] = pod["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BERTH_LISTEN"].endswith(f":{ports['https']}")
    assert env["BERTH_STORAGE_URL"].startswith("s3://")
    berth_secret = secrets[container["envFrom"][0]["secretRef"]["name"]]
    assert berth_secret["BERTH_DATABASE_URL"].startswith("postgres://")
    known = serve_env_names() | AWS_ENV
    assert set(env) | set(berth_secret) <= known, (set(env) | set(berth_secret)) - known
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    data = env["BERTH_DATA_DIR"]
    assert "emptyDir" in volumes[mounts[data]["name"]]
    key = mounts[f"{data}/secret.key"]
    assert "secret.key" in secrets[volumes[key["name"]]["secret"]["secretName"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    for name in ("BERTH_TLS_CERT", "BERTH_TLS_KEY"):
        assert os.path.dirname(env[name]) in mounts
    assert pod["spec"]["terminationGracePeriodSeconds"] > 60
    service = objects[("Service", "berth")]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "https")]

    # The pull secret: refreshed every 6 hours by a job that may write that
    # one Secret and nothing else.
    cronjob = objects[("CronJob", "berth-pull-refresher")]
    assert cronjob["spec"]["schedule"] == "0 */6 * * *"
    job = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    check_pod(job, "berth-pull-refresher")
    account = job["serviceAccountName"]
    assert ("ServiceAccount", account) in objects
    [login] = job["initContainers"]
    assert "aws ecr get-login-password" in login["args"][0]
    [apply] = job["containers"]
    assert "kubectl create secret docker-registry berth-pull " in apply["args"][0]
    binding = objects[("RoleBinding", "berth-pull-refresher")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    role = objects[("Role", binding["roleRef"]["name"])]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["berth-pull"],
                              "verbs": ["get", "patch", "update"]}]
    assert objects[("Secret", "berth-pull")]["type"] == "kubernetes.io/dockerconfigjson"

    # The kubelet's ECR credential provider, for a berth answering as ECR.
    [provider_config] = files[os.path.join("kubelet", "credential-provider.yaml")]
    assert provider_config["kind"] == "CredentialProviderConfig"
    assert provider_config["apiVersion"] == "kubelet.config.k8s.io/v1"
    [provider] = provider_config["providers"]
    assert provider["name"] == "ecr-credential-provider"
    assert provider["matchImages"] == ["*.dkr.ecr.*.amazonaws.com"]
    assert provider["apiVersion"] == "credentialprovider.kubelet.k8s.io/v1"
