"""Slow and greedy clients: a body that trickles in below `--min-body-rate`
is cut off (the idle timeout alone would let it hold its connection for
ever), and `--max-connections-per-address` keeps one address from taking
every place while others still get in."""

import http.client
import socket
import time

from conftest import ACCOUNT, Berth, basic_auth, root_env


def test_a_trickling_body_is_cut_off_and_one_address_cannot_take_every_place():
    berth = Berth(env={"BERTH_ACCOUNT_ID": ACCOUNT, **root_env()},
                  extra=["--create-on-push", "--client-timeout", "2s", "--min-body-rate", "1KiB",
                         "--max-connections-per-address", "5"])
    host, port = berth.host.split(":")
    port = int(port)
    held = []
    try:
        # A body sent a byte every half second: above the idle timeout's
        # reach, below the minimum rate. Cut off within a few windows.
        s = socket.create_connection((host, port), timeout=10)
        s.sendall((f"POST /v2/slow/app/blobs/uploads/?digest=sha256:{'0' * 64} HTTP/1.1\r\nHost: x\r\n"
                   f"Authorization: {basic_auth()}\r\nContent-Length: 100000\r\n\r\n").encode())
        started, cut = time.time(), False
        while time.time() - started < 15:
            try:
                s.sendall(b"a")
                s.settimeout(0.5)
                if s.recv(4096) == b"":
                    cut = True
                    break
                cut = True  # an error response: the server gave up on the body
                break
            except socket.timeout:
                continue
            except OSError:
                cut = True
                break
        assert cut, "a body below the minimum rate was still being read after 15 s"
        # Not refused at once for some other reason: cut off after the window.
        assert 1.5 < time.time() - started < 12, time.time() - started
        s.close()

        # Five connections from 127.0.0.2 are held; the sixth is closed at once.
        for _ in range(5):
            held.append(socket.create_connection((host, port), timeout=5, source_address=("127.0.0.2", 0)))
        time.sleep(0.3)
        extra = socket.create_connection((host, port), timeout=5, source_address=("127.0.0.2", 0))
        extra.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        extra.settimeout(5)
        try:
            assert extra.recv(100) == b""
        except ConnectionResetError:
            pass
        extra.close()
        # Another address is served meanwhile.
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/v2/", headers={"Authorization": basic_auth()})
        assert c.getresponse().status == 200
        c.close()
    finally:
        for s in held:
            s.close()
        berth.stop()
