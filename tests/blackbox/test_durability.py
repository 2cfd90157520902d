"""Group commit and durability, seen from outside: many concurrent POSTs are
committed in shared transactions (the store's batch counters show it), and
every job whose 202 was received survives an immediate kill -9."""
import socket
import time

import reelharness as h

N = 64


def concurrent_posts(r, n):
    """Opens n connections, writes one POST on each, then reads every answer.
    Returns the job ids of the 202s."""
    body = b'{"prompt": "durable"}'
    req = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + r.token.encode() +
           b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
           b"\r\nConnection: close\r\n\r\n" + body)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", r.port), timeout=20)
        socks.append(s)
    for s in socks:
        s.sendall(req)
    ids = []
    for s in socks:
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        if data.startswith(b"HTTP/1.1 202"):
            payload = data.split(b"\r\n\r\n", 1)[1]
            ids.append(payload.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode())
    return ids


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def body(c):
    with h.Reeld(service={"workers": 0, "max_queue_depth": 100000}) as r:
        _, _, before = r.request("GET", "/metrics", token=False)
        batches0 = metric(before.decode(), "reel_store_batches_total")
        calls0 = metric(before.decode(), "reel_store_calls_total")
        rounds, ids = 5, []
        for _ in range(rounds):
            ids += concurrent_posts(r, N)
        c.eq(len(ids), rounds * N, "every concurrent POST is accepted")
        _, _, after = r.request("GET", "/metrics", token=False)
        batches = metric(after.decode(), "reel_store_batches_total") - batches0
        calls = metric(after.decode(), "reel_store_calls_total") - calls0
        print("       %d store calls in %d batches (%.1f per commit)" % (calls, batches, calls / max(batches, 1)))
        c.check(calls >= rounds * N, "every submit went through the store (%d calls)" % calls)
        c.check(batches < calls / 2, "concurrent submits share commits: %d calls in %d batches" % (calls, batches))

        # acknowledged means durable: kill -9 right after the last 202
        more = concurrent_posts(r, N)
        r.kill9()
        c.eq(len(more), N, "a last burst is accepted before kill -9")
        r.start()
        missing = [i for i in ids + more if r.json("GET", "/v1/jobs/" + i)[0] != 200]
        c.eq(missing, [], "every job that got a 202 exists after kill -9 and restart")
        status, _, page = r.json("GET", "/v1/jobs?status=queued&limit=100")
        c.check(status == 200 and len(page["jobs"]) == 100, "the queue is intact after the restart")


if __name__ == "__main__":
    raise SystemExit(h.run(body))
