#!/usr/bin/env python3
"""Regenerate testdata/notation/no-digital-signature.{jws,crt}: good.jws's payload signed in
notation's JWS form (ES256) by a self-signed code-signing certificate whose KeyUsage lacks
digitalSignature, which notation-go refuses as a signing certificate (the Notary Project
signing-certificate requirements). notation itself will not sign with such a certificate, so
this envelope is made here, with the cryptography package.

    python3 integration/make-notary-ku-vector.py      then commit testdata/notation
"""
import base64
import datetime
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "notation")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    good = json.load(open(os.path.join(OUT, "good.jws")))
    padded = good["protected"] + "=" * (-len(good["protected"]) % 4)
    header = json.loads(base64.urlsafe_b64decode(padded))
    signed_at = datetime.datetime.strptime(header["io.cncf.notary.signingTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signet no-digitalSignature test signer")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(signed_at - datetime.timedelta(hours=1))
        .not_valid_after(signed_at + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    header["alg"] = "ES256"
    protected = b64url(json.dumps(header, separators=(",", ":")).encode())
    r, s = decode_dss_signature(key.sign(f"{protected}.{good['payload']}".encode(), ec.ECDSA(hashes.SHA256())))
    der = cert.public_bytes(serialization.Encoding.DER)
    envelope = {
        "payload": good["payload"],
        "protected": protected,
        "header": {"x5c": [base64.b64encode(der).decode()], "io.cncf.notary.signingAgent": "signet test vector"},
        "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
    }
    with open(os.path.join(OUT, "no-digital-signature.jws"), "w") as f:
        json.dump(envelope, f)
    with open(os.path.join(OUT, "no-digital-signature.crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    print("wrote", os.path.join(OUT, "no-digital-signature.{jws,crt}"))


if __name__ == "__main__":
    main()
