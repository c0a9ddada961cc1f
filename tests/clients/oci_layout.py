"""Builds OCI image layouts on disk for skopeo to push: real gzip'd tar layers,
an image config, manifests and an index, with the digests computed here."""

import gzip
import hashlib
import io
import json
import os
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class Layout:
    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.index_entries = []

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def layer(self, files: dict) -> tuple:
        """A gzip'd tar of `files` (name -> bytes); returns (descriptor, diff_id)."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for name, content in sorted(files.items()):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                info.mtime = 0
                tar.addfile(info, io.BytesIO(content))
        diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
        compressed = gzip.compress(raw.getvalue(), mtime=0)
        return self.blob(compressed, OCI_LAYER), diff_id

    def image(self, arch: str, layers: list) -> dict:
        """An image manifest over `layers` (each a dict of files); returns its descriptor."""
        built = [self.layer(files) for files in layers]
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in built]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(json.dumps(config).encode(), OCI_CONFIG),
            "layers": [desc for desc, _ in built],
        }
        desc = self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)
        desc["platform"] = {"architecture": arch, "os": "linux"}
        return desc

    def tag(self, desc: dict, tag: str):
        entry = dict(desc)
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index_entries.append(entry)
        self.save()

    def index(self, children: list) -> dict:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        return self.blob(json.dumps(index).encode(), OCI_INDEX)

    def save(self):
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": self.index_entries}, f)


def sample_files(seed: str, count: int, size: int) -> dict:
    """Deterministic, poorly compressible files."""
    files = {}
    for i in range(count):
        block = hashlib.sha256(f"{seed}/{i}".encode()).digest()
        files[f"{seed}/file{i}"] = (block * (size // len(block) + 1))[:size]
    return files
