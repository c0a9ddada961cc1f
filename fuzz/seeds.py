#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/seed-*) from real-looking
inputs: manifests, policies, headers, layers. Rerun after changing a
target's input format; the fuzzers add their own finds beside these.
Needs only Python's standard library (and `zstd` for one zstd layer)."""

import gzip, io, json, os, shutil, sqlite3, struct, subprocess, tarfile, tempfile, zipfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


D1 = "sha256:" + "a" * 64
D2 = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
D3 = "sha512:" + "0123456789abcdef" * 8

# --- manifest: one byte choosing the Content-Type (0 none, 1 OCI manifest,
# 2 OCI index, 3 Docker v2, 4 Docker list, 5 schema1, 6 with params, 7 json)
oci_manifest = {
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D2, "size": 1469},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D1, "size": 3623807,
                "annotations": {"org.opencontainers.image.title": "layer.tar.gz"}},
               {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": D3,
                "size": 1, "urls": ["https://example.com/layer"]}],
    "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
}
artifact = {
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json",
               "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
    "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": D1, "size": 242}],
    "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D2, "size": 527},
}
oci_index = {
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D1, "size": 527,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D2, "size": 527,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}],
}
docker_v2 = {
    "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": D2},
    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": D1}],
}
docker_list = {
    "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 7143,
                   "digest": D1, "platform": {"architecture": "ppc64le", "os": "linux"}}],
}
schema1 = {"schemaVersion": 1, "name": "hello-world", "tag": "latest", "architecture": "amd64",
           "fsLayers": [{"blobSum": D1}], "history": [{"v1Compatibility": "{}"}]}
no_media_type = dict(oci_manifest); del no_media_type["mediaType"]
for i, (ct, doc) in enumerate([(0, oci_manifest), (1, oci_manifest), (0, artifact), (2, oci_index),
                               (3, docker_v2), (4, docker_list), (5, schema1), (6, no_media_type),
                               (1, no_media_type), (0, oci_index)]):
    write("manifest", f"{i}", bytes([ct]) + json.dumps(doc, indent=3 if i % 2 else None).encode())

# --- reference: names, tags, references, digests
for i, s in enumerate(["library/ubuntu", "team/app/api", "a.b_c__d---e", "latest", "v1.2.3-rc.1_x",
                       D2, D3, "sha256+b64u:abc", "library/ubuntu:22.04", "team/app@" + D2,
                       "localhost:5000/x:y", "A" * 130]):
    write("reference", f"{i}", s)

# --- sigv4: Authorization, method, path, query, X-Amz-Date, headers
auth = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
headers = "Content-Type:application/x-www-form-urlencoded; charset=utf-8\nHost:iam.amazonaws.com\n"
write("sigv4", "0", f"{auth}\nGET\n/\nAction=ListUsers&Version=2010-05-08\n20150830T123600Z\n{headers}")
write("sigv4", "1", f"{auth}\nPOST\n/v2/team/../app/./blobs/%2F\nb=2&a=1&a=%20&c\n20150830T123600Z\n"
                    "host:ecr.us-east-1.amazonaws.com\nX-Amz-Target:AmazonEC2ContainerRegistry_V20150921.PutImage\n"
                    "x-amz-security-token:  a   b  \nhost:dup\n")
write("sigv4", "2", "AWS4-HMAC-SHA256 Credential=AKID/20240229/eu-west-1/ecr/aws4_request,SignedHeaders=host,"
                    "Signature=00\nPUT\n//a//b/\nX-Amz-Expires=300\n20240229T235960Z\nHost:r\n")
write("sigv4", "3", "AWS4-HMAC-SHA256 Credential=/a//b/aws4_request, SignedHeaders=, Signature=\n\n\n\n00001231T000000Z\n")

# --- iam_policy: one byte choosing the kind (0 identity, 1 resource, 2 trust),
# the document, then optionally NUL and request lines.
identity = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Pull", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
     "Resource": "arn:aws:ecr:*:123456789012:repository/${aws:username}/*"},
    {"Sid": "NoDelete", "Effect": "Deny", "NotAction": "ecr:Describe*", "Resource": "*",
     "Condition": {"StringNotEquals": {"ecr:ResourceTag/team": "web"},
                   "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]},
                   "Bool": {"aws:SecureTransport": "false"}}}]}
resource = {"Version": "2008-10-17", "Statement": [
    {"Sid": "CrossAccount", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::210987654321:root", "123456789012"]},
     "Action": "ecr:*", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
                                       "ForAnyValue:StringLike": {"aws:TagKeys": ["te*"]}}},
    {"Effect": "Deny", "Principal": "*", "Action": "ecr:DeleteRepository",
     "Condition": {"Null": {"aws:username": "true"}, "NumericLessThanEquals": {"ecr:MaxResults": 10}}}]}
trust = {"Version": "2012-10-17", "Statement": {
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/ci/alice", "Service": "ecs-tasks.amazonaws.com"},
    "Action": ["sts:AssumeRole", "sts:TagSession"],
    "Condition": {"StringEquals": {"sts:ExternalId": "x-1"}, "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/ci/*"}}}}
spec = "\0ecr:PutImage\narn:aws:ecr:us-east-1:123456789012:repository/alice/app\narn:aws:iam::123456789012:user/ci/alice\n123456789012\n\necr:ResourceTag/team=web\naws:TagKeys=team|env"
write("iam_policy", "0", b"\0" + json.dumps(identity).encode() + spec.encode())
write("iam_policy", "1", b"\1" + json.dumps(resource, indent=2).encode())
write("iam_policy", "2", b"\2" + json.dumps(trust).encode() + b"\0sts:AssumeRole\narn:aws:iam::123456789012:role/deploy\narn:aws:sts::123456789012:assumed-role/deploy/s1\n123456789012\narn:aws:iam::123456789012:role/deploy\n")
write("iam_policy", "3", b"\0" + json.dumps({"Version": "2012-10-17", "Id": "x", "Statement": [
    {"Effect": "Allow", "NotAction": ["iam:*"], "NotResource": "arn:aws:ecr:*:*:repository/secret-*",
     "Condition": {"StringEqualsIgnoreCase": {"aws:username": "${aws:username}"},
                   "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]},
                   "StringLikeIfExists": {"ecr:ResourceTag/env": "prod*"}}}]}).encode())

# --- lifecycle: the document, then optionally NUL and `pattern\ntag`
lc = [
    {"rules": [{"rulePriority": 1, "description": "Expire images older than 14 days",
                "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
                "action": {"type": "expire"}}]},
    {"rules": [{"rulePriority": 1, "description": "Keep last 2 prod images",
                "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 2},
                "action": {"type": "expire"}},
               {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*.*.*", "*-rc*"],
                                                 "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30},
                "action": {"type": "transition", "targetStorageClass": "archive"}},
               {"rulePriority": 3, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"}}]},
    {"rules": [{"rulePriority": 10, "description": "Delete archived images after 365 days",
                "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned",
                              "countUnit": "days", "countNumber": 365}, "action": {"type": "expire"}}]},
]
for i, p in enumerate(lc):
    write("lifecycle", f"{i}", json.dumps(p, indent=i))
write("lifecycle", "3", json.dumps(lc[0]) + "\0prod-*-x*\nprod-2024-xyz")

# --- query: one byte choosing the service (0 IAM, 1 STS form; 2 ECR, 3 Secrets Manager JSON)
write("query", "0", b"\0Action=CreateUser&Version=2010-05-08&UserName=bob&Path=%2Fci%2F&Tags.member.1.Key=team&Tags.member.1.Value=web&Tags.member.2.Key=env&Tags.member.2.Value=prod")
write("query", "1", b"\0Action=PutUserPolicy&UserName=bob&PolicyName=p&PolicyDocument=%7B%22Version%22%3A%222012-10-17%22%7D")
write("query", "2", b"\0Action=ListUsers&MaxItems=10&Marker=abc&PathPrefix=/")
write("query", "3", b"\0Action=CreateRole&RoleName=deploy&AssumeRolePolicyDocument=%7B%7D&MaxSessionDuration=3600&Tags.member.1.Key=a")
write("query", "4", b"\1Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/deploy&RoleSessionName=s1&DurationSeconds=900&PolicyArns.member.1.arn=arn:aws:iam::aws:policy/x&Tags.member.1.Key=k&Tags.member.1.Value=v&TransitiveTagKeys.member.1=k")
write("query", "5", b"\1Action=GetFederationToken&Name=bob&Policy=%7B%7D&DurationSeconds=abc")
write("query", "6", b"\2PutImage\n" + json.dumps({"repositoryName": "team/app", "imageManifest": json.dumps(docker_v2),
                                                    "imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                                    "imageTag": "latest", "imageDigest": D2}).encode())
write("query", "7", b"\2CreateRepository\n" + json.dumps({"repositoryName": "team/app", "imageTagMutability": "IMMUTABLE",
                                                            "imageScanningConfiguration": {"scanOnPush": True},
                                                            "encryptionConfiguration": {"encryptionType": "AES256"},
                                                            "tags": [{"Key": "team", "Value": "web"}]}).encode())
write("query", "8", b"\2BatchGetImage\n" + json.dumps({"repositoryName": "r", "imageIds": [{"imageTag": "v1"}, {"imageDigest": D2}],
                                                         "acceptedMediaTypes": ["application/vnd.oci.image.manifest.v1+json"]}).encode())
write("query", "9", b"\3CreateSecret\n" + json.dumps({"Name": "db/password", "SecretString": "hunter2",
                                                       "SecretBinary": "aGVsbG8=", "Tags": [{"Key": "a", "Value": "b"}]}).encode())
write("query", "10", b"\2StartLifecyclePolicyPreview\n" + json.dumps({"repositoryName": "r", "maxResults": 100,
                                                                       "lifecyclePolicyText": json.dumps(lc[0])}).encode())

# --- scanner inputs
DPKG = ("Package: libc6\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nSource: glibc\n"
        "Version: 2.36-9+deb12u4\nDescription: GNU C Library\n multi line\n .\n\n"
        "Package: libssl3\nStatus: install ok installed\nSource: openssl (3.0.11-1~deb12u2)\nVersion: 3.0.11-1~deb12u2+b1\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1:2.0~rc1\n")
APK = "C:Q1abc=\nP:musl\nV:1.2.4_rc1-r2\nA:x86_64\no:musl\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\no:busybox\n"
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
OS_ALPINE = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n"
OS_ROCKY = "NAME=\"Rocky Linux\"\nID='rocky'\nVERSION_ID=\"9.3\"\n"
METADATA = "Metadata-Version: 2.1\nName: Requests\nVersion: 2.31.0\nSummary: HTTP\n\nbody\n"
PKG_JSON = json.dumps({"name": "left-pad", "version": "1.2.0", "license": "WTFPL"})
PKG_SCOPED = json.dumps({"name": "@scope/pkg", "version": "1.5.0-beta.1"})
LOCK = json.dumps({"name": "app", "lockfileVersion": 3, "packages": {"": {"name": "app"},
                   "node_modules/left-pad": {"version": "1.1.0"},
                   "node_modules/a/node_modules/@scope/pkg": {"version": "1.0.0"},
                   "node_modules/alias": {"name": "real", "version": "2.0.0"}}})
POM = "#Generated by Maven\ngroupId=org.example\nartifactId=app\nversion=1.2.0\n"
MODINFO = ("path\texample.com/tool\nmod\texample.com/tool\t(devel)\t\n"
           "dep\tgolang.org/x/net\tv0.7.0\th1:x=\n=>\tgolang.org/x/net\tv0.17.0\th1:y=\n")
CARGO = json.dumps({"packages": [{"name": "tool", "version": "0.1.0", "source": "local"},
                                 {"name": "smallvec", "version": "1.6.0", "source": "crates.io"}]})
OS_LINES = "2.36-9+deb12u4\n1:2.36-9"

# scan_parsers: one byte choosing the parser, then the text
for i, (choice, text) in enumerate([(0, DPKG), (1, APK), (2, METADATA), (3, PKG_JSON), (4, LOCK),
                                    (5, "rails-7.0.4.3-x86_64-linux.gemspec"), (6, POM), (7, "go1.21.5 X:boringcrypto\n" + MODINFO),
                                    (8, CARGO), (9, OS_RELEASE), (10, "Zope.Interface__x"),
                                    (11, OS_LINES), (11, "1.2.4_rc1-r2\n1.2.4-r10"), (11, "1.0.0-SNAPSHOT\n1.0-alpha-1"),
                                    (11, "v1.2.3-rc.1+build\n1.2.3"), (11, "7.0.0.a\n7.0.0.pre.1"), (11, "1:3.0.7-25.el9_3\n3.0.7~beta")]):
    write("scan_parsers", f"{i}", bytes([choice]) + text.encode())


def go_buildinfo(version, modinfo):
    info = bytearray(b"\xff Go buildinf:" + bytes([8, 2]))
    info += bytes(32 - len(info))
    for s in (version, modinfo):
        n = len(s)
        while True:
            b = n & 0x7f
            n >>= 7
            if n:
                info.append(b | 0x80)
            else:
                info.append(b)
                break
        info += s
    return bytes(info)


def elf(sections):
    names = bytearray(b"\0")
    name_at = []
    for name, _ in sections + [(".shstrtab", b"")]:
        name_at.append(len(names))
        names += name.encode() + b"\0"
    body = bytearray(64)
    placed = []
    for _, contents in sections:
        placed.append((len(body), len(contents)))
        body += contents
    placed.append((len(body), len(names)))
    body += names
    shoff = len(body)
    body += bytes(64)
    for i, (offset, size) in enumerate(placed):
        body += struct.pack("<II16xQQ24x", name_at[i], 1, offset, size)
    body[0:4] = b"\x7fELF"
    body[4] = 2
    body[5] = 1
    body[0x28:0x30] = struct.pack("<Q", shoff)
    body[0x3A:0x3C] = struct.pack("<H", 64)
    count = len(sections) + 2
    body[0x3C:0x3E] = struct.pack("<H", count)
    body[0x3E:0x40] = struct.pack("<H", count - 1)
    return bytes(body)


def rpm_header(strings, epoch=None):
    index, data = b"", b""
    for tag, value in strings:
        index += struct.pack(">IIII", tag, 6, len(data), 1)
        data += value.encode() + b"\0"
    if epoch is not None:
        index += struct.pack(">IIII", 1003, 4, len(data), 1)
        data += struct.pack(">I", epoch)
    n = len(strings) + (epoch is not None)
    return struct.pack(">II", n, len(data)) + index + data


RPM_BLOB = rpm_header([(1000, "openssl-libs"), (1001, "3.0.7"), (1002, "24.el9"), (1022, "x86_64"),
                       (1044, "openssl-3.0.7-24.el9.src.rpm")], epoch=1)


def rpmdb(blobs):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rpmdb.sqlite")
        db = sqlite3.connect(path)
        db.execute("PRAGMA page_size=512")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
        for b in blobs:
            db.execute("INSERT INTO Packages (blob) VALUES (?)", (b,))
        db.commit()
        db.close()
        return open(path, "rb").read()


def zip_of(files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in files:
            z.writestr(name, data)
    return out.getvalue()


def tar_of(files):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        for path, data, mode in files:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = mode
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
    # Drop tarfile's padding to a 10 KiB record: the two end blocks are enough.
    data = out.getvalue().rstrip(b"\0")
    data += bytes(-len(data) % 512)
    return data + bytes(1024)


GO_BIN = elf([(".go.buildinfo", go_buildinfo(b"go1.20.1", ("0" * 16 + MODINFO + "1" * 16).encode())),
              (".dep-v0", zlib.compress(CARGO.encode()))])
JAR = zip_of([("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n"),
              ("META-INF/maven/org.example/app/pom.properties", POM)])
WAR = zip_of([("WEB-INF/lib/app.jar", JAR)])

deb_layer = tar_of([("./etc/os-release", OS_RELEASE.encode(), 0o644),
                    ("./var/lib/dpkg/status", DPKG.encode(), 0o644),
                    ("./var/lib/dpkg/status.d/base", DPKG.split("\n\n")[0].encode(), 0o644),
                    ("usr/.wh.share", b"", 0o644), ("opt/.wh..wh..opq", b"", 0o644)])
alpine_layer = tar_of([("etc/os-release", OS_ALPINE.encode(), 0o644),
                       ("lib/apk/db/installed", APK.encode(), 0o644),
                       ("app/node_modules/left-pad/package.json", PKG_JSON.encode(), 0o644),
                       ("app/node_modules/@scope/pkg/package.json", PKG_SCOPED.encode(), 0o644),
                       ("app/package-lock.json", LOCK.encode(), 0o644)])
lang_layer = tar_of([("usr/lib/python3/site-packages/requests-2.31.0.dist-info/METADATA", METADATA.encode(), 0o644),
                     ("usr/lib/ruby/gems/3.2.0/specifications/rails-7.0.4.gemspec", b"", 0o644),
                     ("opt/app/lib/app.jar", JAR, 0o644), ("opt/app/app.war", WAR, 0o644),
                     ("usr/local/bin/tool", GO_BIN, 0o755)])
rpm_layer = tar_of([("usr/lib/os-release", OS_ROCKY.encode(), 0o644),
                    ("var/lib/rpm/rpmdb.sqlite", rpmdb([RPM_BLOB]), 0o644)])
write("scan_layer", "deb.tar", deb_layer)
write("scan_layer", "alpine.tar.gz", gzip.compress(alpine_layer, 6, mtime=0))
write("scan_layer", "lang.tar", lang_layer)
write("scan_layer", "rpm.tar.gz", gzip.compress(rpm_layer, 9, mtime=0))
if shutil.which("zstd"):
    write("scan_layer", "alpine.tar.zst",
          subprocess.run(["zstd", "-q", "-c", "-3"], input=alpine_layer, capture_output=True, check=True).stdout)


# scan_files: a compression byte, then records (kind byte, u16 LE length, contents)
def records(compression, recs):
    out = bytearray([compression])
    for kind, content in recs:
        content = content.encode() if isinstance(content, str) else content
        out += bytes([kind]) + struct.pack("<H", len(content)) + content
    return bytes(out)


write("scan_files", "deb", records(0, [(3, OS_RELEASE), (0, DPKG), (1, DPKG.split("\n\n")[1])]))
write("scan_files", "alpine", records(1, [(3, OS_ALPINE), (2, APK), (6, PKG_JSON), (7, PKG_SCOPED), (8, LOCK)]))
write("scan_files", "python", records(2, [(4, METADATA), (5, METADATA.replace("Requests", "zope.interface"))]))
write("scan_files", "ruby-java", records(0, [(9, "rails-7.0.4.3-x86_64-linux"), (11, POM), (12, POM), (10, JAR)]))
write("scan_files", "go-rust", records(0, [(14, "go1.21.5\n" + MODINFO), (15, go_buildinfo(b"go1.22.0", MODINFO.encode())),
                                            (16, CARGO), (13, GO_BIN)]))
write("scan_files", "rpm", records(0, [(3, OS_ROCKY), (17, RPM_BLOB)]))
write("scan_files", "whiteouts", records(0, [(18, "opt"), (19, "usr/.wh.share\n"), (19, "./a/../b/./c\nx")]))
