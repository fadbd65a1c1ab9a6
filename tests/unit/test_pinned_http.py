"""Unit tests for task_scheduler.pinned_http: connecting to the checked address, not to DNS's.

Contract: "the connection goes to the address that was checked". Servers run on loopback only;
names under .test never reach DNS: a guard replaces getaddrinfo for the whole module and fails
any lookup of a name, so a request that reaches a server went to the pinned address.
"""

import datetime
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.connectionpool import HTTPSConnectionPool

from task_scheduler.pinned_http import PinnedAddressAdapter, host_header, pinned_session

TIMEOUT = 5


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """getaddrinfo for IP literals only: looking up a name fails (and is recorded)."""
    real = socket.getaddrinfo
    names = []

    def guarded(host, *args, **kwargs):
        text = host.decode() if isinstance(host, bytes) else str(host)
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
        except OSError:
            names.append(text)
            raise socket.gaierror(socket.EAI_NONAME, f"no DNS in tests: {text}") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)
    return names


class Recorder(BaseHTTPRequestHandler):
    """Records what each request looked like; /redirect answers 302, anything else 200."""

    def do_GET(self):
        self.server.hits.append(
            {
                "host": self.headers.get("Host"),
                "peer": self.client_address[0],
                "path": self.path,
                "sni": getattr(self.server, "sni", None),
            }
        )
        if self.path.startswith("/redirect"):
            port = self.server.server_address[1]
            self.send_response(302)
            self.send_header("Location", f"http://redirected.test:{port}/elsewhere")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format, *args):
        pass


class IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _serve(server):
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


def _stop(server, thread):
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


@pytest.fixture
def server():
    running = _serve(ThreadingHTTPServer(("127.0.0.1", 0), Recorder))
    yield running[0]
    _stop(*running)


@pytest.fixture
def server6():
    try:
        httpd = IPv6Server(("::1", 0), Recorder)
    except OSError as error:
        pytest.skip(f"cannot bind ::1: {error}")
    running = _serve(httpd)
    yield running[0]
    _stop(*running)


@pytest.fixture
def proxy():
    """A "proxy" that answers 200 to anything and records what it was asked."""
    running = _serve(ThreadingHTTPServer(("127.0.0.1", 0), Recorder))
    yield running[0]
    _stop(*running)


# --- plain HTTP -------------------------------------------------------------------------------


def test_request_goes_to_pinned_address_with_original_host(server, no_dns):
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session:
        response = session.get(f"http://pinned.test:{port}/x", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text == "ok"
    assert server.hits == [
        {"host": f"pinned.test:{port}", "peer": "127.0.0.1", "path": "/x", "sni": None}
    ]
    assert no_dns == []


def test_without_pinning_the_name_does_not_resolve(server, no_dns):
    # The control for the test above: pinned.test really is unreachable by name here.
    port = server.server_address[1]
    with requests.Session() as session, pytest.raises(requests.ConnectionError):
        session.get(f"http://pinned.test:{port}/x", timeout=TIMEOUT)
    assert "pinned.test" in no_dns
    assert server.hits == []


def test_request_over_ipv6_goes_to_pinned_address(server6, no_dns):
    port = server6.server_address[1]
    with pinned_session("::1") as session:
        response = session.get(f"http://pinned.test:{port}/v6?q=1", timeout=TIMEOUT)
    assert response.status_code == 200
    assert server6.hits == [
        {"host": f"pinned.test:{port}", "peer": "::1", "path": "/v6?q=1", "sni": None}
    ]
    assert no_dns == []


def test_bracketed_ipv6_address_is_accepted(server6):
    port = server6.server_address[1]
    with pinned_session("[::1]") as session:
        assert session.get(f"http://pinned.test:{port}/", timeout=TIMEOUT).status_code == 200


def test_ipv6_url_host_gets_bracketed_host_header(server6):
    port = server6.server_address[1]
    with pinned_session("::1") as session:
        session.get(f"http://[::1]:{port}/", timeout=TIMEOUT)
    assert server6.hits[0]["host"] == f"[::1]:{port}"


def test_caller_host_header_is_replaced_by_the_urls(server):
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session:
        session.get(f"http://pinned.test:{port}/", headers={"Host": "evil.test"}, timeout=TIMEOUT)
    assert server.hits[0]["host"] == f"pinned.test:{port}"


def test_every_request_of_the_session_is_pinned(server):
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session:
        session.get(f"http://one.test:{port}/1", timeout=TIMEOUT)
        session.get(f"http://two.test:{port}/2", timeout=TIMEOUT)
    assert [(hit["host"], hit["path"]) for hit in server.hits] == [
        (f"one.test:{port}", "/1"),
        (f"two.test:{port}", "/2"),
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://pinned.test/x", "pinned.test"),
        ("http://pinned.test:80/x", "pinned.test"),
        ("https://pinned.test:443/x", "pinned.test"),
        ("https://pinned.test:80/x", "pinned.test:80"),
        ("http://pinned.test:8080/x", "pinned.test:8080"),
        ("http://user:secret@Pinned.Test.:81/x", "pinned.test:81"),
        ("http://[2001:db8::1]:8080/", "[2001:db8::1]:8080"),
        ("https://[2001:db8::1]/", "[2001:db8::1]"),
    ],
)
def test_host_header(url, expected):
    assert host_header(url) == expected


def test_adapter_wants_an_ip_address():
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        PinnedAddressAdapter("pinned.test")


# --- proxies ----------------------------------------------------------------------------------


def _use_env_proxy(monkeypatch, proxy):
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, url)
    return url


def test_environment_proxy_applies_to_a_plain_session(monkeypatch, server, proxy):
    # The control: with these variables, requests normally goes through the proxy.
    _use_env_proxy(monkeypatch, proxy)
    port = server.server_address[1]
    with requests.Session() as session:
        assert session.get(f"http://pinned.test:{port}/x", timeout=TIMEOUT).status_code == 200
    assert [hit["path"] for hit in proxy.hits] == [f"http://pinned.test:{port}/x"]
    assert server.hits == []


def test_environment_proxy_is_ignored(monkeypatch, server, proxy):
    _use_env_proxy(monkeypatch, proxy)
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session:
        assert session.trust_env is False
        assert session.get(f"http://pinned.test:{port}/x", timeout=TIMEOUT).status_code == 200
    assert proxy.hits == []
    assert [hit["path"] for hit in server.hits] == ["/x"]


def test_adapter_ignores_proxies_even_when_the_session_trusts_the_environment(
    monkeypatch, server, proxy
):
    proxy_url = _use_env_proxy(monkeypatch, proxy)
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session:
        session.trust_env = True
        session.proxies = {"http": proxy_url, "https": proxy_url}
        session.get(f"http://pinned.test:{port}/a", timeout=TIMEOUT)
        session.get(f"http://pinned.test:{port}/b", proxies={"http": proxy_url}, timeout=TIMEOUT)
    assert proxy.hits == []
    assert [hit["path"] for hit in server.hits] == ["/a", "/b"]  # origin form, not absolute


def test_request_line_is_never_the_proxy_form():
    adapter = PinnedAddressAdapter("127.0.0.1")
    request = requests.Request("GET", "http://pinned.test:8080/x?q=1").prepare()
    assert adapter.request_url(request, {"http": "http://127.0.0.1:9"}) == "/x?q=1"


# --- redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize("allow_redirects", [True, False])
def test_redirect_is_returned_not_followed(server, no_dns, allow_redirects):
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session:
        response = session.get(
            f"http://pinned.test:{port}/redirect",
            allow_redirects=allow_redirects,
            stream=True,
            timeout=TIMEOUT,
        )
        assert response.status_code == 302
        assert response.headers["Location"] == f"http://redirected.test:{port}/elsewhere"
        assert response.history == []
        assert response.next is None
        assert response.raw.read() == b"ok"  # stream=True: the body was left unread
    assert [hit["path"] for hit in server.hits] == ["/redirect"]
    assert no_dns == []


def test_plain_session_with_max_redirects_zero_raises_on_302(server):
    # Why pinned_session does more than max_redirects = 0 (documents the requests behaviour).
    port = server.server_address[1]
    with requests.Session() as session:
        session.max_redirects = 0
        with pytest.raises(requests.TooManyRedirects):
            session.get(f"http://127.0.0.1:{port}/redirect", allow_redirects=False, timeout=5)


# --- HTTPS: pool settings ---------------------------------------------------------------------


@pytest.mark.parametrize("verify", [True, False, None])
def test_https_pool_connects_to_address_with_url_hostname_for_tls(verify):
    adapter = PinnedAddressAdapter("127.0.0.1")
    request = requests.Request("GET", "https://pinned.test/x").prepare()
    pool = adapter.get_connection_with_tls_context(
        request, verify, proxies={"https": "http://127.0.0.1:9"}
    )
    assert isinstance(pool, HTTPSConnectionPool)
    assert pool.proxy is None
    assert (pool.host, pool.port) == ("127.0.0.1", 443)
    assert pool.conn_kw["server_hostname"] == "pinned.test"
    assert pool.assert_hostname == "pinned.test"
    assert pool.cert_reqs == "CERT_REQUIRED"
    connection = pool._new_conn()  # not connected yet: what it would connect with
    assert (connection.host, connection.port) == ("127.0.0.1", 443)
    assert connection.server_hostname == "pinned.test"
    assert connection.assert_hostname == "pinned.test"
    assert connection.cert_reqs == "CERT_REQUIRED"


def test_https_pool_for_ipv6_address_and_explicit_port():
    adapter = PinnedAddressAdapter("2001:db8::1")
    request = requests.Request("GET", "https://Pinned.Test.:8443/x").prepare()
    pool = adapter.get_connection_with_tls_context(request, True)
    assert (pool.host, pool.port) == ("2001:db8::1", 8443)
    assert pool.conn_kw["server_hostname"] == "pinned.test"
    assert pool.assert_hostname == "pinned.test"


def test_http_pool_has_no_tls_settings():
    adapter = PinnedAddressAdapter("127.0.0.1")
    request = requests.Request("GET", "http://pinned.test:8080/x").prepare()
    pool = adapter.get_connection_with_tls_context(request, True)
    assert (pool.scheme, pool.host, pool.port) == ("http", "127.0.0.1", 8080)
    assert "server_hostname" not in pool.conn_kw


def test_https_send_keeps_verification_on_with_requests_ca_bundle(no_dns):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pinned_session("127.0.0.1") as session:
        with pytest.raises(requests.ConnectionError):
            session.get(f"https://pinned.test:{port}/x", verify=False, timeout=TIMEOUT)
        pools = session.get_adapter("https://pinned.test/").poolmanager.pools
        [key] = pools.keys()
        pool = pools[key]
    assert (pool.host, pool.port) == ("127.0.0.1", port)
    assert pool.cert_reqs == "CERT_REQUIRED"
    assert pool.ca_certs == DEFAULT_CA_BUNDLE_PATH
    assert no_dns == []


# --- HTTPS: a real handshake against a loopback TLS server ------------------------------------


def _certificates(tmp_path, name):
    """A CA (PEM path) and a server certificate + key (PEM path) for `name`, signed by it."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, *, ca, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
            )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("test CA", "test CA", ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(name, "test CA", key.public_key(), ca_key, ca=False, san=name)
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_path = tmp_path / "server.pem"
    chain_path.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(ca_path), str(chain_path)


@pytest.fixture
def tls_server(tmp_path):
    def start(certificate_name):
        ca_path, chain_path = _certificates(tmp_path, certificate_name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain_path)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)

        def remember_sni(ssl_socket, server_name, _context):
            httpd.sni = server_name

        context.sni_callback = remember_sni
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        running.append(_serve(httpd))
        return httpd, ca_path

    running = []
    yield start
    for server, thread in running:
        _stop(server, thread)


def test_https_uses_url_hostname_for_sni_and_certificate(tls_server, no_dns):
    server, ca_path = tls_server("pinned.test")
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session:
        response = session.get(f"https://pinned.test:{port}/tls", verify=ca_path, timeout=TIMEOUT)
    assert response.status_code == 200
    assert server.hits == [
        {"host": f"pinned.test:{port}", "peer": "127.0.0.1", "path": "/tls", "sni": "pinned.test"}
    ]
    assert no_dns == []


def test_https_refuses_certificate_for_another_name(tls_server):
    server, ca_path = tls_server("other.test")
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session, pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://pinned.test:{port}/tls", verify=ca_path, timeout=TIMEOUT)
    assert server.hits == []


def test_https_verification_cannot_be_turned_off(tls_server):
    server, _ca_path = tls_server("pinned.test")
    port = server.server_address[1]
    with pinned_session("127.0.0.1") as session, pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://pinned.test:{port}/tls", verify=False, timeout=TIMEOUT)
    assert server.hits == []


# --- the socket hook (what bounds a whole delivery attempt from outside) ----------------------


def test_each_new_socket_is_handed_over_before_the_request_is_sent(server, no_dns):
    port = server.server_address[1]
    handed = []

    def on_socket(sock):
        handed.append((sock.getpeername()[:2], list(server.hits)))

    with pinned_session("127.0.0.1", on_socket) as session:
        assert session.get(f"http://pinned.test:{port}/x", timeout=TIMEOUT).status_code == 200
    assert handed == [(("127.0.0.1", port), [])]  # connected to the pinned address, nothing sent
    assert no_dns == []


def test_https_socket_is_handed_over_before_the_tls_handshake(tls_server, no_dns):
    server, ca_path = tls_server("pinned.test")
    port = server.server_address[1]
    handed = []
    with pinned_session("127.0.0.1", handed.append) as session:
        response = session.get(f"https://pinned.test:{port}/tls", verify=ca_path, timeout=TIMEOUT)
    assert response.status_code == 200
    [sock] = handed
    assert not isinstance(sock, ssl.SSLSocket)  # the plain TCP socket TLS then runs over
    assert server.hits[0]["sni"] == "pinned.test"  # and TLS still names the URL's host


def test_shutting_the_handed_socket_down_ends_a_wait_for_the_answer():
    # A server that accepts and never answers: the request waits until on_socket's owner acts.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    handed = []

    def shut_down_soon(sock):
        handed.append(sock)
        threading.Timer(0.2, sock.shutdown, args=(socket.SHUT_RDWR,)).start()

    with (
        listener,
        pinned_session("127.0.0.1", shut_down_soon) as session,
        pytest.raises(requests.ConnectionError),
    ):
        session.get(f"http://pinned.test:{port}/x", timeout=30)
    assert len(handed) == 1
