#!/usr/bin/env python3
"""Regenerates crates/berth-server/src/models/{ecr,iam,sts,secretsmanager}.json from botocore.

The output keeps what the server needs to speak each API exactly: every
operation (input/output shape, result wrapper, errors) and every shape's type,
members, required members and constraints (min, max, pattern, enum), and the
error codes and statuses. Documentation is dropped.

Usage: scripts/gen-models.py [BOTOCORE_VERSION]
"""
import glob
import gzip
import json
import os
import subprocess
import sys
import tempfile
import zipfile

VERSION = sys.argv[1] if len(sys.argv) > 1 else "1.44.5"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "berth-server", "src", "models")
SERVICES = {"ecr": "2015-09-21", "iam": "2010-05-08", "sts": "2011-06-15", "secretsmanager": "2017-10-17"}
KEEP_METADATA = ("apiVersion", "targetPrefix", "signingName", "jsonVersion", "protocol", "xmlNamespace")
KEEP_SHAPE = ("type", "required", "min", "max", "pattern", "enum", "exception", "fault", "error")


def strip(model, paginators):
    out = {
        "botocore": VERSION,
        "metadata": {k: model["metadata"][k] for k in KEEP_METADATA if k in model["metadata"]},
        "operations": {},
        "shapes": {},
        "paginators": paginators["pagination"],
    }
    for name, op in sorted(model["operations"].items()):
        out["operations"][name] = {
            "input": op.get("input", {}).get("shape"),
            "output": op.get("output", {}).get("shape"),
            "resultWrapper": op.get("output", {}).get("resultWrapper"),
            "errors": [e["shape"] for e in op.get("errors", [])],
        }
    for name, shape in sorted(model["shapes"].items()):
        kept = {k: shape[k] for k in KEEP_SHAPE if k in shape}
        if "members" in shape:
            kept["members"] = {m: spec["shape"] for m, spec in shape["members"].items()}
            kept["order"] = list(shape["members"])
        if "member" in shape:
            kept["member"] = shape["member"]["shape"]
        if "key" in shape:
            kept["key"] = shape["key"]["shape"]
            kept["value"] = shape["value"]["shape"]
        out["shapes"][name] = kept
    return out


with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, f"botocore=={VERSION}"],
        check=True,
    )
    wheel = glob.glob(os.path.join(tmp, "botocore-*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        for service, version in SERVICES.items():
            base = f"botocore/data/{service}/{version}"
            model = json.loads(gzip.decompress(z.read(f"{base}/service-2.json.gz")))
            try:
                paginators = json.loads(z.read(f"{base}/paginators-1.json"))
            except KeyError:
                paginators = {"pagination": {}}
            out = strip(model, paginators)
            path = os.path.join(OUT, f"{service}.json")
            with open(path, "w") as f:
                json.dump(out, f, indent=1, sort_keys=True)
                f.write("\n")
            print(f"wrote {path}: {len(out['operations'])} operations, {len(out['shapes'])} shapes (botocore {VERSION})")
