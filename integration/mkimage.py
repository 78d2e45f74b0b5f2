#!/usr/bin/env python3
"""The e2e world's image builder: a one-layer OCI image layout made from busybox-static,
without a container engine or a base image.

    mkimage.py LAYOUT NAME [--entrypoint JSON] [--cmd JSON]     prints the manifest digest

Builds are byte-reproducible (every mtime 0, gzip header mtime 0, sorted entries, canonical
JSON), so a re-run gives the same digest and signatures made earlier stay valid. NAME is
written into the layer (/etc/image-name) and the config label, so each NAME is content of
its own: containerd names content by the first reference it was pulled under.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

BUSYBOX = "/bin/busybox"


def entry(name, kind=tarfile.REGTYPE, mode=0o644, data=b"", link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, 0, link
    info.uid = info.gid = 0
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer(name):
    applets = sorted(set(subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True,
                                        text=True).stdout.split()) - {"busybox"})
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    entries = [entry(d, tarfile.DIRTYPE, 0o755) for d in ("bin", "dev", "etc", "proc", "root", "run", "sys", "var")]
    entries.append(entry("tmp", tarfile.DIRTYPE, 0o1777))
    entries.append(entry("bin/busybox", mode=0o755, data=busybox))
    entries += [entry("bin/" + a, tarfile.SYMTYPE, 0o777, link="busybox") for a in applets]
    entries.append(entry("etc/group", data=b"root:x:0:\n"))
    entries.append(entry("etc/image-name", data=(name + "\n").encode()))
    entries.append(entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, data)
    return out.getvalue()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("layout")
    ap.add_argument("name")
    ap.add_argument("--entrypoint", default="null")
    ap.add_argument("--cmd", default='["/bin/sh"]')
    a = ap.parse_args()

    blobs = os.path.join(a.layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    tar = layer(a.name)
    layer_desc = put(gzip.compress(tar, compresslevel=6, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
    epoch = "1970-01-01T00:00:00Z"
    config = {
        "architecture": "amd64", "os": "linux", "created": epoch,
        "config": {"Env": ["PATH=/bin"], "Entrypoint": json.loads(a.entrypoint), "Cmd": json.loads(a.cmd),
                   "WorkingDir": "/", "Labels": {"dev.signet.e2e.image": a.name}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        "history": [{"created": epoch, "created_by": "integration/mkimage.py " + a.name}],
    }
    config_desc = put(canonical(config), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = put(canonical(manifest), manifest["mediaType"])
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    with open(os.path.join(a.layout, "index.json"), "wb") as f:
        f.write(canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": [manifest_desc]}))
    with open(os.path.join(a.layout, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    print(manifest_desc["digest"])


if __name__ == "__main__":
    main()
