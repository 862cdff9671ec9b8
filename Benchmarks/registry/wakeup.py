"""Blocking-query wake-up latency: how long after a registration the parked
GET /v1/catalog?index=N returns. Standard library only; 127.0.0.1 only."""
import http.client, json, statistics, sys, threading, time

port = int(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
body = json.dumps({"url": "http://127.0.0.1:9", "routes": [{"methods": ["GET"], "path": "/bench/{id}"}], "ttl_seconds": 600})

def current_index(conn):
    conn.request("GET", "/v1/catalog"); r = conn.getresponse(); r.read()
    return int(r.getheader("X-Tapper-Index"))

watch = http.client.HTTPConnection("127.0.0.1", port); write = http.client.HTTPConnection("127.0.0.1", port)
lat = []
for i in range(n):
    index = current_index(watch)
    woke = {}
    def wait():
        watch.request("GET", f"/v1/catalog?index={index}&wait=10s"); r = watch.getresponse(); r.read()
        woke["t"] = time.perf_counter(); woke["index"] = int(r.getheader("X-Tapper-Index"))
    t = threading.Thread(target=wait); t.start()
    time.sleep(0.002)  # let the query park (a write before it parks returns at once and would flatter the figure)
    sent = time.perf_counter()
    write.request("PUT", f"/v1/services/wake/instances/i{i % 4}", body=body.replace("/bench/", f"/bench{i}/"), headers={"Content-Type": "application/json"})
    write.getresponse().read()
    t.join()
    assert woke["index"] > index
    lat.append((woke["t"] - sent) * 1000)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"wake-up latency over {n} changes (write sent -> watcher woken, ms): p50 {p(0.5):.3f}  p90 {p(0.9):.3f}  p99 {p(0.99):.3f}  max {lat[-1]:.3f}")
