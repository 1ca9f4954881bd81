#!/usr/bin/env python3
"""Checks a claim-signing certificate chain against the C2PA Certificate Policy's certificate
profiles (c2pa-org/conformance-public, docs/v0.2/cert-profiles/: rootCA, claimSigningIssuingCA,
claimSigningLeaf.al1), reading the certificates with Python's `cryptography`, not with Hallmark.

Usage: cert_profile_check.py ROOT.pem ISSUING_CA.pem LEAF.pem [--x5chain CHAIN.pem]

Prints one JSON object: `violations` (what breaks a MUST of a profile), `gaps` (MUSTs Hallmark
knowingly leaves out: they need a service it does not run, or an entry only the Conformance
Program hands out), and a summary of each certificate. With --x5chain, the chain a manifest
carries is checked too: leaf first, then the issuing CA, never the root.
"""
import argparse
import datetime
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

C2PA_CLAIM_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
C2PA_CERTIFICATE_POLICY = x509.ObjectIdentifier("1.3.6.1.4.1.62558.1.1")
C2PA_ASSURANCE_LEVEL = x509.ObjectIdentifier("1.3.6.1.4.1.62558.3")
C2PA_ASSURANCE_LEVEL_1 = "1.3.6.1.4.1.62558.3.10"
C2PA_CPL_RECORD = x509.ObjectIdentifier("1.3.6.1.4.1.62558.4")


def load(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificates(f.read())


def ext(cert, oid):
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def days(cert):
    return (cert.not_valid_after_utc - cert.not_valid_before_utc) / datetime.timedelta(days=1)


def check(cert, profile, issuer, out):
    bad = lambda what: out["violations"].append(f"{profile}: {what}")  # noqa: E731
    gap = lambda what: out["gaps"].append(f"{profile}: {what}")  # noqa: E731
    if cert.version != x509.Version.v3:
        bad("not X.509 v3")
    serial = cert.serial_number
    if serial <= 0 or serial.bit_length() > 159:
        bad("serial not a positive integer of at most 20 octets")
    for attribute in (NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        if not cert.subject.get_attributes_for_oid(attribute):
            bad(f"subject lacks {attribute._name}")
    if cert.issuer != issuer.subject:
        bad("issuer name is not the issuing certificate's subject")
    key = cert.public_key()
    if profile == "leaf":
        ok_key = (
            isinstance(key, ed25519.Ed25519PublicKey)
            or (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1", "secp521r1"))
            or (isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048)
        )
    else:
        ok_key = (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp384r1", "secp521r1")) or (
            isinstance(key, rsa.RSAPublicKey) and key.key_size >= 3072
        )
    if not ok_key:
        bad(f"key type not allowed: {type(key).__name__}")
    limit = {"leaf": 366, "issuing CA": 1827}.get(profile)
    if limit and days(cert) > limit:
        bad(f"valid {days(cert):.3f} days, over {limit}")

    ski = ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if ski is None or ski.critical:
        bad("SubjectKeyIdentifier missing or critical")
    elif ski.value.digest != x509.SubjectKeyIdentifier.from_public_key(key).digest:
        bad("SubjectKeyIdentifier is not RFC 5280 method 1 (SHA-1 of the public key)")
    aki = ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    issuer_ski = ext(issuer, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if profile != "root":
        if aki is None or aki.critical or aki.value.key_identifier is None:
            bad("AuthorityKeyIdentifier with keyIdentifier missing, or critical")
        elif issuer_ski is None or aki.value.key_identifier != issuer_ski.value.digest:
            bad("AuthorityKeyIdentifier does not match the issuer's SubjectKeyIdentifier")

    usage = ext(cert, ExtensionOID.KEY_USAGE)
    if usage is None or not usage.critical:
        bad("KeyUsage missing or not critical")
    else:
        u = usage.value
        if profile == "leaf":
            if not (u.digital_signature and u.content_commitment) or u.key_cert_sign:
                bad("KeyUsage is not digitalSignature + nonRepudiation")
        elif not (u.key_cert_sign and u.crl_sign):
            bad("KeyUsage lacks keyCertSign or cRLSign")
    constraints = ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if constraints is None or not constraints.critical:
        bad("BasicConstraints missing or not critical")
    else:
        c = constraints.value
        if profile == "leaf" and c.ca:
            bad("BasicConstraints cA is not FALSE")
        if profile == "issuing CA" and (not c.ca or c.path_length != 0):
            bad("BasicConstraints is not cA=TRUE, pathLenConstraint=0")
        if profile == "root" and (not c.ca or c.path_length is None or c.path_length > 2):
            bad("BasicConstraints is not cA=TRUE, pathLenConstraint <= 2")

    if profile in ("leaf", "issuing CA"):
        eku = ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
        if eku is None or eku.critical:
            bad("ExtendedKeyUsage missing or critical")
        elif C2PA_CLAIM_SIGNING not in eku.value or not (
            ExtendedKeyUsageOID.EMAIL_PROTECTION in eku.value or DOCUMENT_SIGNING in eku.value
        ):
            bad("ExtendedKeyUsage lacks c2pa-kp-claimSigning and emailProtection or documentSigning")
        policies = ext(cert, ExtensionOID.CERTIFICATE_POLICIES)
        if policies is None or policies.critical:
            bad("CertificatePolicies missing or critical")
        elif C2PA_CERTIFICATE_POLICY not in [p.policy_identifier for p in policies.value]:
            bad("CertificatePolicies lacks the C2PA certificate policy 1.3.6.1.4.1.62558.1.1")
        aia = ext(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
        crl = ext(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS)
        if aia is None and (profile == "leaf" or crl is None):
            gap("no AuthorityInformationAccess with an OCSP responder (Hallmark runs none)")
    else:
        if ext(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS) or ext(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS):
            bad("a root carries AuthorityInformationAccess or CRLDistributionPoints")
    if profile == "leaf":
        level = ext(cert, C2PA_ASSURANCE_LEVEL)
        if level is None or level.critical:
            bad("the C2PA assurance level extension is missing or critical")
        else:
            value = level.value.value
            # The extension's value is the DER of an OBJECT IDENTIFIER.
            if value[:1] != b"\x06" or decode_oid(value[2:]) != C2PA_ASSURANCE_LEVEL_1:
                bad(f"the assurance level is not {C2PA_ASSURANCE_LEVEL_1}")
        if ext(cert, C2PA_CPL_RECORD) is None:
            gap("no C2PA CPL record id (the Conformance Program assigns it)")
    out["certificates"].append(
        {
            "profile": profile,
            "subject": cert.subject.rfc4514_string(),
            "key": type(key).__name__,
            "days": round(days(cert), 2),
        }
    )


def decode_oid(body):
    first = body[0]
    arcs = [first // 40, first % 40]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(str(a) for a in arcs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("issuing_ca")
    parser.add_argument("leaf")
    parser.add_argument("--x5chain")
    args = parser.parse_args()
    root, issuing, leaf = load(args.root)[0], load(args.issuing_ca)[0], load(args.leaf)[0]
    out = {"violations": [], "gaps": [], "certificates": []}
    check(root, "root", root, out)
    check(issuing, "issuing CA", root, out)
    check(leaf, "leaf", issuing, out)
    for cert, issuer in ((issuing, root), (leaf, issuing)):
        try:
            cert.verify_directly_issued_by(issuer)
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            out["violations"].append(f"{cert.subject.rfc4514_string()}: not signed by its issuer ({error})")
    if args.x5chain:
        chain = load(args.x5chain)
        if chain[:1] != [leaf] or chain[1:2] != [issuing]:
            out["violations"].append("x5chain is not leaf, then the issuing CA")
        if root in chain:
            out["violations"].append("x5chain carries the root")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
