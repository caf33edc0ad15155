"""Projects on one Label Studio server share one client, which bounds the requests in flight."""

from __future__ import annotations

import threading
import time

from labelloop.labelstudio.pool import LabelStudioClients

TOKEN = "0" * 40  # a legacy token: the SDK checks nothing before the first request


def test_one_client_per_server_and_token() -> None:
    pool = LabelStudioClients(per_server=2)
    try:
        ls = pool.client("http://127.0.0.1:9", TOKEN)
        assert pool.client("http://127.0.0.1:9/", TOKEN) is ls
        assert pool.client("http://127.0.0.1:9", "1" * 40) is not ls
        assert pool.client("http://127.0.0.1:10", TOKEN) is not ls
    finally:
        pool.close()


def test_the_clients_of_a_server_keep_its_requests_in_flight_bounded() -> None:
    pool = LabelStudioClients(per_server=2)
    # Two tokens, one server: they share its bound.
    clients = [pool.client("http://127.0.0.1:9", token) for token in ("0" * 40, "1" * 40)]
    in_flight, most = 0, 0
    lock = threading.Lock()

    def request() -> None:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.1)
        with lock:
            in_flight -= 1

    threads = [
        threading.Thread(
            target=clients[i % 2]._call, args=("a request", request), kwargs={"idempotent": True}
        )
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.close()
    assert most == 2
