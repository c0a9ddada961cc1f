#!/usr/bin/env python3
"""Regenerates crates/berth-server/src/ecr/model.json from botocore's ECR model.

The output keeps what the server needs to speak ECR exactly: every operation
(input/output shape, errors) and every shape's type, members, required
members and constraints (min, max, pattern, enum). Documentation is dropped.

Usage: scripts/gen-ecr-model.py [BOTOCORE_VERSION]
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
OUT = os.path.join(ROOT, "crates", "berth-server", "src", "ecr", "model.json")
KEEP_SHAPE = ("type", "required", "min", "max", "pattern", "enum", "exception", "fault", "error")

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, f"botocore=={VERSION}"],
        check=True,
    )
    wheel = glob.glob(os.path.join(tmp, "botocore-*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        raw = z.read("botocore/data/ecr/2015-09-21/service-2.json.gz")
        paginators = json.loads(z.read("botocore/data/ecr/2015-09-21/paginators-1.json"))
model = json.loads(gzip.decompress(raw))

out = {
    "botocore": VERSION,
    "metadata": {k: model["metadata"][k] for k in ("apiVersion", "targetPrefix", "signingName", "jsonVersion")},
    "operations": {},
    "shapes": {},
    "paginators": paginators["pagination"],
}
for name, op in sorted(model["operations"].items()):
    out["operations"][name] = {
        "input": op.get("input", {}).get("shape"),
        "output": op.get("output", {}).get("shape"),
        "errors": [e["shape"] for e in op.get("errors", [])],
    }
for name, shape in sorted(model["shapes"].items()):
    kept = {k: shape[k] for k in KEEP_SHAPE if k in shape}
    if "members" in shape:
        kept["members"] = {m: spec["shape"] for m, spec in shape["members"].items()}
    if "member" in shape:
        kept["member"] = shape["member"]["shape"]
    if "key" in shape:
        kept["key"] = shape["key"]["shape"]
        kept["value"] = shape["value"]["shape"]
    out["shapes"][name] = kept

with open(OUT, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"wrote {OUT}: {len(out['operations'])} operations, {len(out['shapes'])} shapes (botocore {VERSION})")
