"""The review app, hardening round two (issue 22): a size limit on every request body,
the Host check whatever the bind address (``--allow-host``), and ``serve --port`` on a
port that is taken. No test starts a real server: ``run_server`` is replaced, and every
refusal of the command comes before it."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket

import pytest

pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from unilandmark.inference.detector import Detector  # noqa: E402
from unilandmark.serve import create_app  # noqa: E402
from unilandmark.serve.app import JSON_BYTES_PER_LANDMARK, MIN_JSON_BYTES  # noqa: E402

WRITE = {"X-Unilandmark": "1"}


class CountingDetector:
    """The built-in detector, counting how often the model is asked."""

    def __init__(self, detector):
        self._detector = detector
        self.domains = detector.domains
        self.model_name = detector.model_name
        self.calls = []

    def predict(self, image, domain=None, spacing=None):
        self.calls.append(str(image))
        return self._detector.predict(image, domain, spacing=spacing)


@pytest.fixture(scope="module")
def builtin():
    return Detector.from_checkpoint(None)


@pytest.fixture
def detector(builtin):
    return CountingDetector(builtin)


@pytest.fixture
def folder(phantoms, tmp_path):
    """Three head phantoms (64 x 64 PNG) in a folder of their own."""
    out = tmp_path / "review"
    out.mkdir()
    for i in range(3):
        shutil.copy(phantoms / "head" / "images" / f"head_000{i}.png", out)
    return out


def client_for(folder, detector, base_url="http://testserver", **options):
    options.setdefault("allowed_hosts", ("testserver",))
    return TestClient(create_app(folder, detector, **options), base_url=base_url)


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


def one_sentence(detail):
    assert isinstance(detail, str) and "\n" not in detail and detail.strip() == detail
    return detail


def padded_save_body(size):
    """A save body that is valid (19 points, extra keys are ignored) but ``size`` bytes
    or more: were it read, it would be saved."""
    return json.dumps({"points": [[10.0, 12.0]] * 19, "format": "both",
                       "padding": "x" * size}).encode()


# ---------------------------------------------------------------- body size limits


def test_the_json_limit_follows_the_landmark_count(folder, detector):
    info = client_for(folder, detector).get("/api/info").json()
    assert info["max_json_bytes"] == max(MIN_JSON_BYTES, 19 * JSON_BYTES_PER_LANDMARK)
    assert info["max_upload_bytes"] == 64 * 2**20
    assert client_for(folder, detector, max_json_bytes=1000).get(
        "/api/info").json()["max_json_bytes"] == 1000


@pytest.mark.parametrize("method, url", [
    ("POST", "/api/images/head_0000.png/save"),
    ("PUT", "/api/images/head_0000.png/landmarks"),
    ("POST", "/api/measure"),
    ("GET", "/api/images"),  # a body where none is read is refused too
])
def test_an_oversized_json_body_is_refused_and_nothing_is_saved(folder, detector, method,
                                                                url):
    client = client_for(folder, detector)
    body = padded_save_body(200_000)
    response = client.request(method, url, content=body,
                              headers={**WRITE, "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    detail = one_sentence(response.json()["detail"])
    assert detail == "the request body is larger than the limit of 64 KiB for this request"
    assert files_in(folder) == ["head_0000.png", "head_0001.png", "head_0002.png"]
    assert detector.calls == []  # refused before the route: not even predicted
    assert client.get("/api/images").json()["images"][0]["status"] == "new"


def test_the_same_body_under_a_larger_limit_is_saved(folder, detector):
    """The control: the refused body above is refused for its size alone."""
    client = client_for(folder, detector, max_json_bytes=2**20)
    response = client.post("/api/images/head_0000.png/save", content=padded_save_body(200_000),
                           headers={**WRITE, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert "landmarks_reviewed.csv" in files_in(folder) and "head_0000.json" in files_in(folder)


def test_a_body_just_under_the_limit_passes(folder, detector):
    client = client_for(folder, detector)
    body = padded_save_body(0)
    body = body[:-1] + b" " * (MIN_JSON_BYTES - len(body)) + b"}"
    assert len(body) == MIN_JSON_BYTES
    response = client.post("/api/images/head_0000.png/save", content=body,
                           headers={**WRITE, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    too_big = client.post("/api/images/head_0001.png/save", content=body + b" ",
                          headers={**WRITE, "Content-Type": "application/json"})
    assert too_big.status_code == 413
    assert not (folder / "head_0001.json").exists()


def test_a_body_without_content_length_is_refused_when_too_much_arrives(folder, detector):
    client = client_for(folder, detector)

    def chunks():  # a generator: httpx sends it chunked, with no Content-Length
        yield b'{"points": ' + json.dumps([[10.0, 12.0]] * 19).encode()
        for _ in range(100):
            yield b" " * 4096
        yield b"}"

    response = client.post("/api/images/head_0000.png/save", content=chunks(),
                           headers={**WRITE, "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "larger than the limit of 64 KiB" in one_sentence(response.json()["detail"])
    assert files_in(folder) == ["head_0000.png", "head_0001.png", "head_0002.png"]


def stream_into(app, path, *, query=b"", chunk=4096, total=64 * 2**20):
    """Send ``app`` a POST to ``path`` whose body streams in ``chunk``-byte pieces (up to
    ``total`` bytes) with no Content-Length, as an ASGI server would; returns the status,
    the JSON answer and how many bytes the app took."""
    taken = 0
    answer = {"status": None, "body": b""}

    async def receive():
        nonlocal taken
        if taken >= total:
            return {"type": "http.disconnect"}
        taken += chunk
        return {"type": "http.request", "body": b" " * chunk, "more_body": taken < total}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": query,
             "headers": [(b"host", b"testserver"), (b"x-unilandmark", b"1"),
                         (b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))
    return answer["status"], json.loads(answer["body"]), taken


def test_a_streamed_json_body_stops_being_read_at_the_limit(folder, detector):
    app = create_app(folder, detector, allowed_hosts=("testserver",))
    status, answer, taken = stream_into(app, "/api/images/head_0000.png/save")
    assert status == 413 and "larger than the limit" in answer["detail"]
    assert taken <= MIN_JSON_BYTES + 2 * 4096  # of 64 MiB offered
    assert files_in(folder) == ["head_0000.png", "head_0001.png", "head_0002.png"]
    assert detector.calls == []


def test_a_streamed_upload_stops_being_read_at_the_upload_limit(folder, detector):
    app = create_app(folder, detector, allowed_hosts=("testserver",),
                     max_upload_bytes=100_000)
    status, answer, taken = stream_into(app, "/api/upload", query=b"filename=big.png")
    assert status == 413
    assert one_sentence(answer["detail"]) == (
        "big.png: larger than the upload limit of 97.66 KiB")
    assert taken <= 100_000 + 2 * 4096
    assert files_in(folder) == ["head_0000.png", "head_0001.png", "head_0002.png"]


def test_an_upload_declared_too_large_is_refused_before_it_is_read(folder, detector):
    client = client_for(folder, detector, max_upload_bytes=2**20)
    response = client.post("/api/upload?filename=big.png", content=b"\0" * (2**20 + 1),
                           headers=WRITE)
    assert response.status_code == 413
    assert response.json()["detail"] == "big.png: larger than the upload limit of 1 MiB"
    assert files_in(folder) == ["head_0000.png", "head_0001.png", "head_0002.png"]


# ---------------------------------------------------------------- the Host check


FOREIGN = ["evil.example:8000", "evil.example", "localhost.evil.example:8000",
           "127.0.0.1.nip.io:8000", "evil.example@localhost", "*", ""]


@pytest.mark.parametrize("host", FOREIGN)
def test_a_foreign_host_is_refused_by_default(folder, detector, host):
    client = TestClient(create_app(folder, detector), base_url="http://localhost:8000")
    assert client.get("/api/images").status_code == 200
    response = client.get("/api/images", headers={"Host": host})
    assert response.status_code == 400
    detail = one_sentence(response.json()["detail"])
    assert detail.startswith(f"requests addressed to host {host!r} are not served here")
    assert "--allow-host" in detail
    save = client.post("/api/images/head_0000.png/save", headers={**WRITE, "Host": host},
                       json={"points": [[1.0, 1.0]] * 19})
    assert save.status_code == 400 and files_in(folder) == [
        "head_0000.png", "head_0001.png", "head_0002.png"]


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000",
                                  "LOCALHOST:8000", "localhost:9000", "localhost"])
def test_loopback_names_are_served_on_any_port(folder, detector, host):
    """An SSH tunnel (``ssh -L 9000:localhost:8000``) changes the port, not the name."""
    client = TestClient(create_app(folder, detector))
    assert client.get("/api/images", headers={"Host": host}).status_code == 200


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cli(monkeypatch, builtin):
    """``unilandmark serve`` with the server replaced: returns (result, app served)."""
    from unilandmark.cli import app as cli_app

    served = {}

    def fake_run(application, host, port):
        served.update(app=application, host=host, port=port)

    monkeypatch.setattr("unilandmark.serve.run_server", fake_run)
    monkeypatch.setattr(Detector, "from_checkpoint",
                        classmethod(lambda cls, *a, **k: builtin))

    def invoke(*args):
        result = CliRunner().invoke(cli_app, ["serve", *map(str, args)])
        return result, served.get("app")

    return invoke


def test_the_host_check_holds_with_host_0000(folder, cli):
    port = free_port()
    result, app = cli(folder, "--host", "0.0.0.0", "--port", port)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "listening on 0.0.0.0" in text and "add them with --allow-host" in text
    client = TestClient(app)
    assert client.get("/api/images", headers={"Host": f"localhost:{port}"}).status_code == 200
    for host in (f"evil.example:{port}", f"192.168.1.20:{port}", "0.0.0.0"):
        response = client.get("/api/images", headers={"Host": host})
        assert response.status_code == 400, host
        assert "not served here" in response.json()["detail"]


def test_allow_host_adds_names(folder, cli):
    port = free_port()
    result, app = cli(folder, "--host", "0.0.0.0", "--port", port,
                      "--allow-host", "lab-pc.local", "--allow-host", "192.168.1.20:9000")
    assert result.exit_code == 0, result.output
    assert "(lab-pc.local, 192.168.1.20:9000)" in " ".join(result.output.split())
    client = TestClient(app)
    for host, status in ((f"lab-pc.local:{port}", 200), ("LAB-PC.local", 200),
                         ("192.168.1.20:9000", 200), (f"192.168.1.20:{port}", 400),
                         (f"evil.example:{port}", 400), (f"localhost:{port}", 200)):
        assert client.get("/api/images", headers={"Host": host}).status_code == status, host


def test_the_default_bind_keeps_the_check(folder, cli):
    port = free_port()
    result, app = cli(folder, "--port", port)
    assert result.exit_code == 0, result.output
    client = TestClient(app)
    assert client.get("/api/images", headers={"Host": f"127.0.0.1:{port}"}).status_code == 200
    assert client.get("/api/images", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("value", ["*", "http://lab-pc", "lab pc", "lab:port", ""])
def test_a_bad_allow_host_is_refused(folder, cli, value):
    result, app = cli(folder, "--allow-host", value)
    assert result.exit_code == 2, result.output
    assert f"--allow-host {value!r}: not a host name" in " ".join(result.output.split())
    assert app is None and "Traceback" not in result.output


# ---------------------------------------------------------------- the port in use


def test_a_port_in_use_is_refused_before_the_address_is_printed(folder, cli, monkeypatch):
    loaded = []
    monkeypatch.setattr(Detector, "from_checkpoint",
                        classmethod(lambda cls, *a, **k: loaded.append(1)))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result, app = cli(folder, "--port", port)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert (f"--port {port}: port {port} on 127.0.0.1 is already in use (another server, "
            "perhaps another unilandmark serve?); stop it or choose another --port") in text
    assert "reviewing" not in text and "http://" not in text
    assert app is None and loaded == []  # refused before the model loads and the server runs
    assert "Traceback" not in result.output


def test_a_host_that_is_not_this_computers_is_refused(folder, cli):
    address = "203.0.113.7"  # TEST-NET-3: never a local address
    with socket.socket() as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            pass
        else:
            pytest.skip("this system binds non-local addresses (ip_nonlocal_bind)")
    result, app = cli(folder, "--host", address, "--port", free_port())
    assert result.exit_code == 2, result.output
    assert f"--host {address}: not an address of this computer" in result.output
    assert app is None
