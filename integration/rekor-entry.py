#!/usr/bin/env python3
"""Rekor v1 entries signed by a test log key (there is no Rekor here), in the shapes cosign and
sigstore bundles carry them. Used by integration/testpki.sh; see its header for the commands.

  rekor-entry.py hashedrekord SIG SIGNER PAYLOAD OUT LOGKEY
        cosign's bundle annotation for a signature file SIG by SIGNER over PAYLOAD
  rekor-entry.py intoto ENVELOPE SIGNER OUT LOGKEY
        cosign 2's bundle annotation for an attestation (intoto 0.0.2 entry)
  rekor-entry.py dsse BUNDLE SIGNER OUT LOGKEY
        BUNDLE (a sigstore bundle v0.3 with a DSSE envelope) with a dsse 0.0.1 entry in
        tlogEntries, its SET as the inclusion promise
SIGNER is the PEM of the public key or certificate the log records as the signer."""
import base64, hashlib, json, subprocess, sys, time

b64 = lambda data: base64.b64encode(data).decode()
compact = lambda obj: json.dumps(obj, separators=(",", ":"))


def signed_entry(body, logkey, index):
    """The fields a SET covers, and the SET: the log key's signature over their canonical JSON."""
    der = subprocess.run(["openssl", "pkey", "-in", logkey, "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    entry = {"body": b64(compact(body).encode()), "integratedTime": int(time.time()),
             "logID": hashlib.sha256(der).hexdigest(), "logIndex": index}
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    set_ = subprocess.run(["openssl", "dgst", "-sha256", "-sign", logkey], input=canonical,
                          capture_output=True, check=True).stdout
    return entry, b64(set_)


def annotation(body, out, logkey, index):
    entry, set_ = signed_entry(body, logkey, index)
    open(out, "w").write(compact({"SignedEntryTimestamp": set_, "Payload": entry}))


def sha256(data):
    return {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}


kind, args = sys.argv[1], sys.argv[2:]
if kind == "hashedrekord":
    sig, signer, payload, out, logkey = args
    annotation({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": sha256(open(payload, "rb").read())},
        "signature": {"content": open(sig).read().strip(), "publicKey": {"content": b64(open(signer, "rb").read())}}}},
        out, logkey, 42)
elif kind == "intoto":
    # `sig` is base64 of the envelope's (already base64) signature string, as Rekor stores it.
    src, signer, out, logkey = args
    env = json.load(open(src))
    annotation({"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {
        "envelope": {"payloadType": env["payloadType"],
                     "signatures": [{"sig": b64(s["sig"].encode()), "publicKey": b64(open(signer, "rb").read())}
                                    for s in env["signatures"]]},
        "hash": sha256(compact(env).encode()),
        "payloadHash": sha256(base64.b64decode(env["payload"]))}}}, out, logkey, 44)
elif kind == "dsse":
    src, signer, out, logkey = args
    bundle = json.load(open(src))
    env = bundle["dsseEnvelope"]
    entry, set_ = signed_entry({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "envelopeHash": sha256(compact(env).encode()),
        "payloadHash": sha256(base64.b64decode(env["payload"])),
        "signatures": [{"signature": s["sig"], "verifier": b64(open(signer, "rb").read())} for s in env["signatures"]]}},
        logkey, 43)
    bundle["verificationMaterial"]["tlogEntries"] = [{
        "logIndex": str(entry["logIndex"]), "logId": {"keyId": b64(bytes.fromhex(entry["logID"]))},
        "kindVersion": {"kind": "dsse", "version": "0.0.1"}, "integratedTime": str(entry["integratedTime"]),
        "inclusionPromise": {"signedEntryTimestamp": set_}, "canonicalizedBody": entry["body"]}]
    open(out, "w").write(compact(bundle))
else:
    sys.exit(f"unknown entry kind {kind}")
