"""Certificate generation for the local control plane (pure, no processes)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from xrouter_dev import certs


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_ca_is_self_signed_ca() -> None:
    ca = certs.make_ca()
    cert = load(ca.cert_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)


def test_server_cert_has_loopback_sans_and_chains_to_ca() -> None:
    ca = certs.make_ca()
    pair = certs.issue(
        ca, "kube-apiserver", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True
    )
    cert = load(pair.cert_pem)
    cert.verify_directly_issued_by(load(ca.cert_pem))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_cert_carries_user_and_groups() -> None:
    ca = certs.make_ca()
    cert = load(certs.issue(ca, "alice", organizations=("system:masters",), client=True).cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_issue_requires_a_usage() -> None:
    with pytest.raises(ValueError):
        certs.issue(certs.make_ca(), "nobody")


def test_write_makes_key_private(tmp_path: Path) -> None:
    crt, key = certs.make_ca().write(tmp_path, "ca")
    assert crt.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert key.stat().st_mode & 0o777 == 0o600


def test_signing_key_pair_matches() -> None:
    private_pem, public_pem = certs.make_signing_key()
    assert b"PRIVATE KEY" in private_pem and b"PUBLIC KEY" in public_pem
