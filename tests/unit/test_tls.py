"""TLS without a lab: certificate summaries, plain-text recognition, the codes each failure
gets, and the probe against small servers on loopback (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from netcheck.checks import presentation

from netcheck.lab import tlsserver
from netcheck.lab.pki import Issued, LabCA
from netcheck.probes import tls
from netcheck.probes.tls import TlsResult


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LabCA:
    return LabCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_cert(ca: LabCA) -> Issued:
    return ca.issue("localhost", ["localhost", "127.0.0.1"])


def _summary(issued: Issued) -> tls.CertSummary:
    return tls.summarize_pem(issued.cert.read_bytes())


# -- certificate summaries ---------------------------------------------------------------------

def test_summary_of_a_certificate_from_the_lab_ca(ca: LabCA) -> None:
    s = _summary(ca.issue("www", ["www.lab.test", "198.18.2.20"]))
    assert "CN=www.lab.test" in s.subject
    assert "CN=netcheck lab CA" in s.issuer
    assert s.san == ["www.lab.test", "198.18.2.20"]
    assert 362 <= s.days_left <= 364
    assert not s.self_signed and not s.is_ca and not s.expired and not s.not_yet_valid
    assert s.key == "EC secp256r1"
    assert "SHA256" in s.signature_algorithm
    assert len(s.sha256) == 64
    assert s.not_after.endswith("Z") and s.not_after[4] == "-"


def test_summary_of_expired_and_future_certificates(ca: LabCA) -> None:
    expired = _summary(ca.issue("old", ["old.lab.test"], days_valid=30, starts_in_days=-40))
    assert expired.expired and expired.days_left < 0
    future = _summary(ca.issue("new", ["new.lab.test"], starts_in_days=10))
    assert future.not_yet_valid and not future.expired


def test_self_signed_is_recognised_by_signature(ca: LabCA) -> None:
    assert _summary(ca.issue("self", ["self.lab.test"], self_signed=True)).self_signed
    root = tls.summarize_pem(ca.files.cert.read_bytes())
    assert root.self_signed and root.is_ca


def test_summary_json_is_plain_and_bounded(ca: LabCA) -> None:
    many = [f"n{i}.lab.test" for i in range(80)]
    s = _summary(ca.issue("many", many))
    out = s.to_json()
    assert len(out["san"]) == 50 and out["san_total"] == 80
    assert set(s.brief()) == {"subject", "issuer", "not_after", "days_left", "self_signed"}


def test_broken_der_raises_value_error() -> None:
    with pytest.raises(ValueError):
        tls.summarize_der(b"\x30\x03\x02\x01\x00")


@pytest.mark.parametrize(("san", "host", "expected"), [
    (["www.lab.test"], "www.lab.test", True),
    (["WWW.Lab.Test"], "www.lab.test.", True),
    (["*.lab.test"], "www.lab.test", True),
    (["*.lab.test"], "a.b.lab.test", False),
    (["*.test"], "lab.test", False),  # no wildcard right under a top-level label
    (["other.lab.test"], "www.lab.test", False),
    (["198.18.2.20"], "198.18.2.20", True),
    (["2001:db8:2::20"], "2001:db8:2:0::20", True),
    (["www.lab.test"], "198.18.2.20", False),
])
def test_hostname_matches(ca: LabCA, san: list[str], host: str, expected: bool) -> None:
    s = tls.CertSummary("CN=x", "CN=y", san, "", "", 10, "1", "", False, False, "", "")
    assert tls.hostname_matches(s, host) is expected


# -- plain text on a TLS port ------------------------------------------------------------------

@pytest.mark.parametrize(("data", "expected"), [
    (b"\x16\x03\x01\x02\x00\x01", True),
    (b"\x15\x03\x03\x00\x02\x02\x46", True),
    (b"\x16", None),
    (b"\x16\x03", None),
    (b"\x16\x05", False),
    (b"HTTP/1.1 400 Bad Request\r\n", False),
    (b"SSH-2.0-OpenSSH_9.2p1\r\n", False),
    (b"", None),
])
def test_looks_like_tls(data: bytes, expected: Any) -> None:
    assert tls.looks_like_tls(data) is expected


@pytest.mark.parametrize(("line", "proto"), [
    ("HTTP/1.1 400 Bad Request", "HTTP"),
    ("SSH-2.0-OpenSSH_9.2p1 Debian-2", "SSH"),
    ("220 mail.example.test ESMTP Postfix", "SMTP or FTP"),
    ("+OK Dovecot ready.", "POP3"),
    ("* OK [CAPABILITY IMAP4rev1] ready", "IMAP"),
    ("hello", None),
])
def test_banner_protocol(line: str, proto: Any) -> None:
    assert tls.banner_protocol(line) == proto


def test_first_line_is_printable_and_bounded() -> None:
    assert tls.first_line(b"SSH-2.0-x\r\nmore") == "SSH-2.0-x"
    assert tls.first_line(b"220 hi\x1b[31mred\x00") == "220 hi.[31mred."
    long = tls.first_line(b"A" * 5000)
    assert len(long) == tls.MAX_BANNER_CHARS


def test_text_and_binary_are_told_apart() -> None:
    assert tls.is_text(b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n")
    assert not tls.is_text(bytes(range(256)))
    assert not tls.is_text(b"")


# -- failures and their codes ------------------------------------------------------------------

def _result(**fields: Any) -> TlsResult:
    r = TlsResult("198.18.2.20", 443, "www.lab.test", alpn_offered=["h2", "http/1.1"])
    for key, value in fields.items():
        setattr(r, key, value)
    return r


@pytest.mark.parametrize(("fields", "code", "words"), [
    ({"state": "plaintext", "plaintext": "HTTP/1.1 400 Bad Request", "banner_protocol": "HTTP"},
     "TLS_PROTOCOL_MISMATCH", ["plain text", "HTTP/1.1 400 Bad Request"]),
    ({"state": "binary", "first_bytes": "37 6e b2"}, "TLS_PROTOCOL_MISMATCH", ["37 6e b2"]),
    ({"state": "no_answer", "waited_s": 1.0}, "TLS_HANDSHAKE_FAILED",
     ["no answer to the ClientHello within 1 s"]),
    ({"state": "closed"}, "TLS_HANDSHAKE_FAILED", ["closed"]),
    ({"state": "oversized", "bytes_received": 300000}, "TLS_HANDSHAKE_FAILED", ["300000"]),
    ({"state": "tls_error", "alert_code": 116, "alert": "certificate required",
      "post_handshake": True}, "TLS_CLIENT_CERT_REQUIRED", ["none was given"]),
    ({"state": "tls_error", "alert_code": 40, "alert": "handshake failure",
      "cert_requested": True}, "TLS_CLIENT_CERT_REQUIRED", ["client certificate"]),
    ({"state": "tls_error", "alert_code": 48, "alert": "unknown ca", "cert_sent": True},
     "TLS_CLIENT_CERT_REQUIRED", ["rejected"]),
    ({"state": "tls_error", "alert_code": 40, "alert": "handshake failure",
      "cert_requested": False}, "TLS_HANDSHAKE_FAILED", ["cipher suite"]),
    ({"state": "tls_error", "alert_code": 70, "alert": "protocol version",
      "legacy_version": "TLSv1"}, "TLS_HANDSHAKE_FAILED", ["no TLS version in common", "TLSv1"]),
    ({"state": "tls_error", "error_reason": "UNSUPPORTED_PROTOCOL"}, "TLS_HANDSHAKE_FAILED",
     ["no TLS version in common"]),
    ({"state": "tls_error", "error_reason": "NO_SHARED_CIPHER"}, "TLS_HANDSHAKE_FAILED",
     ["cipher"]),
    ({"state": "tls_error", "alert_code": 112, "alert": "unrecognized name"},
     "TLS_HANDSHAKE_FAILED", ["www.lab.test"]),
    ({"state": "tls_error", "error_reason": "UNEXPECTED_EOF_WHILE_READING"},
     "TLS_HANDSHAKE_FAILED", ["mid-handshake"]),
])
def test_handshake_failures_get_their_code(fields: dict[str, Any], code: str,
                                           words: list[str]) -> None:
    found = presentation.handshake_problem(_result(**fields))
    assert found is not None
    assert found[0] == code
    for word in words:
        assert word in found[1]


def test_completed_handshake_is_no_problem() -> None:
    assert presentation.handshake_problem(_result(state="ok")) is None


@pytest.mark.parametrize(("code", "kind"), [
    (None, None), (0, None), (10, "expired"), (9, "not_yet_valid"), (62, "hostname"),
    (64, "hostname"), (18, "self_signed"), (19, "untrusted"), (20, "untrusted"),
    (21, "untrusted"),
])
def test_verify_codes(code: Any, kind: Any) -> None:
    assert presentation.verify_kind(code) == kind


def test_alert_names_from_openssl_reasons() -> None:
    assert tls._alert_from_reason("TLSV13_ALERT_CERTIFICATE_REQUIRED") == 116
    assert tls._alert_from_reason("SSLV3_ALERT_HANDSHAKE_FAILURE") == 40
    assert tls._alert_from_reason("TLSV1_ALERT_PROTOCOL_VERSION") == 70
    assert tls._alert_from_reason("WRONG_VERSION_NUMBER") is None


def _codes(r: TlsResult, host: str = "www.lab.test") -> list[str]:
    return [code for code, _ in presentation.certificate_problems(r, host)]


def test_expired_comes_before_untrusted(ca: LabCA) -> None:
    cert = _summary(ca.issue("e", ["www.lab.test"], days_valid=5, starts_in_days=-10))
    r = _result(state="ok", certificate=cert, chain=[cert], verified=False, verify_code=20,
                verify_message="unable to get local issuer certificate")
    assert _codes(r) == ["TLS_CERT_EXPIRED", "TLS_CERT_UNTRUSTED"]


def test_wrong_name_is_found_even_when_openssl_stopped_at_the_issuer(ca: LabCA) -> None:
    cert = _summary(ca.issue("w", ["other.lab.test"]))
    r = _result(state="ok", certificate=cert, chain=[cert], verified=False, verify_code=20,
                verify_message="unable to get local issuer certificate")
    assert _codes(r) == ["TLS_CERT_HOSTNAME_MISMATCH", "TLS_CERT_UNTRUSTED"]


def test_verified_certificate_close_to_expiry_is_a_warning(ca: LabCA) -> None:
    cert = _summary(ca.issue("s", ["www.lab.test"], days_valid=15, starts_in_days=-10))
    r = _result(state="ok", certificate=cert, chain=[cert], verified=True)
    problems = presentation.certificate_problems(r, "www.lab.test")
    assert [c for c, _ in problems] == ["TLS_CERT_EXPIRING"]
    assert cert.not_after.replace("T", " ")[:16] in problems[0][1]


def test_self_signed_and_healthy(ca: LabCA, server_cert: Issued) -> None:
    selfie = _summary(ca.issue("ss", ["www.lab.test"], self_signed=True))
    r = _result(state="ok", certificate=selfie, chain=[selfie], verified=False, verify_code=18,
                verify_message="self-signed certificate")
    found = presentation.certificate_problems(r, "www.lab.test")
    assert [c for c, _ in found] == ["TLS_CERT_UNTRUSTED"] and "self-signed" in found[0][1]
    good = _summary(server_cert)
    assert _codes(_result(state="ok", certificate=good, chain=[good], verified=True),
                  "localhost") == []


# -- the probe against loopback servers --------------------------------------------------------

@pytest.fixture
def loopback() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a one-connection-at-a-time server on 127.0.0.1; returns its port."""
    sockets: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        sockets.append(listener)

        def run() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                conn.settimeout(3)
                threading.Thread(target=_safely, args=(handle, conn), daemon=True).start()

        threading.Thread(target=run, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for s in sockets:
        s.close()


def _safely(handle: Callable[[socket.socket], None], conn: socket.socket) -> None:
    try:
        handle(conn)
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def _probe(port: int, **kw: Any) -> TlsResult:
    kw.setdefault("timeout", 1.0)
    return asyncio.run(tls.handshake("127.0.0.1", port, kw.pop("name", "localhost"), **kw))


def _tls_handler(cert: Issued, **server: Any) -> Callable[[socket.socket], None]:
    ctx = tlsserver.server_context(str(cert.cert), str(cert.key), **server)

    def handle(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as s:
            s.recv(1)

    return handle


def test_probe_reads_a_banner_sent_on_connect(loopback: Any) -> None:
    port = loopback(lambda c: (c.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n"), c.recv(100)))
    r = _probe(port)
    assert r.state == "plaintext" and r.plaintext == "SSH-2.0-OpenSSH_9.2p1"
    assert r.banner_protocol == "SSH"


def test_probe_gives_up_on_silence_within_the_timeout(loopback: Any) -> None:
    port = loopback(lambda c: (c.recv(4096), time.sleep(2)))
    start = time.monotonic()
    r = _probe(port, timeout=0.3)
    assert time.monotonic() - start < 1.0
    assert r.state == "no_answer" and r.waited_s is not None and r.waited_s >= 0.3


def test_probe_stops_reading_an_endless_binary_stream(loopback: Any) -> None:
    def flood(c: socket.socket) -> None:
        chunk = bytes(range(256)) * 256
        for _ in range(200):  # 12 MB if anyone kept reading
            c.sendall(chunk)

    port = loopback(flood)
    start = time.monotonic()
    r = _probe(port)
    assert time.monotonic() - start < 1.0
    assert r.state == "binary" and r.first_bytes and r.bytes_received <= tls.MAX_HANDSHAKE_BYTES


def test_probe_verifies_and_still_shows_an_untrusted_certificate(
        loopback: Any, ca: LabCA, server_cert: Issued) -> None:
    port = loopback(_tls_handler(server_cert))
    trusted = _probe(port, cafile=str(ca.files.cert), alpn=("h2", "http/1.1"))
    assert trusted.ok and trusted.verified is True and trusted.handshakes == 1
    assert trusted.version == "TLSv1.3" and trusted.alpn == "http/1.1"
    assert trusted.server_name == "localhost"
    untrusted = _probe(port)
    assert untrusted.ok and untrusted.verified is False and untrusted.verify_code == 20
    assert untrusted.handshakes == 2
    assert untrusted.certificate is not None and untrusted.certificate.san == [
        "localhost", "127.0.0.1"]


def test_ip_literal_sends_no_sni_but_is_verified(loopback: Any, ca: LabCA,
                                                 server_cert: Issued) -> None:
    port = loopback(_tls_handler(server_cert))
    r = _probe(port, name="127.0.0.1", cafile=str(ca.files.cert))
    assert r.ok and r.verified is True and r.server_name is None


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_certificate_demanded(loopback: Any, ca: LabCA, server_cert: Issued,
                                     version: str) -> None:
    port = loopback(_tls_handler(server_cert, client_ca=str(ca.files.cert),
                                 max_version=version))
    r = _probe(port, cafile=str(ca.files.cert))
    assert presentation.handshake_problem(r) is not None
    assert presentation.handshake_problem(r)[0] == "TLS_CLIENT_CERT_REQUIRED", r  # type: ignore[index]
    assert r.cert_requested is True
    client = ca.issue("client", ["client.lab.test"], client=True)
    ok = _probe(port, cafile=str(ca.files.cert), cert=str(client.cert), key=str(client.key))
    assert ok.ok, ok


def test_bad_cafile_is_a_setup_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.crt"
    bogus.write_text("not a certificate\n")
    r = asyncio.run(tls.handshake("127.0.0.1", 9, "localhost", cafile=str(bogus), timeout=0.5))
    assert r.state == "setup_error" and r.error_text


def _scripted(lines: dict[bytes, bytes], greeting: bytes, cert: Issued) -> Callable[..., None]:
    """A plain-text server answering each command prefix, upgrading on the STARTTLS one."""
    ctx = tlsserver.server_context(str(cert.cert), str(cert.key))

    def handle(conn: socket.socket) -> None:
        conn.sendall(greeting)
        buf = b""
        while True:
            data = conn.recv(1024)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                for prefix, answer in lines.items():
                    if line.upper().startswith(prefix):
                        conn.sendall(answer)
                        if b"STARTTLS" in prefix or b"STLS" in prefix:
                            with ctx.wrap_socket(conn, server_side=True) as s:
                                s.recv(1)
                            return
                        break

    return handle


@pytest.mark.parametrize(("proto", "greeting", "script"), [
    ("smtp", b"220 mail ESMTP\r\n", {b"EHLO": b"250-mail\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
                                     b"STARTTLS": b"220 go ahead\r\n"}),
    ("imap", b"* OK ready\r\n", {b"N1 CAPABILITY": b"* CAPABILITY IMAP4rev1 STARTTLS\r\n"
                                                   b"n1 OK done\r\n",
                                 b"N2 STARTTLS": b"n2 OK begin TLS\r\n"}),
    ("pop3", b"+OK ready\r\n", {b"CAPA": b"+OK\r\nUSER\r\nSTLS\r\n.\r\n",
                                b"STLS": b"+OK begin TLS\r\n"}),
])
def test_starttls_upgrades(loopback: Any, ca: LabCA, server_cert: Issued, proto: str,
                           greeting: bytes, script: dict[bytes, bytes]) -> None:
    port = loopback(_scripted(script, greeting, server_cert))
    r = _probe(port, cafile=str(ca.files.cert), starttls=proto)
    assert r.ok and r.verified is True and r.starttls == proto, r


def test_starttls_not_offered_is_reported_not_failed(loopback: Any, server_cert: Issued) -> None:
    port = loopback(_scripted({b"EHLO": b"250-mail\r\n250 8BITMIME\r\n"}, b"220 mail ESMTP\r\n",
                              server_cert))
    r = _probe(port, starttls="smtp")
    assert r.state == "no_starttls" and "STARTTLS" in (r.starttls_detail or "")


def test_days_left_counts_whole_days(ca: LabCA) -> None:
    s = _summary(ca.issue("d", ["d.lab.test"], days_valid=3, starts_in_days=-1))
    now = datetime.now(timezone.utc)
    after = datetime.strptime(s.not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert s.days_left == int((after - now) / timedelta(days=1))


def test_tls_looking_garbage_fails_fast(loopback: Any) -> None:
    # A record header that claims a 16 KB handshake record, then noise.
    noise = bytes((i * 37 + 11) % 256 for i in range(64 * 1024))
    port = loopback(lambda c: (c.recv(4096), c.sendall(b"\x16\x03\x03\x40\x00" + noise)))
    start = time.monotonic()
    r = _probe(port)
    assert time.monotonic() - start < 1.5
    found = presentation.handshake_problem(r)
    assert found is not None and found[0] == "TLS_HANDSHAKE_FAILED", r


def test_certificate_with_odd_fields_is_shown_safely(tmp_path: Path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    odd = "evil\x1b[2J\x07" + "x" * 2000 + "é,=+\\"
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, odd)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(f"n{i}.example.test") for i in range(500)]), critical=False)
            .sign(key, hashes.SHA256()))
    s = tls.summarize_der(cert.public_bytes(serialization.Encoding.DER))
    assert "\x1b" not in s.subject and "\x07" not in s.subject
    assert len(s.subject) <= 300 and len(s.san) == 50 and s.san_total == 500
    assert s.self_signed
