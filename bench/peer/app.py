"""The benchmark's peer: the seed's stack (FastAPI + Hypercorn + RQ + Redis)
serving the same two endpoints as reel, as plainly as that stack is written.

    POST /v1/jobs        {"prompt": "..."} -> 202 {id, status, created_at}, Location
    GET  /v1/jobs/{id}   -> 200 {id, status, progress, stage, created_at,
                                 started_at, finished_at, gcs_uri, artifact_uri, error}

Settings come from the environment that bench/run.sh sets:
    PEER_REDIS_URL   redis://127.0.0.1:PORT/0
    PEER_TOKENS      comma-separated bearer tokens
The job itself is tasks.run_pipeline, run by `rq worker`.

Runs on Debian's /usr/bin/python3 with python3-fastapi, python3-hypercorn,
python3-rq (and python3-uvloop for the worker class bench/run.sh picks).
"""

import hmac
import os
import uuid
from datetime import timezone

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Extra, validator
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

import tasks

MAX_PROMPT_CHARS = 2000
MAX_BODY_BYTES = 65536

REDIS = Redis.from_url(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))
QUEUE = Queue("default", connection=REDIS)
TOKENS = [t.encode() for t in os.environ.get("PEER_TOKENS", "bench-token-123456").split(",") if t]

app = FastAPI(title="reel bench peer", openapi_url=None, docs_url=None, redoc_url=None)


class ProblemError(Exception):
    def __init__(self, status, title, detail, headers=None):
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def problem(status, title, detail, headers=None):
    request_id = uuid.uuid4().hex[:16]
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "request_id": request_id}
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers={"X-Request-Id": request_id, **(headers or {})})


@app.exception_handler(ProblemError)
async def on_problem(request: Request, exc: ProblemError):
    return problem(exc.status, exc.title, exc.detail, exc.headers)


@app.exception_handler(RequestValidationError)
async def on_invalid(request: Request, exc: RequestValidationError):
    # FastAPI answers 422 by default; the contract says 400 naming the problem.
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return problem(400, "Bad Request", f"{where}: {first.get('msg', 'invalid request body')}")


async def require_token(authorization: str = Header(default="")):
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ProblemError(401, "Unauthorized", "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    supplied = token.strip().encode()
    ok = False
    for known in TOKENS:  # constant-time compare against every token
        ok |= hmac.compare_digest(supplied, known)
    if not ok:
        raise ProblemError(401, "Unauthorized", "the bearer token is not valid", {"WWW-Authenticate": "Bearer"})


async def require_json(content_type: str = Header(default=""), content_length: int = Header(default=0)):
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ProblemError(415, "Unsupported Media Type", "Content-Type must be application/json")
    if content_length > MAX_BODY_BYTES:
        raise ProblemError(413, "Payload Too Large", f"the body is larger than {MAX_BODY_BYTES} bytes")


class JobRequest(BaseModel):
    prompt: str

    class Config:
        extra = Extra.forbid  # prompt-only: any other key is a 400

    @validator("prompt")
    def prompt_is_text(cls, value):
        if not value.strip():
            raise ValueError("prompt must be a non-empty string")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt is longer than {MAX_PROMPT_CHARS} characters")
        return value


def rfc3339(dt):
    if dt is None:
        return None
    if dt.tzinfo is None:  # RQ stores naive UTC datetimes
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A plain `def` endpoint: FastAPI runs it in its thread pool, the usual way to
# call the blocking redis/RQ client from an async server.
@app.post("/v1/jobs", status_code=202, dependencies=[Depends(require_token), Depends(require_json)])
def create_job(body: JobRequest):
    job = QUEUE.enqueue(tasks.run_pipeline, body.prompt, job_timeout=3600, result_ttl=86400, failure_ttl=86400,
                        meta={"progress": 0, "stage": None})
    return JSONResponse({"id": job.id, "status": "queued", "created_at": rfc3339(job.created_at)},
                        status_code=202, headers={"Location": f"/v1/jobs/{job.id}",
                                                  "X-Request-Id": uuid.uuid4().hex[:16]})


STATUS = {"queued": "queued", "deferred": "queued", "scheduled": "queued", "started": "started",
          "finished": "finished", "failed": "failed", "stopped": "canceled", "canceled": "canceled"}


@app.get("/v1/jobs/{job_id}", dependencies=[Depends(require_token)])
def get_job(job_id: str):
    try:
        job = Job.fetch(job_id, connection=REDIS)
    except NoSuchJobError:
        raise ProblemError(404, "Not Found", "no job has this id")
    status = STATUS.get(job.get_status(refresh=False) or "queued", "queued")
    meta = job.meta or {}
    progress = int(meta.get("progress") or 0)
    if status == "started" and progress > 0:
        status = "progress"
    if status == "finished":
        progress = 100
    error = None
    if status == "failed":
        error = (job.exc_info or "failed").strip().splitlines()[-1][:500]
    return JSONResponse({
        "id": job.id,
        "status": status,
        "progress": progress,
        "stage": meta.get("stage"),
        "created_at": rfc3339(job.created_at),
        "started_at": rfc3339(job.started_at),
        "finished_at": rfc3339(job.ended_at),
        "gcs_uri": None,
        "artifact_uri": meta.get("artifact_uri"),
        "error": error,
    }, headers={"X-Request-Id": uuid.uuid4().hex[:16]})
