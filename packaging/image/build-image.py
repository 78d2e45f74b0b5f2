#!/usr/bin/env python3
"""Build signet's container image as an OCI image layout, without a container engine or a
base image: one layer with the binary, the shared libraries `ldd` says it loads, and the
host's CA bundle (for HTTPS registries). Byte-reproducible for the same inputs (sorted
entries, zero timestamps and owners), so the digest only changes when the content does.

usage: build-image.py BINARY OUT_DIR VERSION
Then: skopeo copy oci:OUT_DIR:VERSION docker://REGISTRY/signet:VERSION"""
import gzip, hashlib, io, json, os, re, subprocess, sys, tarfile

binary, out, version = sys.argv[1:4]

files = {"usr/bin/signet": binary}
for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
    if m:
        files[m.group(1).lstrip("/")] = m.group(1)
for ca in ["/etc/ssl/certs/ca-certificates.crt"]:
    if os.path.exists(ca):
        files[ca.lstrip("/")] = ca
dirs = ["etc/signet/policies", "var/lib/signet", "var/run/nri", "run/containerd", "tmp"]

def add(tar, info, data=None):
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data) if data is not None else None)

raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
    parents = set()
    for path in sorted(list(files) + dirs):
        parts = path.split("/")
        for i in range(1, len(parts) + (1 if path in dirs else 0)):
            parents.add("/".join(parts[:i]))
    for d in sorted(parents):
        info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE; info.mode = 0o1777 if d == "tmp" else 0o755
        add(tar, info)
    for path in sorted(files):
        data = open(os.path.realpath(files[path]), "rb").read()
        info = tarfile.TarInfo(path); info.size = len(data)
        info.mode = 0o755 if os.access(files[path], os.X_OK) else 0o644
        add(tar, info, data)
diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
gz = io.BytesIO()
with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
    g.write(raw.getvalue())
layer = gz.getvalue()

os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def blob(data, media):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return {"mediaType": media, "digest": f"sha256:{d}", "size": len(data)}

labels = {"org.opencontainers.image.title": "signet", "org.opencontainers.image.version": version,
          "org.opencontainers.image.description": "containerd NRI plugin refusing unsigned images"}
config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
          "config": {"Entrypoint": ["/usr/bin/signet"], "Cmd": ["run"], "Labels": labels,
                     "Env": ["PATH=/usr/bin"], "WorkingDir": "/"},
          "rootfs": {"type": "layers", "diff_ids": [diff_id]},
          "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "packaging/image/build-image.py"}]}
cfg = blob(json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json")
lay = blob(layer, "application/vnd.oci.image.layer.v1.tar+gzip")
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg, "layers": [lay], "annotations": labels}
man = blob(json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json")
man["annotations"] = {"org.opencontainers.image.ref.name": version}
json.dump({"schemaVersion": 2, "manifests": [man]}, open(f"{out}/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{out}/oci-layout", "w"))
print(man["digest"])
