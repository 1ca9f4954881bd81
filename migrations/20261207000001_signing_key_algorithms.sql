-- Claim-signing keys of three kinds (src/provenance/keys.rs): the Ed25519 leaf `hallmark init`
-- makes, and ES256 (P-256) or ES384 (P-384) leaves of an operator's own chain. One key signs an
-- image's C2PA claim and its record, so records now carry that key's signature: 64 bytes for
-- Ed25519 and ES256, 96 for ES384 (fixed-size COSE form, r || s for ECDSA).

-- Existing rows are Ed25519 keys.
ALTER TABLE signing_keys
    ADD COLUMN algorithm TEXT NOT NULL DEFAULT 'Ed25519';
ALTER TABLE signing_keys
    ALTER COLUMN algorithm DROP DEFAULT;
-- The raw key: 32 bytes for Ed25519, the uncompressed SEC1 point for ECDSA.
ALTER TABLE signing_keys
    DROP CONSTRAINT signing_keys_public_key_check,
    ADD CONSTRAINT signing_keys_key_shape CHECK (
        (algorithm = 'Ed25519' AND octet_length(public_key) = 32)
        OR (algorithm = 'ES256' AND octet_length(public_key) = 65)
        OR (algorithm = 'ES384' AND octet_length(public_key) = 97)
    );

ALTER TABLE records
    DROP CONSTRAINT records_signature_check,
    ADD CONSTRAINT records_signature_size CHECK (octet_length(signature) IN (64, 96));
