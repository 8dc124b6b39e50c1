#!/usr/bin/python3
"""Test certificates for mailspool's integration tests, made with the openssl CLI.

Owns: one private test CA and the leaf certificates the peers present
(a good one for localhost/127.0.0.1/::1, one for the wrong name, a
self-signed one, an expired one).
Never: touches anything outside the directory it is given; these keys are
throwaway test material and must never be used for anything else.

Usage as a program: /usr/bin/python3 tests/fakes/certs.py DIR
"""
import os
import subprocess
import sys
from dataclasses import dataclass

OPENSSL = "openssl"
# EC keys: generated in milliseconds, accepted by OpenSSL/libcurl and Python ssl.
_KEYOPTS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
_GOOD_SAN = "DNS:localhost,IP:127.0.0.1,IP:::1"


@dataclass(frozen=True)
class Certs:
    """Paths (PEM files) of the generated test material."""
    dir: str
    ca: str                 # CA certificate: what clients put in CAFile
    ca_key: str
    server_cert: str        # CN=localhost, SAN localhost, 127.0.0.1, ::1; signed by ca
    server_key: str
    wrong_cert: str         # CN=wrong.example, SAN wrong.example; signed by ca
    wrong_key: str
    self_cert: str          # like server_cert but self-signed (not trusted via ca)
    self_key: str
    expired_cert: str       # like server_cert, signed by ca, validity ended in 2020
    expired_key: str


def _run(args, cwd):
    p = subprocess.run([OPENSSL] + args, cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed (%d): %s" %
                           (" ".join(args), p.returncode, p.stderr.strip()))


def _write(path, text):
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def _leaf_ext(d, name, san):
    path = os.path.join(d, name + ".ext")
    _write(path, "basicConstraints=critical,CA:FALSE\n"
                 "keyUsage=critical,digitalSignature,keyEncipherment\n"
                 "extendedKeyUsage=serverAuth\n"
                 "subjectAltName=%s\n"
                 "subjectKeyIdentifier=hash\n"
                 "authorityKeyIdentifier=keyid,issuer\n" % san)
    return path


def _signed_leaf(d, name, cn, san, days=3650):
    """Key + CSR + certificate signed by the CA in d."""
    _run(["req", "-new"] + _KEYOPTS + ["-keyout", name + ".key", "-out", name + ".csr",
                                       "-subj", "/CN=%s/O=mailspool tests" % cn], d)
    ext = _leaf_ext(d, name, san)
    _run(["x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", ext,
          "-out", name + ".pem"], d)


def _expired_leaf(d):
    """A CA-signed leaf whose validity ended long ago (openssl ca sets the dates)."""
    _run(["req", "-new"] + _KEYOPTS + ["-keyout", "expired.key", "-out", "expired.csr",
                                       "-subj", "/CN=localhost/O=mailspool tests"], d)
    db = os.path.join(d, "ca-db")
    os.makedirs(os.path.join(db, "new"), exist_ok=True)
    _write(os.path.join(db, "index.txt"), "")
    _write(os.path.join(db, "serial"), "1000\n")
    conf = os.path.join(d, "ca.cnf")
    _write(conf, "[ca]\ndefault_ca=test\n"
                 "[test]\ndir=%s\ndatabase=$dir/index.txt\nnew_certs_dir=$dir/new\n"
                 "serial=$dir/serial\ndefault_md=sha256\npolicy=any\n"
                 "unique_subject=no\ncopy_extensions=none\n"
                 "[any]\ncommonName=supplied\norganizationName=optional\n"
                 "[leaf]\nbasicConstraints=critical,CA:FALSE\n"
                 "keyUsage=critical,digitalSignature,keyEncipherment\n"
                 "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % (db, _GOOD_SAN))
    _run(["ca", "-batch", "-config", conf, "-extensions", "leaf", "-notext",
          "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "expired.csr",
          "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
          "-out", "expired.pem"], d)


def make_certs(d):
    """Creates all test certificates in directory d (created if missing)."""
    os.makedirs(d, exist_ok=True)
    _run(["req", "-x509"] + _KEYOPTS + [
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-sha256",
        "-subj", "/CN=mailspool test CA/O=mailspool tests",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    _signed_leaf(d, "server", "localhost", _GOOD_SAN)
    _signed_leaf(d, "wrong", "wrong.example", "DNS:wrong.example")
    _run(["req", "-x509"] + _KEYOPTS + [
        "-keyout", "self.key", "-out", "self.pem", "-days", "3650", "-sha256",
        "-subj", "/CN=localhost/O=mailspool tests self-signed",
        "-addext", "subjectAltName=" + _GOOD_SAN,
        "-addext", "extendedKeyUsage=serverAuth"], d)
    _expired_leaf(d)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    return Certs(dir=d, ca=p("ca.pem"), ca_key=p("ca.key"),
                 server_cert=p("server.pem"), server_key=p("server.key"),
                 wrong_cert=p("wrong.pem"), wrong_key=p("wrong.key"),
                 self_cert=p("self.pem"), self_key=p("self.key"),
                 expired_cert=p("expired.pem"), expired_key=p("expired.key"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: certs.py DIR\n")
        sys.exit(64)
    c = make_certs(sys.argv[1])
    for k, v in c.__dict__.items():
        print("%s=%s" % (k, v))
