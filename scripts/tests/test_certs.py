"""`task istio:certs` (scripts/istio/certs.sh) with the real openssl."""

from __future__ import annotations

import hashlib
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

CERTS = ROOT / "scripts" / "istio" / "certs.sh"


def sh(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("certs") / "c"
    proc = sh(str(CERTS), str(out), "us", "eu")
    assert proc.returncode == 0, proc.stderr
    return out


def leaf(tmp: Path, ca_dir: Path, name: str) -> Path:
    """A workload-style certificate (SPIFFE URI, not a CA) signed by a cluster's CA, as istiod would."""
    key, csr, crt, ext = tmp / f"{name}.key", tmp / f"{name}.csr", tmp / f"{name}.crt", tmp / f"{name}.ext"
    ext.write_text("basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   f"subjectAltName=URI:spiffe://corp.local/ns/echo/sa/{name}\n")
    assert sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-subj", f"/O=corp.local/CN={name}", "-keyout", str(key), "-out", str(csr)).returncode == 0
    proc = sh("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca-cert.pem"), "-CAkey",
              str(ca_dir / "ca-key.pem"), "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(crt))
    assert proc.returncode == 0, proc.stderr
    return crt


def test_each_cluster_chain_verifies_against_the_root(certs):
    for region in ("us", "eu"):
        d = certs / region
        for f in ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"):
            assert (d / f).stat().st_size > 0
        proc = sh("openssl", "verify", "-CAfile", str(certs / "root-cert.pem"), str(d / "ca-cert.pem"))
        assert proc.returncode == 0 and ": OK" in proc.stdout, proc.stdout + proc.stderr
        assert (d / "root-cert.pem").read_bytes() == (certs / "root-cert.pem").read_bytes()
        chain = (d / "cert-chain.pem").read_text()
        assert chain == (d / "ca-cert.pem").read_text() + (certs / "root-cert.pem").read_text()


def test_intermediates_are_cas_that_cannot_make_cas(certs):
    text = sh("openssl", "x509", "-in", str(certs / "us" / "ca-cert.pem"), "-noout", "-text").stdout
    assert "CA:TRUE, pathlen:0" in text
    assert "Certificate Sign" in text


def test_a_workload_of_one_cluster_is_trusted_by_the_other(certs, tmp_path):
    """What cross-cluster mTLS needs: eu's root accepts a certificate us's istiod signs."""
    crt = leaf(tmp_path, certs / "us", "loadgen")
    proc = sh("openssl", "verify", "-CAfile", str(certs / "eu" / "root-cert.pem"),
              "-untrusted", str(certs / "us" / "ca-cert.pem"), str(crt))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_separate_root_is_not_trusted(certs, tmp_path):
    """Two clusters each with their own root (the old setup) fail the same verification."""
    other = tmp_path / "other"
    assert sh(str(CERTS), str(other), "eu").returncode == 0
    crt = leaf(tmp_path, other / "eu", "intruder")
    proc = sh("openssl", "verify", "-CAfile", str(certs / "us" / "root-cert.pem"),
              "-untrusted", str(other / "eu" / "ca-cert.pem"), str(crt))
    assert proc.returncode != 0


def test_rerunning_keeps_the_trust_and_repairs_a_broken_ca(certs):
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    before = {p: digest(p) for p in certs.rglob("*.pem")}
    assert sh(str(CERTS), str(certs), "us", "eu").returncode == 0
    assert {p: digest(p) for p in certs.rglob("*.pem")} == before
    # An eu CA that no longer verifies (replaced by garbage) is made again.
    (certs / "eu" / "ca-cert.pem").write_text("not a certificate\n")
    proc = sh(str(CERTS), str(certs), "us", "eu")
    assert proc.returncode == 0 and "new CA for eu" in proc.stdout
    assert digest(certs / "root-cert.pem") == before[certs / "root-cert.pem"]
    assert sh("openssl", "verify", "-CAfile", str(certs / "root-cert.pem"),
              str(certs / "eu" / "ca-cert.pem")).returncode == 0


def test_keys_are_private_and_never_tracked(certs):
    for key in [certs / "root-key.pem", certs / "us" / "ca-key.pem", certs / "eu" / "ca-key.pem"]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ignored = sh("git", "check-ignore", ".istio-certs/root-key.pem", ".istio-certs/us/ca-key.pem", cwd=ROOT)
    assert ignored.returncode == 0 and ignored.stdout.count("\n") == 2
    assert ".istio-certs" in (ROOT / ".dockerignore").read_text()


def test_usage_errors():
    assert sh(str(CERTS)).returncode != 0
    assert sh(str(CERTS), "/tmp/x").returncode == 2
