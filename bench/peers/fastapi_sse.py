"""The peer of bench/events.sh: job events the way a FastAPI service
typically serves them — Redis pub/sub behind server-sent events, and
webhooks sent from a background task.

- POST /v1/jobs: bearer token, a JSON body with a non-empty "prompt"; stores
  the job and its `job.created` event in Redis (the event id from INCR, the
  event appended to a list for replay) and PUBLISHes the event, all in one
  MULTI/EXEC; answers 202 {id, status, created_at} once Redis has answered,
  i.e. after the event was published. With PEER_WEBHOOK_URL set, a
  BackgroundTask (run by Starlette after the response went out) POSTs the
  event there with a shared httpx.AsyncClient, signed per Standard Webhooks
  (webhook-id, webhook-timestamp, webhook-signature v1 HMAC-SHA256), retried
  twice on failure. Not durable: a crash loses what is in flight (reel's
  deliveries are an outbox in the job store).
- GET /v1/events: bearer token; text/event-stream through Starlette's
  StreamingResponse (Debian 12 has no sse-starlette): `retry: 2000`, then
  every event as `id:`/`event:`/`data:` lines, a `: keep-alive` comment
  after 15 s without one. Starlette's StreamingResponse watches for the
  client's disconnect and cancels the generator.
- Fan-out (PEER_FANOUT): `hub` (default) — one Redis subscription per worker
  process, read by one task that puts each message on an asyncio.Queue per
  subscriber: the design of encode/broadcaster, the pub/sub helper Starlette's
  documentation points to; `per-client` — one Redis connection and
  subscription per stream (`pubsub.listen()` inside the generator, as most
  sse-starlette + Redis examples do), kept for comparison.
- GET /healthz: 200.

Run with uvicorn (uvloop, httptools): `uvicorn fastapi_sse:app`.
Environment: PEER_REDIS_URL (redis://127.0.0.1:6379/0), PEER_TOKENS (comma
list), PEER_FANOUT, PEER_WEBHOOK_URL, PEER_WEBHOOK_SECRET (whsec_…),
PEER_CHANNEL (reel-events).
"""
import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import time

import redis.asyncio as aioredis
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKENS = [t for t in os.environ.get("PEER_TOKENS", "change-me").split(",") if t]
FANOUT = os.environ.get("PEER_FANOUT", "hub")
CHANNEL = os.environ.get("PEER_CHANNEL", "reel-events")
HOOK_URL = os.environ.get("PEER_WEBHOOK_URL", "")
HOOK_SECRET = os.environ.get("PEER_WEBHOOK_SECRET", "")
KEEPALIVE_S = float(os.environ.get("PEER_KEEPALIVE_SECONDS", "15"))

app = FastAPI()
state = {}


def authorized(request: Request) -> bool:
    h = request.headers.get("authorization", "")
    if not h.startswith("Bearer "):
        return False
    tok = h[7:].encode()
    ok = False
    for t in TOKENS:
        ok |= hmac.compare_digest(tok, t.encode())
    return ok


def problem(status, title):
    return JSONResponse({"type": "about:blank", "title": title, "status": status}, status_code=status,
                        media_type="application/problem+json")


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Hub:
    """One subscription, a queue per subscriber (encode/broadcaster's design)."""

    def __init__(self, r):
        self.r = r
        self.queues = set()
        self.task = None

    async def start(self):
        self.pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(CHANNEL)
        self.task = asyncio.create_task(self.run())

    async def run(self):
        async for m in self.pubsub.listen():
            if m.get("type") != "message":
                continue
            frame = sse_frame(m["data"])  # formatted once for every subscriber
            for q in self.queues:
                q.put_nowait(frame)

    async def stop(self):
        if self.task:
            self.task.cancel()
        await self.pubsub.close()


@app.on_event("startup")
async def startup():
    r = aioredis.from_url(REDIS_URL, decode_responses=True, max_connections=None)
    state["redis"] = r
    if FANOUT == "hub":
        state["hub"] = Hub(r)
        await state["hub"].start()
    if HOOK_URL:
        import httpx
        state["http"] = httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=16))
        key = HOOK_SECRET[len("whsec_"):] if HOOK_SECRET.startswith("whsec_") else HOOK_SECRET
        state["hook_key"] = base64.b64decode(key)


@app.on_event("shutdown")
async def shutdown():
    if "hub" in state:
        await state["hub"].stop()
    if "http" in state:
        await state["http"].aclose()
    await state["redis"].close()


@app.get("/healthz")
async def healthz():
    return PlainTextResponse("ok")


async def deliver(event_type, job, event_id):
    """POSTs one webhook, Standard Webhooks signed; two retries on failure."""
    body = json.dumps({"type": event_type, "timestamp": now_rfc3339(), "data": job}, separators=(",", ":"))
    msg_id = f"msg_{event_id}"
    for attempt in range(3):
        ts = str(int(time.time()))
        mac = hmac.new(state["hook_key"], f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
        headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": ts,
                   "webhook-signature": "v1," + base64.b64encode(mac).decode()}
        try:
            resp = await state["http"].post(HOOK_URL, content=body, headers=headers)
            if 200 <= resp.status_code < 300:
                return
        except Exception:
            pass
        await asyncio.sleep(0.5 * (attempt + 1))


@app.post("/v1/jobs", status_code=202)
async def create_job(request: Request, background: BackgroundTasks):
    if not authorized(request):
        return problem(401, "Unauthorized")
    try:
        body = await request.json()
    except ValueError:
        return problem(400, "Invalid JSON")
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > 2000:
        return problem(400, "Invalid prompt")
    r = state["redis"]
    job_id = "job_" + secrets.token_hex(12)
    created = now_rfc3339()
    job = {"id": job_id, "status": "queued", "progress": 0, "stage": None, "prompt": prompt,
           "created_at": created, "started_at": None, "finished_at": None, "attempts": 0, "error": None}
    event_id = await r.incr("reel:event_id")
    event = json.dumps({"id": event_id, "type": "job.created", "job_id": job_id, "created_at": created,
                        "data": job}, separators=(",", ":"))
    async with r.pipeline(transaction=True) as p:
        p.set(f"reel:job:{job_id}", json.dumps(job, separators=(",", ":")))
        p.rpush("reel:events", event)
        p.publish(CHANNEL, event)
        await p.execute()
    if HOOK_URL:
        background.add_task(deliver, "job.created", job, event_id)
    return JSONResponse({"id": job_id, "status": "queued", "created_at": created}, status_code=202,
                        headers={"Location": f"/v1/jobs/{job_id}"})


def sse_frame(raw):
    e = json.loads(raw)
    return f"id: {e['id']}\nevent: {e['type']}\ndata: {raw}\n\n"


async def stream_hub():
    q = asyncio.Queue()
    hub = state["hub"]
    hub.queues.add(q)
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                frame = await asyncio.wait_for(q.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield frame
    finally:
        hub.queues.discard(q)


async def stream_per_client():
    pubsub = state["redis"].pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    try:
        yield "retry: 2000\n\n"
        while True:
            m = await pubsub.get_message(timeout=KEEPALIVE_S)
            if m is None:
                yield ": keep-alive\n\n"
                continue
            if m.get("type") == "message":
                yield sse_frame(m["data"])
    finally:
        await pubsub.unsubscribe(CHANNEL)
        await pubsub.close()


@app.get("/v1/events")
async def events(request: Request):
    if not authorized(request):
        return problem(401, "Unauthorized")
    gen = stream_hub() if FANOUT == "hub" else stream_per_client()
    return StreamingResponse(gen, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
