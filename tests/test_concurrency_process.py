"""Concurrent changes against a real `fewshot serve` process, over real HTTP.

100 clients append one example each to one task at the same moment, while others
create tasks, remove examples of a second task, append to and roll back a third, and
predict with all three: every append is answered 2xx and is in the final version, no
answer is 5xx, and the task's history is linear (versions 1..101, each append made on
the one before it). On SQLite with one process; on PostgreSQL (``FEWSHOT_TEST_POSTGRES_URL``)
with ``--workers 2``, where a change made through one worker must be what the other
worker predicts with next."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_ENV, _fresh_postgres
from tests.helpers import SYNTHETIC, admin_headers, bearer, examples
from tests.serving import Server, tiny_encoder

APPENDS = 100
PROCESS_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(
    not os.environ.get(POSTGRES_ENV), reason=f"set {POSTGRES_ENV} to test PostgreSQL with two workers"))]
Call = Callable[[httpx.Client], httpx.Response]


@pytest.fixture(scope="module", params=PROCESS_BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One process on SQLite, or two workers on a fresh PostgreSQL database (each test
    makes its own tenant)."""
    tmp_path = tmp_path_factory.mktemp(f"serve-{request.param}")
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'concurrent.db'}"])
    else:
        urls = _fresh_postgres(os.environ[POSTGRES_ENV])
    url = next(urls)
    process = Server(tmp_path, url, tiny_encoder(tmp_path / "encoder"), workers=1 if request.param == "sqlite" else 2)
    try:
        process.start()
        yield process
    except BaseException:
        print(process.log())
        raise
    finally:
        process.stop()
        next(urls, None)  # drops a PostgreSQL database


def _create(http: httpx.Client, name: str, data: list[dict[str, str]]) -> dict:
    response = http.post("/v1/tasks", json={"name": name, "examples": data})
    assert response.status_code == 201, response.text
    return response.json()


def _run_together(url: str, headers: dict[str, str], calls: list[tuple[str, Call]]) -> list[tuple[str, int, dict]]:
    """Every call on its own connection, all released at once; (kind, status, body) each."""
    barrier = threading.Barrier(len(calls))

    def run(kind: str, call: Call) -> tuple[str, int, dict]:
        with httpx.Client(base_url=url, headers=headers, timeout=300, trust_env=False) as http:
            http.get("/healthz")  # connected before the barrier, so that the requests do meet
            barrier.wait(60)
            response = call(http)
            return kind, response.status_code, response.json() if response.content else {}

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda item: run(*item), calls))


def _sequentially(*calls: Call) -> Call:
    """One client making ``calls`` one after another (a rollback racing nothing but other tasks)."""
    def run(http: httpx.Client) -> httpx.Response:
        for call in calls:
            response = call(http)
            if response.status_code != 200:
                return response
        return response
    return run


def test_100_concurrent_appends_to_one_task_all_land_among_other_changes(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as admin:
        headers = bearer(admin.post("/v1/tenants", json={"name": "busy"}, headers=admin_headers()).json()["api_key"])
    with httpx.Client(base_url=server.url, headers=headers, timeout=60, trust_env=False) as http:
        target = _create(http, "target", examples())["id"]
        shrinking = _create(http, "shrinking", examples({**SYNTHETIC, "bell": [f"ring bell {i}" for i in range(12)]}))["id"]
        rolled = _create(http, "rolled", examples())["id"]
        bells = [e["id"] for e in http.get(f"/v1/tasks/{shrinking}/examples").json()["examples"] if e["label"] == "bell"]

    def append(task_id: str, text: str, label: str) -> Call:
        return lambda h: h.post(f"/v1/tasks/{task_id}/examples", json={"examples": [{"text": text, "label": label}]})

    def predict(task_id: str) -> Call:
        return lambda h: h.post(f"/v1/tasks/{task_id}/predict", json={"texts": ["will it rain", "play a song"]})

    texts = [f"wake me at {i} past six" for i in range(APPENDS)]
    calls: list[tuple[str, Call]] = [("append", append(target, text, "alarm")) for text in texts]
    calls += [("create", lambda h, i=i: h.post("/v1/tasks", json={"name": f"new {i}", "examples": examples()}))
              for i in range(10)]
    calls += [("remove", lambda h, n=n: h.post(f"/v1/tasks/{shrinking}/remove", json={"example_ids": [n]}))
              for n in bells[:8]]
    calls += [("rollback", _sequentially(append(rolled, "sing a tune", "music"),
                                         lambda h: h.post(f"/v1/tasks/{rolled}/rollback", json={"version": 1}))
               ) for _ in range(1)]
    calls += [("predict", predict(task_id)) for task_id in (target, shrinking, rolled) for _ in range(10)]

    began = time.monotonic()
    answers = _run_together(server.url, headers, calls)
    seconds = time.monotonic() - began

    unexpected = [(kind, status, body) for kind, status, body in answers if not 200 <= status < 300]
    assert unexpected == []
    appended = sorted(body["version"] for kind, _, body in answers if kind == "append")
    assert appended == list(range(2, APPENDS + 2))  # each append its own new version
    with httpx.Client(base_url=server.url, headers=headers, timeout=60, trust_env=False) as http:
        stored = {e["text"] for e in http.get(f"/v1/tasks/{target}/examples").json()["examples"]}
        assert set(texts) <= stored
        history = http.get(f"/v1/tasks/{target}/versions").json()
        assert history["current"] == APPENDS + 1
        assert [(v["version"], v["change"], v["parent_version"]) for v in history["versions"]] == \
            [(1, "create", None)] + [(n, "append", n - 1) for n in range(2, APPENDS + 2)]
        left = [e["id"] for e in http.get(f"/v1/tasks/{shrinking}/examples").json()["examples"]]
        assert not set(bells[:8]) & set(left) and set(bells[8:]) <= set(left)
        assert http.get("/v1/tasks").json()["total"] == 13
    print(f"{len(calls)} concurrent requests ({APPENDS} appends to one task) with {server.workers} worker(s): "
          f"all 2xx in {seconds:.1f} s")


def _connection_worker(server: Server, response: httpx.Response) -> int:
    """The pid of the worker process at the other end of ``response``'s connection (from
    /proc: the worker that holds the socket connected to this client's port)."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
            if local == server.port and remote == client_port:
                inode = fields[9]
    assert inode is not None, "no server socket for this connection"
    assert server.process is not None
    for child in Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split():
        for fd in Path(f"/proc/{child}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return int(child)
            except OSError:
                continue
    raise AssertionError(f"no worker of {server.process.pid} holds socket {inode}")


def test_a_change_through_one_worker_is_what_the_other_predicts_with_next(server: Server) -> None:
    if server.workers < 2:
        pytest.skip("one process: there is no other worker")
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as admin:
        headers = bearer(admin.post("/v1/tenants", json={"name": "two"}, headers=admin_headers()).json()["api_key"])
    with httpx.Client(base_url=server.url, headers=headers, timeout=60, trust_env=False) as http:
        task_id = _create(http, "shared", examples())["id"]
    crossed = 0
    for k in range(6):
        with httpx.Client(base_url=server.url, headers=headers, timeout=60, trust_env=False) as writer:
            changed = writer.post(f"/v1/tasks/{task_id}/examples",
                                  json={"examples": [{"text": f"zork {k} quux", "label": f"label{k}"}]})
            assert changed.status_code == 200, changed.text
            wrote_on = _connection_worker(server, changed)
        for _ in range(40):  # fresh connections until one reaches the other worker
            with httpx.Client(base_url=server.url, headers=headers, timeout=60, trust_env=False) as reader:
                probe = reader.get("/healthz")
                if _connection_worker(server, probe) == wrote_on:
                    continue
                predicted = reader.post(f"/v1/tasks/{task_id}/predict",
                                        json={"texts": [f"zork {k} quux"], "top_k": k + 4})
                assert predicted.status_code == 200, predicted.text
                assert predicted.json()["version"] == changed.json()["version"]
                assert f"label{k}" in [s["label"] for s in predicted.json()["predictions"][0]["top_k"]]
                crossed += 1
                break
    assert crossed == 6, f"only {crossed} of 6 changes were followed by a predict on the other worker"
