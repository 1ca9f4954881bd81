#!/usr/bin/env python3
"""A claim-signing PKI and an RFC 3161 time-stamp authority for tests, written apart from
Hallmark's own code (asn1crypto for the structures, cryptography for keys and signatures).

  test_tsa.py pki DIR
      DIR/signer-root.pem    an Ed25519 root CA for claim signers (its key: signer-root-key.pem)
      DIR/tsa-root.pem       an RSA root CA for time-stamp authorities
      DIR/tsa-chain.pem      the TSA's certificate (RSA 2048; EKU timeStamping, critical), then
                             the root; DIR/tsa-key.pem its key
  test_tsa.py signer DIR --seconds N [--key ed25519|es256|es384]
      DIR/signer-chain.pem   a claim-signing certificate (an Ed25519 key, or ECDSA on P-256 or
                             P-384; digitalSignature; EKUs emailProtection and C2PA claim
                             signing) from the signer root, valid from an hour ago until N
                             seconds from now, then the root
      DIR/signer-key.pem     its PKCS#8 private key
  test_tsa.py serve DIR
      Prints the authority's URL (http://127.0.0.1:PORT/tsa) on one line, then answers every
      POSTed TimeStampReq with a granted TimeStampResp: a TSTInfo (the request's imprint and
      nonce, the time now) in CMS SignedData signed with SHA-256/RSA, with the signed attributes
      contentType, messageDigest and signingCertificateV2 (RFC 5816), the TSA's chain included.
      Stops when its standard input closes. Counts replies in DIR/served.
"""
import argparse
import datetime
import hashlib
import http.server
import os
import pathlib
import sys
import threading

from asn1crypto import algos, cms, core, tsp, x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

C2PA_CLAIM_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
TSA_POLICY = "1.3.6.1.4.1.4146.2.3"  # any policy OID: a test authority


def name(common_name):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Authorities"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def certificate(subject, issuer, public_key, issuer_key, not_before, not_after, ca, extra, hash_alg):
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hash_alg)


def key_usage(**set_bits):
    bits = dict.fromkeys(
        [
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ],
        False,
    )
    bits.update(set_bits)
    return x509.KeyUsage(**bits)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def private_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(folder):
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    long_ago, far = now - datetime.timedelta(days=30), now + datetime.timedelta(days=3650)
    ca_usage = (key_usage(key_cert_sign=True, crl_sign=True), True)

    root_key = ed25519.Ed25519PrivateKey.generate()
    root = certificate("Test Claim Root", "Test Claim Root", root_key.public_key(), root_key,
                       long_ago, far, True, [ca_usage], None)
    (folder / "signer-root.pem").write_bytes(pem(root))
    (folder / "signer-root-key.pem").write_bytes(private_pem(root_key))

    tsa_root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_root = certificate("Test TSA Root", "Test TSA Root", tsa_root_key.public_key(),
                           tsa_root_key, long_ago, far, True, [ca_usage], hashes.SHA256())
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = certificate(
        "Test Time-Stamp Authority", "Test TSA Root", tsa_key.public_key(), tsa_root_key,
        long_ago, far, False,
        [
            (key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
        ],
        hashes.SHA256(),
    )
    (folder / "tsa-root.pem").write_bytes(pem(tsa_root))
    (folder / "tsa-chain.pem").write_bytes(pem(tsa) + pem(tsa_root))
    (folder / "tsa-key.pem").write_bytes(private_pem(tsa_key))


SIGNER_KEYS = {
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "es256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "es384": lambda: ec.generate_private_key(ec.SECP384R1()),
}


def make_signer(folder, seconds, key="ed25519"):
    root_key = serialization.load_pem_private_key((folder / "signer-root-key.pem").read_bytes(), None)
    root_pem = (folder / "signer-root.pem").read_bytes()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    signer_key = SIGNER_KEYS[key]()
    signer = certificate(
        "Test Claim Signer", "Test Claim Root", signer_key.public_key(), root_key,
        now - datetime.timedelta(hours=1), now + datetime.timedelta(seconds=seconds), False,
        [
            (key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING]), False),
        ],
        None,
    )
    (folder / "signer-chain.pem").write_bytes(pem(signer) + root_pem)
    (folder / "signer-key.pem").write_bytes(private_pem(signer_key))


class Authority:
    def __init__(self, folder):
        self.folder = folder
        chain = x509.load_pem_x509_certificates((folder / "tsa-chain.pem").read_bytes())
        self.certs = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain]
        self.key = serialization.load_pem_private_key((folder / "tsa-key.pem").read_bytes(), None)
        self.serial = 0
        self.lock = threading.Lock()

    def reply(self, request_der):
        request = tsp.TimeStampReq.load(request_der)
        with self.lock:
            self.serial += 1
            serial = self.serial
            (self.folder / "served").write_text(str(serial))
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        info = {
            "version": "v1",
            "policy": TSA_POLICY,
            "message_imprint": request["message_imprint"],
            "serial_number": serial,
            "gen_time": now,
        }
        if request["nonce"].native is not None:
            info["nonce"] = request["nonce"]
        tst_info = tsp.TSTInfo(info)
        content = tst_info.dump()
        leaf = self.certs[0]
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
                {
                    "type": "signing_certificate_v2",
                    "values": [
                        {
                            "certs": [
                                {
                                    "hash_algorithm": {"algorithm": "sha256"},
                                    "cert_hash": hashlib.sha256(leaf.dump()).digest(),
                                }
                            ]
                        }
                    ],
                },
            ]
        )
        signature = self.key.sign(signed_attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": leaf.issuer,
                            "serial_number": leaf.serial_number,
                        }
                    }
                ),
                "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
                "signature": signature,
            }
        )
        signed_data = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": core.ParsableOctetString(content),
                },
                "certificates": self.certs if request["cert_req"].native else [],
                "signer_infos": [signer_info],
            }
        )
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()


def serve(folder):
    authority = Authority(folder)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = authority.reply(self.rfile.read(length))
                status = 200
            except Exception as error:  # a malformed request: the client sees a 400
                body, status = str(error).encode(), 400
            self.send_response(status)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}/tsa", flush=True)
    sys.stdin.read()  # until the test closes our standard input
    server.shutdown()


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pki").add_argument("dir", type=pathlib.Path)
    signer = sub.add_parser("signer")
    signer.add_argument("dir", type=pathlib.Path)
    signer.add_argument("--seconds", type=int, required=True)
    signer.add_argument("--key", choices=sorted(SIGNER_KEYS), default="ed25519")
    sub.add_parser("serve").add_argument("dir", type=pathlib.Path)
    args = parser.parse_args()
    if args.command == "pki":
        make_pki(args.dir)
    elif args.command == "signer":
        make_signer(args.dir, args.seconds, args.key)
    else:
        serve(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
