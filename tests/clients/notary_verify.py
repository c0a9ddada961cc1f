"""Offline checker for Notary Project signatures (JWS envelope, `notary.x509`
signing scheme) stored as OCI image manifests with a `subject`.

It follows notaryproject/specifications (signature-specification.md,
signature-envelope-jws.md, signing-scheme.md, trust-store-trust-policy.md
"Signature Verification" steps) as far as they apply without a network:
no revocation (CRL/OCSP), no RFC 3161 timestamp, no plugins, no trust-policy
identity matching. Where the spec leaves room, it is deliberately strict, so a
registry that passes it produces what `notation verify` accepts.

    verify(signature_manifest, envelope_bytes, target_descriptor, trusted_root_pem)

raises AssertionError with a message naming the failed rule, or returns
{"protected": <decoded protected header>, "payload": <decoded payload>,
 "header": <unprotected header>, "thumbprints": [<sha256 hex of each x5c cert>]}.

Needs the `cryptography` package. Run `python tests/clients/notary_verify.py`
for the self-test.
"""

import base64
import binascii
import datetime as _dt
import hashlib
import json
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # sha256("{}")
NOTARY_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
JWS_MEDIA_TYPE = "application/jose+json"
PAYLOAD_MEDIA_TYPE = "application/vnd.cncf.notary.payload.v1+json"
THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"
CREATED_ANNOTATION = "org.opencontainers.image.created"

H_SCHEME = "io.cncf.notary.signingScheme"
H_SIGNING_TIME = "io.cncf.notary.signingTime"
H_AUTHENTIC_TIME = "io.cncf.notary.authenticSigningTime"
H_EXPIRY = "io.cncf.notary.expiry"
H_PLUGIN = "io.cncf.notary.verificationPlugin"
H_PLUGIN_MIN = "io.cncf.notary.verificationPluginMinVersion"
U_AGENT = "io.cncf.notary.signingAgent"
U_TIMESTAMP = "io.cncf.notary.timestampSignature"

# Header names registered by RFC 7515 §4.1 / RFC 7518 §4.1 / RFC 7516 §4.1:
# `crit` MUST NOT list them (RFC 7515 §4.1.11; signature-envelope-jws.md `crit`).
REGISTERED_HEADERS = {
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit",
    "enc", "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
}
# Critical headers this checker understands for notary.x509. The plugin headers
# are known names, but honouring them needs the plugin, so they fail (spec:
# "Guidelines for implementations ...": MUST fail if it cannot do the plugin's logic).
UNDERSTOOD_CRITICAL = {H_SCHEME, H_EXPIRY}

# signature-envelope-jws.md "Supported alg header values" + signature-specification.md
# "Algorithm Selection".
ALG_HASH = {
    "ES256": hashes.SHA256, "ES384": hashes.SHA384, "ES512": hashes.SHA512,
    "PS256": hashes.SHA256, "PS384": hashes.SHA384, "PS512": hashes.SHA512,
}
EC_CURVE_ALG = {"secp256r1": ("ES256", 32), "secp384r1": ("ES384", 48), "secp521r1": ("ES512", 66)}
RSA_SIZE_ALG = {2048: "PS256", 3072: "PS384", 4096: "PS512"}

_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_DIGEST_RE = re.compile(r"^sha(256:[a-f0-9]{64}|384:[a-f0-9]{96}|512:[a-f0-9]{128})$")


def _fail(msg):
    raise AssertionError("notary signature: " + msg)


def _check(cond, msg):
    if not cond:
        _fail(msg)


def _b64url_decode(s, what):
    """RFC 7515 §2 Base64url: URL-safe alphabet, trailing '=' omitted, nothing else."""
    _check(isinstance(s, str), f"{what} must be a string")
    _check("=" not in s, f"{what} must be base64url without '=' padding")
    _check(_B64URL_RE.match(s) is not None, f"{what} contains characters outside the base64url alphabet")
    _check(len(s) % 4 != 1, f"{what} has an impossible base64url length")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    _check(base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == s, f"{what} is not canonical base64url")
    return raw


def _b64std_decode(s, what):
    """x5c entries: RFC 7515 §4.1.6 'base64-encoded (Section 4 of RFC4648 -- not base64url-encoded)'."""
    _check(isinstance(s, str), f"{what} must be a string")
    try:
        return base64.b64decode(s, validate=True)
    except binascii.Error as e:
        _fail(f"{what} is not standard padded base64 ({e})")


def _json_object(raw, what):
    def no_dupes(pairs):
        d = {}
        for k, v in pairs:
            _check(k not in d, f"{what} has duplicate member {k!r}")
            d[k] = v
        return d

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{what} is not UTF-8")
    try:
        obj = json.loads(text, object_pairs_hook=no_dupes)
    except ValueError as e:
        if isinstance(e, json.JSONDecodeError):
            _fail(f"{what} is not valid JSON ({e})")
        raise
    _check(isinstance(obj, dict), f"{what} must be a JSON object")
    return obj


def _parse_time(value, what, allow_fraction):
    """RFC 3339 date-time (signature-envelope-jws.md: time-secfrac SHOULD NOT be used)."""
    _check(isinstance(value, str), f"{what} must be an RFC 3339 string")
    m = _RFC3339_RE.match(value)
    _check(m is not None, f"{what} {value!r} is not an RFC 3339 date-time")
    _check(allow_fraction or m.group(7) is None,
           f"{what} {value!r} has fractional seconds (spec: SHOULD NOT be used)")
    iso = value[:19].replace("t", "T") + (m.group(7) or "")
    zone = m.group(8)
    iso += "+00:00" if zone in ("Z", "z") else zone
    try:
        return _dt.datetime.fromisoformat(iso)
    except ValueError:
        _fail(f"{what} {value!r} is not a valid date-time")


def _desc_triplet(desc, what):
    _check(isinstance(desc, dict), f"{what} must be an object")
    mt, dg, sz = desc.get("mediaType"), desc.get("digest"), desc.get("size")
    _check(isinstance(mt, str) and mt, f"{what}.mediaType must be a non-empty string")
    _check(isinstance(dg, str) and _DIGEST_RE.match(dg), f"{what}.digest {dg!r} is not a valid digest")
    _check(isinstance(sz, int) and not isinstance(sz, bool) and sz >= 0, f"{what}.size must be a non-negative integer")
    return mt, dg, sz


def _utc(cert, attr):
    v = getattr(cert, attr + "_utc", None)  # cryptography >= 42
    if v is None:
        v = getattr(cert, attr).replace(tzinfo=_dt.timezone.utc)
    return v


def _ext(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def _name(cert):
    return cert.subject.rfc4514_string()


def _alg_for_key(pub, what):
    if isinstance(pub, ec.EllipticCurvePublicKey):
        _check(pub.curve.name in EC_CURVE_ALG, f"{what}: EC curve {pub.curve.name} not allowed (P-256/384/521 only)")
        return EC_CURVE_ALG[pub.curve.name][0]
    if isinstance(pub, rsa.RSAPublicKey):
        _check(pub.key_size in RSA_SIZE_ALG, f"{what}: RSA key size {pub.key_size} not allowed (2048/3072/4096 only)")
        return RSA_SIZE_ALG[pub.key_size]
    _fail(f"{what}: public key type {type(pub).__name__} not allowed (RSA or ECDSA only)")


def _check_key_length(pub, what):
    if isinstance(pub, rsa.RSAPublicKey):
        _check(pub.key_size >= 2048, f"{what}: RSA key shorter than 2048 bits")
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        _check(pub.key_size >= 256, f"{what}: EC key shorter than 256 bits")
    else:
        _fail(f"{what}: public key type {type(pub).__name__} not allowed")


def _verify_jws_signature(pub, alg, sig, signing_input):
    h = ALG_HASH[alg]()
    if alg.startswith("ES"):
        size = EC_CURVE_ALG[pub.curve.name][1]
        # RFC 7518 §3.4: JWS ECDSA signature is R || S, each fixed-length big-endian, not DER.
        _check(len(sig) == 2 * size, f"{alg} signature must be {2 * size} bytes R||S (got {len(sig)}; DER is wrong)")
        r = int.from_bytes(sig[:size], "big")
        s = int.from_bytes(sig[size:], "big")
        try:
            pub.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(h))
        except InvalidSignature:
            _fail("signature does not verify over ASCII(protected '.' payload) with the x5c[0] key")
    else:
        # RFC 7518 §3.5: RSASSA-PSS, MGF1 with the same hash, salt length = hash length.
        try:
            pub.verify(sig, signing_input,
                       padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
        except InvalidSignature:
            _fail("signature does not verify over ASCII(protected '.' payload) with the x5c[0] key")


def _check_issued_by(child, parent, i):
    _check(child.issuer == parent.subject,
           f"x5c[{i}] issuer {child.issuer.rfc4514_string()!r} != x5c[{i + 1}] subject {_name(parent)!r}")
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError) as e:
        _fail(f"x5c[{i}] ({_name(child)}) is not signed by x5c[{i + 1}] ({_name(parent)}): {e or 'bad signature'}")


def _is_self_signed(cert):
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _check_ca_cert(cert, i, below):
    """signature-specification.md 'Root and Intermediate CA Certificates'."""
    what = f"x5c[{i}] CA certificate {_name(cert)!r}"
    bc = _ext(cert, x509.BasicConstraints)
    _check(bc is not None, f"{what}: basicConstraints extension missing")
    _check(bc.critical, f"{what}: basicConstraints must be critical")
    _check(bc.value.ca, f"{what}: basicConstraints cA must be true")
    if bc.value.path_length is not None:
        _check(bc.value.path_length >= below,
               f"{what}: pathLenConstraint {bc.value.path_length} < {below} CA certificates below it")
    ku = _ext(cert, x509.KeyUsage)
    _check(ku is not None, f"{what}: keyUsage extension missing")
    _check(ku.critical, f"{what}: keyUsage must be critical")
    _check(ku.value.key_cert_sign, f"{what}: keyUsage keyCertSign must be set")


def _check_leaf_cert(cert, i, require_code_signing_eku):
    """signature-specification.md 'Leaf Certificates' (codesigning)."""
    what = f"x5c[{i}] signing certificate {_name(cert)!r}"
    bc = _ext(cert, x509.BasicConstraints)
    if bc is not None:
        _check(not bc.value.ca, f"{what}: basicConstraints cA must be false")
    ku = _ext(cert, x509.KeyUsage)
    _check(ku is not None, f"{what}: keyUsage extension missing")
    _check(ku.critical, f"{what}: keyUsage must be critical")
    k = ku.value
    _check(k.digital_signature, f"{what}: keyUsage digitalSignature must be set")
    bad = [n for n, v in (("keyEncipherment", k.key_encipherment), ("dataEncipherment", k.data_encipherment),
                          ("keyAgreement", k.key_agreement), ("keyCertSign", k.key_cert_sign),
                          ("cRLSign", k.crl_sign)) if v]
    if k.key_agreement:  # encipher_only/decipher_only are only defined with keyAgreement
        bad += [n for n, v in (("encipherOnly", k.encipher_only), ("decipherOnly", k.decipher_only)) if v]
    _check(not bad, f"{what}: keyUsage must not set {', '.join(bad)}")
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if eku is not None:
        forbidden = {
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
            ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
            ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
            ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
            ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
            ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",  # also refused by notation-core-go
        }
        found = [forbidden[o] for o in eku.value if o in forbidden]
        _check(not found, f"{what}: extendedKeyUsage must not contain {', '.join(found)}")
    if require_code_signing_eku:
        _check(eku is not None and ExtendedKeyUsageOID.CODE_SIGNING in eku.value,
               f"{what}: extendedKeyUsage id-kp-codeSigning missing")


def verify(signature_manifest: dict, envelope_bytes: bytes, target_descriptor: dict, trusted_root_pem: bytes,
           *, now=None, require_artifact_type=True, require_code_signing_eku=True,
           allow_fractional_seconds=False) -> dict:
    """Verify a Notary Project JWS signature (notary.x509) offline. See module docstring."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    t_mt, t_dg, t_sz = _desc_triplet(target_descriptor, "target descriptor")

    # --- 1. Signature manifest (signature-specification.md "OCI Signatures") ---
    m = signature_manifest
    _check(isinstance(m, dict), "signature manifest must be a JSON object")
    _check(m.get("schemaVersion") == 2, "manifest schemaVersion must be 2")
    _check(m.get("mediaType") == OCI_MANIFEST, f"manifest mediaType must be {OCI_MANIFEST}")
    cfg = m.get("config")
    if "artifactType" in m or require_artifact_type:
        _check(m.get("artifactType") == NOTARY_ARTIFACT_TYPE, f"manifest artifactType must be {NOTARY_ARTIFACT_TYPE}")
        c_mt, c_dg, c_sz = _desc_triplet(cfg, "manifest config")
        _check(c_mt == OCI_EMPTY, f"with artifactType, config.mediaType must be {OCI_EMPTY} (got {c_mt})")
        _check(c_dg == EMPTY_DIGEST and c_sz == 2, "config must be the OCI empty descriptor (sha256:44136fa3..., size 2)")
        if "data" in cfg:
            _check(cfg["data"] == "e30=", "config.data, if present, must be 'e30=' (base64 of '{}')")
    else:  # legacy (image-spec 1.0) form
        c_mt, _, _ = _desc_triplet(cfg, "manifest config")
        _check(c_mt == NOTARY_ARTIFACT_TYPE, f"without artifactType, config.mediaType must be {NOTARY_ARTIFACT_TYPE}")
    layers = m.get("layers")
    _check(isinstance(layers, list) and len(layers) == 1, "manifest must have exactly one layer (the envelope)")
    l_mt, l_dg, l_sz = _desc_triplet(layers[0], "layers[0]")
    _check(l_mt == JWS_MEDIA_TYPE, f"layers[0].mediaType must be {JWS_MEDIA_TYPE} (got {l_mt})")
    _check(l_sz == len(envelope_bytes), f"layers[0].size {l_sz} != envelope length {len(envelope_bytes)}")
    algo = l_dg.split(":", 1)[0]
    _check(l_dg == algo + ":" + hashlib.new(algo, envelope_bytes).hexdigest(), "layers[0].digest does not match envelope bytes")
    s_mt, s_dg, s_sz = _desc_triplet(m.get("subject"), "manifest subject")
    _check((s_mt, s_dg, s_sz) == (t_mt, t_dg, t_sz),
           f"manifest subject {(s_mt, s_dg, s_sz)} != target {(t_mt, t_dg, t_sz)}")
    ann = m.get("annotations")
    _check(isinstance(ann, dict), "manifest annotations (REQUIRED) missing")
    _check(all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()), "annotations must map strings to strings")
    _check(THUMBPRINT_ANNOTATION in ann, f"annotation {THUMBPRINT_ANNOTATION} missing")

    # --- 2. Envelope structure (signature-envelope-jws.md "Signature Envelope") ---
    env = _json_object(envelope_bytes, "envelope")
    _check(set(env) == {"payload", "protected", "header", "signature"},
           f"envelope must be flattened JWS JSON with exactly payload/protected/header/signature (got {sorted(env)})")
    protected_raw = _b64url_decode(env["protected"], "protected")
    payload_raw = _b64url_decode(env["payload"], "payload")
    sig = _b64url_decode(env["signature"], "signature")
    _check(len(sig) > 0, "signature is empty")
    hdr = _json_object(protected_raw, "protected header")
    uh = env["header"]
    _check(isinstance(uh, dict), "unprotected header must be a JSON object")
    _check(not (set(hdr) & set(uh)), f"header names in protected and unprotected must be disjoint ({set(hdr) & set(uh)})")

    # --- 3. Protected header ---
    alg = hdr.get("alg")
    _check(alg in ALG_HASH, f"alg {alg!r} not allowed (PS256/PS384/PS512/ES256/ES384/ES512)")
    _check(hdr.get("cty") == PAYLOAD_MEDIA_TYPE, f"cty must be {PAYLOAD_MEDIA_TYPE} (got {hdr.get('cty')!r})")
    _check(hdr.get(H_SCHEME) == "notary.x509", f"{H_SCHEME} must be 'notary.x509' (got {hdr.get(H_SCHEME)!r})")
    _check(H_SIGNING_TIME in hdr, f"{H_SIGNING_TIME} is REQUIRED for notary.x509")
    _check(H_AUTHENTIC_TIME not in hdr, f"{H_AUTHENTIC_TIME} must not be present for notary.x509")
    signing_time = _parse_time(hdr[H_SIGNING_TIME], H_SIGNING_TIME, allow_fraction=allow_fractional_seconds)
    crit = hdr.get("crit")
    _check(isinstance(crit, list) and crit, "crit is REQUIRED and must be a non-empty array")
    _check(all(isinstance(c, str) for c in crit), "crit entries must be strings")
    _check(len(set(crit)) == len(crit), "crit has duplicate entries")
    reg = sorted(set(crit) & REGISTERED_HEADERS)
    _check(not reg, f"crit must not list registered JWS headers {reg}")
    _check(H_SCHEME in crit, f"crit must contain {H_SCHEME}")
    for c in crit:
        _check(c in hdr, f"crit lists {c!r} but it is not in the protected header")
        _check(c in UNDERSTOOD_CRITICAL, f"critical header {c!r} is not understood; verification must fail")
    expiry = None
    if H_EXPIRY in hdr:
        _check(H_EXPIRY in crit, f"{H_EXPIRY} is present so it must be listed in crit")
        expiry = _parse_time(hdr[H_EXPIRY], H_EXPIRY, allow_fraction=allow_fractional_seconds)
        _check(expiry > signing_time, "expiry must be after signingTime")
        _check(now < expiry, f"signature expired at {hdr[H_EXPIRY]}")

    # --- 4. Unprotected header ---
    unknown = sorted(set(uh) - {"x5c", U_AGENT, U_TIMESTAMP})
    _check(not unknown, f"unprotected header has unsupported members {unknown}")
    _check(U_TIMESTAMP not in uh, f"{U_TIMESTAMP} present: RFC 3161 timestamps are not checked here")
    if U_AGENT in uh:
        _check(isinstance(uh[U_AGENT], str), f"{U_AGENT} must be a string")
    x5c = uh.get("x5c")
    _check(isinstance(x5c, list) and x5c, "x5c is REQUIRED and must be a non-empty array")
    ders = [_b64std_decode(c, f"x5c[{i}]") for i, c in enumerate(x5c)]
    certs = []
    for i, der in enumerate(ders):
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as e:
            _fail(f"x5c[{i}] is not a DER X.509 certificate ({e})")

    # --- 5. Integrity: alg matches leaf key, signature over the signing input ---
    leaf_pub = certs[0].public_key()
    want_alg = _alg_for_key(leaf_pub, "x5c[0]")
    _check(alg == want_alg, f"alg {alg} does not match the signing key (needs {want_alg})")
    signing_input = (env["protected"] + "." + env["payload"]).encode("ascii")
    _verify_jws_signature(leaf_pub, alg, sig, signing_input)

    # --- 6. Payload ---
    payload = _json_object(payload_raw, "payload")
    _check(set(payload) == {"targetArtifact"}, f"payload must contain only targetArtifact (got {sorted(payload)})")
    ta = payload["targetArtifact"]
    p_mt, p_dg, p_sz = _desc_triplet(ta, "payload.targetArtifact")
    _check((p_mt, p_dg, p_sz) == (t_mt, t_dg, t_sz),
           f"payload targetArtifact {(p_mt, p_dg, p_sz)} != target {(t_mt, t_dg, t_sz)}")
    if "annotations" in ta:
        a = ta["annotations"]
        _check(isinstance(a, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in a.items()),
               "targetArtifact.annotations must map strings to strings")
    if "artifactType" in ta:
        _check(isinstance(ta["artifactType"], str), "targetArtifact.artifactType must be a string")

    # --- 7. Certificate chain (signature-specification.md "Certificate Requirements") ---
    for i, c in enumerate(certs):
        _check_key_length(c.public_key(), f"x5c[{i}]")
        h = c.signature_hash_algorithm
        _check(not isinstance(h, hashes.SHA1), f"x5c[{i}] is signed with SHA-1")
        nb, na = _utc(c, "not_valid_before"), _utc(c, "not_valid_after")
        _check(nb <= signing_time <= na,
               f"x5c[{i}] ({_name(c)}) not valid at signingTime {hdr[H_SIGNING_TIME]} (valid {nb} .. {na})")
        # notary.x509 without a timestamp: every cert must be valid at verification time.
        _check(nb <= now <= na, f"x5c[{i}] ({_name(c)}) not valid now ({now}; valid {nb} .. {na})")
    if len(certs) == 1:
        _check(_is_self_signed(certs[0]), "single-certificate chain must be a self-signed certificate")
        _check_leaf_cert(certs[0], 0, require_code_signing_eku)
    else:
        for i in range(len(certs) - 1):
            _check(not _is_self_signed(certs[i]), f"x5c[{i}] ({_name(certs[i])}) is self-signed but not last in the chain")
            _check_issued_by(certs[i], certs[i + 1], i)
        _check(_is_self_signed(certs[-1]), f"last x5c certificate ({_name(certs[-1])}) must be a self-signed root")
        _check_leaf_cert(certs[0], 0, require_code_signing_eku)
        for i in range(1, len(certs)):
            _check_ca_cert(certs[i], i, i - 1)

    # --- 8. Authenticity: chain ends at a trusted root (trust store x509/ca) ---
    try:
        roots = x509.load_pem_x509_certificates(trusted_root_pem)
    except ValueError as e:
        _fail(f"trusted root PEM unreadable ({e})")
    root_ders = {r.public_bytes(serialization.Encoding.DER) for r in roots}
    _check(ders[-1] in root_ders, f"chain root {_name(certs[-1])!r} is not the trusted root")

    # --- 9. Thumbprint annotation (JSON array string, x5c order, SHA-256 of DER) ---
    thumbs = [hashlib.sha256(d).hexdigest() for d in ders]
    try:
        listed = json.loads(ann[THUMBPRINT_ANNOTATION])
    except ValueError:
        _fail(f"{THUMBPRINT_ANNOTATION} is not a JSON array string")
    _check(isinstance(listed, list) and all(isinstance(t, str) for t in listed),
           f"{THUMBPRINT_ANNOTATION} must be a JSON array of strings")
    _check(all(re.fullmatch(r"[0-9a-fA-F]{64}", t) for t in listed), f"{THUMBPRINT_ANNOTATION} entries must be 64 hex digits")
    _check([t.lower() for t in listed] == thumbs,
           f"{THUMBPRINT_ANNOTATION} {listed} != sha256 of x5c certs in order {thumbs}")
    if CREATED_ANNOTATION in ann:
        _parse_time(ann[CREATED_ANNOTATION], CREATED_ANNOTATION, allow_fraction=True)

    return {"protected": hdr, "payload": payload, "header": uh, "thumbprints": thumbs}


# ----------------------------------------------------------------------------
# Self-test
# ----------------------------------------------------------------------------

def _b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _make_cert(subject_cn, key, issuer_cert, issuer_key, *, ca, not_before, not_after,
               key_usage=None, ku_critical=True, eku=None):
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(x509.oid.NameOID.STATE_OR_PROVINCE_NAME, "WA"),
                      x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, "berth"),
                      x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, subject_cn)])
    b = (x509.CertificateBuilder()
         .subject_name(name)
         .issuer_name(issuer_cert.subject if issuer_cert else name)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before)
         .not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    ku = key_usage or dict(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca)
    full = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False)
    full.update(ku)
    b = b.add_extension(x509.KeyUsage(**full), critical=ku_critical)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def _build(*, tamper=None, leaf_eku=(ExtendedKeyUsageOID.CODE_SIGNING,), leaf_ku=None, leaf_ku_critical=True,
           der_signature=False, signing_time=None):
    """Build (manifest, envelope_bytes, target, root_pem) the way berth should.
    `tamper(ctx)` may edit ctx['header'] / ctx['payload'] / ctx['unprotected'] before signing."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _make_cert("berth signing root", root_key, None, None, ca=True,
                      not_before=now - _dt.timedelta(days=1), not_after=now + _dt.timedelta(days=3650))
    leaf = _make_cert("berth signer", leaf_key, root, root_key, ca=False,
                      not_before=now - _dt.timedelta(hours=1), not_after=now + _dt.timedelta(days=365),
                      key_usage=leaf_ku, ku_critical=leaf_ku_critical, eku=list(leaf_eku) if leaf_eku else None)
    image_manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
    target = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + hashlib.sha256(image_manifest).hexdigest(),
              "size": len(image_manifest)}
    st = (signing_time or now).strftime("%Y-%m-%dT%H:%M:%SZ")
    ctx = {
        "header": {"alg": "ES256", "cty": PAYLOAD_MEDIA_TYPE, H_SCHEME: "notary.x509",
                   H_SIGNING_TIME: st, "crit": [H_SCHEME]},
        "payload": {"targetArtifact": dict(target)},
        "unprotected": {"x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                                for c in (leaf, root)],
                        U_AGENT: "berth/0.0.0"},
        "leaf_key": leaf_key, "envelope": None,
    }
    if tamper:
        tamper(ctx)
    protected = _b64u(json.dumps(ctx["header"], separators=(",", ":")).encode())
    payload = _b64u(json.dumps(ctx["payload"], separators=(",", ":")).encode())
    der = ctx["leaf_key"].sign(f"{protected}.{payload}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    if der_signature:
        sig = der
    else:
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    env = {"payload": payload, "protected": protected, "header": ctx["unprotected"], "signature": _b64u(sig)}
    if ctx.get("envelope"):
        ctx["envelope"](env)
    envelope_bytes = json.dumps(env).encode()
    thumbs = [hashlib.sha256(base64.b64decode(c)).hexdigest() for c in ctx["unprotected"]["x5c"]]
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": NOTARY_ARTIFACT_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": JWS_MEDIA_TYPE, "digest": "sha256:" + hashlib.sha256(envelope_bytes).hexdigest(),
                    "size": len(envelope_bytes)}],
        "subject": dict(target),
        "annotations": {THUMBPRINT_ANNOTATION: json.dumps(thumbs), CREATED_ANNOTATION: st},
    }
    return manifest, envelope_bytes, target, root.public_bytes(serialization.Encoding.PEM)


def _expect_fail(label, args, needle, **kw):
    try:
        verify(*args, **kw)
    except AssertionError as e:
        assert needle in str(e), f"{label}: failed for the wrong reason: {e}"
        print(f"  ok   rejects {label}: {e}")
        return
    raise AssertionError(f"{label}: verify accepted a bad signature")


def _relayer(manifest, envelope_bytes):
    manifest["layers"][0]["digest"] = "sha256:" + hashlib.sha256(envelope_bytes).hexdigest()
    manifest["layers"][0]["size"] = len(envelope_bytes)


def _selftest():
    good = _build()
    out = verify(*good)
    assert out["payload"]["targetArtifact"]["digest"] == good[2]["digest"]
    assert out["protected"][H_SCHEME] == "notary.x509"
    print("  ok   accepts a valid signature")
    exp = verify(*_build(tamper=lambda c: c["header"].update(
        crit=[H_SCHEME, H_EXPIRY], **{H_EXPIRY: "2999-01-01T00:00:00Z"})))
    assert exp["protected"][H_EXPIRY] == "2999-01-01T00:00:00Z"
    print("  ok   accepts a valid signature with a critical expiry")

    # Payload digest changed after signing (signature no longer matches).
    m, e, t, r = _build()
    env = json.loads(e)
    p = json.loads(_b64url_decode(env["payload"], "p"))
    p["targetArtifact"]["digest"] = "sha256:" + "0" * 64
    env["payload"] = _b64u(json.dumps(p).encode())
    e2 = json.dumps(env).encode()
    _relayer(m, e2)
    _expect_fail("payload digest changed", (m, e2, t, r), "does not verify")

    # Validly signed, but for another artifact.
    m, e, t, r = _build(tamper=lambda c: c["payload"]["targetArtifact"].update(digest="sha256:" + "1" * 64))
    _expect_fail("targetArtifact for another image", (m, e, t, r), "payload targetArtifact")

    # Signature bit flipped.
    m, e, t, r = _build()
    env = json.loads(e)
    raw = bytearray(_b64url_decode(env["signature"], "s"))
    raw[5] ^= 0x01
    env["signature"] = _b64u(bytes(raw))
    e2 = json.dumps(env).encode()
    _relayer(m, e2)
    _expect_fail("flipped signature bit", (m, e2, t, r), "does not verify")

    # Wrong trusted root.
    m, e, t, _ = _build()
    other_root = _build()[3]
    _expect_fail("wrong trusted root", (m, e, t, other_root), "not the trusted root")

    # Missing / incomplete crit.
    m, e, t, r = _build(tamper=lambda c: c["header"].pop("crit"))
    _expect_fail("missing crit", (m, e, t, r), "crit is REQUIRED")
    m, e, t, r = _build(tamper=lambda c: c["header"].update(crit=[H_EXPIRY], **{H_EXPIRY: "2999-01-01T00:00:00Z"}))
    _expect_fail("crit without signingScheme", (m, e, t, r), f"crit must contain {H_SCHEME}")
    m, e, t, r = _build(tamper=lambda c: c["header"].update(**{H_EXPIRY: "2999-01-01T00:00:00Z"}))
    _expect_fail("expiry not in crit", (m, e, t, r), "must be listed in crit")
    m, e, t, r = _build(tamper=lambda c: c["header"].update(crit=[H_SCHEME, "x.unknown"], **{"x.unknown": 1}))
    _expect_fail("unknown critical header", (m, e, t, r), "not understood")
    m, e, t, r = _build(tamper=lambda c: c["header"].update(crit=[H_SCHEME, "alg"]))
    _expect_fail("registered header in crit", (m, e, t, r), "registered JWS headers")

    # Algorithm / encoding mistakes.
    m, e, t, r = _build(tamper=lambda c: c["header"].update(alg="ES384"))
    _expect_fail("alg not matching key", (m, e, t, r), "does not match the signing key")
    m, e, t, r = _build(der_signature=True)
    _expect_fail("DER ECDSA signature", (m, e, t, r), "R||S")
    m, e, t, r = _build(tamper=lambda c: c.update(envelope=lambda env: env.update(signature=env["signature"] + "==")))
    _expect_fail("padded base64url", (m, e, t, r), "padding")
    m, e, t, r = _build(tamper=lambda c: c["header"].update(**{H_SIGNING_TIME: "2024-01-01T00:00:00.123Z"}))
    _expect_fail("fractional signingTime", (m, e, t, r), "fractional")
    m, e, t, r = _build(tamper=lambda c: c["header"].update(cty="application/json"))
    _expect_fail("wrong cty", (m, e, t, r), "cty must be")

    # Certificates.
    m, e, t, r = _build(leaf_eku=(ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.SERVER_AUTH))
    _expect_fail("leaf with serverAuth", (m, e, t, r), "must not contain serverAuth")
    m, e, t, r = _build(leaf_eku=None)
    _expect_fail("leaf without codeSigning", (m, e, t, r), "id-kp-codeSigning missing")
    m, e, t, r = _build(leaf_ku_critical=False)
    _expect_fail("leaf keyUsage not critical", (m, e, t, r), "keyUsage must be critical")
    m, e, t, r = _build(leaf_ku=dict(digital_signature=True, key_encipherment=True))
    _expect_fail("leaf keyEncipherment", (m, e, t, r), "keyEncipherment")
    m, e, t, r = _build(signing_time=_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=30))
    _expect_fail("signingTime before leaf notBefore", (m, e, t, r), "not valid at signingTime")
    m, e, t, r = _build(tamper=lambda c: c["unprotected"]["x5c"].reverse())
    _expect_fail("x5c in wrong order", (m, e, t, r), "x5c[0]")
    m, e, t, r = _build(tamper=lambda c: c["unprotected"]["x5c"].pop())
    _expect_fail("x5c without root", (m, e, t, r), "self-signed")

    # Manifest.
    m, e, t, r = _build()
    m["annotations"][THUMBPRINT_ANNOTATION] = json.dumps(list(reversed(json.loads(m["annotations"][THUMBPRINT_ANNOTATION]))))
    _expect_fail("thumbprints out of order", (m, e, t, r), THUMBPRINT_ANNOTATION)
    m, e, t, r = _build()
    m["artifactType"] = "application/vnd.example"
    _expect_fail("wrong artifactType", (m, e, t, r), "artifactType")
    m, e, t, r = _build()
    m["config"]["mediaType"] = NOTARY_ARTIFACT_TYPE
    _expect_fail("config not empty descriptor", (m, e, t, r), "config.mediaType")
    m, e, t, r = _build()
    m["layers"][0]["mediaType"] = "application/cose"
    _expect_fail("layer not jose+json", (m, e, t, r), "layers[0].mediaType")
    m, e, t, r = _build()
    m["layers"].append(dict(m["layers"][0]))
    _expect_fail("two layers", (m, e, t, r), "exactly one layer")
    m, e, t, r = _build()
    m["subject"]["size"] += 1
    _expect_fail("subject mismatch", (m, e, t, r), "subject")
    m, e, t, r = _build()
    _expect_fail("envelope bytes not matching layer", (m, e + b" ", t, r), "layers[0].size")

    print("notary_verify self-test passed")


if __name__ == "__main__":
    _selftest()
