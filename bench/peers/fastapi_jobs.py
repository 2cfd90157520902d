"""The POST peer of bench/scaleout.sh: seed 002's stack — FastAPI, SQLAlchemy
(async, the ORM with an AsyncSession per request) and asyncpg on PostgreSQL,
served by uvicorn — answering POST /v1/jobs as reel does:

    POST /v1/jobs  {"prompt": "..."}  (bearer token, application/json)
        -> 202 {"id", "status": "queued", "created_at"}, Location: /v1/jobs/{id}

It inserts the same row as reel's PostgreSQL store (src/store/pg_store.c): a
`jobs` table with the same columns and defaults, one INSERT committed per
request before the 202 (PostgreSQL's synchronous_commit = on, as for reel).

Settings, from the environment bench/scaleout.py sets:
    PEER_DATABASE_URL  postgresql+asyncpg://user@127.0.0.1:PORT/db
    PEER_TOKENS        comma-separated bearer tokens
    PEER_POOL_SIZE     connections per uvicorn worker process (default 16)

`python3 fastapi_jobs.py --create-schema` makes the table and exits (run once
before the server starts, so its workers do not race to create it).

Runs on Debian's /usr/bin/python3 with python3-fastapi, python3-sqlalchemy,
python3-asyncpg, python3-uvicorn (python3-uvloop, python3-httptools for the
fastest uvicorn settings).
"""

import asyncio
import hmac
import os
import secrets
import sys
import time
import uuid
from datetime import datetime, timezone

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Extra, validator
from sqlalchemy import BigInteger, Column, Index, Integer, SmallInteger, Text, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import declarative_base, sessionmaker

MAX_PROMPT_CHARS = 2000
MAX_BODY_BYTES = 65536
DATABASE_URL = os.environ.get("PEER_DATABASE_URL", "postgresql+asyncpg://reel@127.0.0.1:5432/peer")
TOKENS = [t.encode() for t in os.environ.get("PEER_TOKENS", "bench-token-123456").split(",") if t]
POOL_SIZE = int(os.environ.get("PEER_POOL_SIZE", "16"))

Base = declarative_base()


class Job(Base):
    """reel's jobs table on PostgreSQL, column for column."""
    __tablename__ = "jobs"
    seq = Column(BigInteger, primary_key=True, autoincrement=True)
    id = Column(Text, nullable=False, unique=True)
    version = Column(BigInteger, nullable=False, server_default=text("1"))
    status = Column(SmallInteger, nullable=False)
    priority = Column(Integer, nullable=False, server_default=text("0"))
    progress = Column(Integer, nullable=False, server_default=text("0"))
    stage = Column(Text, nullable=False, server_default=text("''"))
    prompt = Column(Text, nullable=False)
    created_ms = Column(BigInteger, nullable=False)
    started_ms = Column(BigInteger, nullable=False, server_default=text("0"))
    finished_ms = Column(BigInteger, nullable=False, server_default=text("0"))
    updated_ms = Column(BigInteger, nullable=False, server_default=text("0"))
    attempts = Column(Integer, nullable=False, server_default=text("0"))
    run_after_ms = Column(BigInteger, nullable=False, server_default=text("0"))
    cancel_requested = Column(Integer, nullable=False, server_default=text("0"))
    artifact_key = Column(Text)
    artifact_uri = Column(Text)
    gcs_uri = Column(Text)
    error = Column(Text)
    failure_reason = Column(Text)
    node = Column(Text, nullable=False, server_default=text("''"))
    lease_expires_ms = Column(BigInteger, nullable=False, server_default=text("0"))
    cost = Column(Text)
    __table_args__ = (
        Index("jobs_by_status", "status", "seq"),
        Index("jobs_runnable", priority.desc(), "run_after_ms", "seq", postgresql_where=text("status = 0")),
        Index("jobs_leases", "lease_expires_ms", postgresql_where=text("status IN (1, 2)")),
        Index("jobs_finished", "finished_ms", postgresql_where=text("status >= 3")),
    )


engine = create_async_engine(DATABASE_URL, pool_size=POOL_SIZE, max_overflow=0, pool_pre_ping=False)
Session = sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

app = FastAPI(title="reel bench peer (seed 002 stack)", openapi_url=None, docs_url=None, redoc_url=None)


class ProblemError(Exception):
    def __init__(self, status, title, detail, headers=None):
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def problem(status, title, detail, headers=None):
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers or {})


@app.exception_handler(ProblemError)
async def on_problem(request: Request, exc: ProblemError):
    return problem(exc.status, exc.title, exc.detail, exc.headers)


@app.exception_handler(RequestValidationError)
async def on_invalid(request: Request, exc: RequestValidationError):
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return problem(400, "Bad Request", f"{where}: {first.get('msg', 'invalid request body')}")


async def require_token(authorization: str = Header(default="")):
    scheme, _, token = authorization.partition(" ")
    supplied = token.strip().encode()
    ok = False
    for known in TOKENS:  # constant-time compare against every token
        ok |= hmac.compare_digest(supplied, known)
    if scheme.lower() != "bearer" or not ok:
        raise ProblemError(401, "Unauthorized", "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})


async def require_json(content_type: str = Header(default=""), content_length: int = Header(default=0)):
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ProblemError(415, "Unsupported Media Type", "Content-Type must be application/json")
    if content_length > MAX_BODY_BYTES:
        raise ProblemError(413, "Payload Too Large", f"the body is larger than {MAX_BODY_BYTES} bytes")


class JobRequest(BaseModel):
    prompt: str

    class Config:
        extra = Extra.forbid

    @validator("prompt")
    def prompt_is_text(cls, value):
        if not value.strip():
            raise ValueError("prompt must be a non-empty string")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt is longer than {MAX_PROMPT_CHARS} characters")
        return value


def rfc3339_ms(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def get_session():
    async with Session() as session:
        yield session


@app.post("/v1/jobs", status_code=202, dependencies=[Depends(require_token), Depends(require_json)])
async def create_job(body: JobRequest, session: AsyncSession = Depends(get_session)):
    now_ms = int(time.time() * 1000)
    job = Job(id="job_" + uuid.uuid4().hex[:26], status=0, progress=0, stage="", prompt=body.prompt,
              created_ms=now_ms, updated_ms=now_ms, run_after_ms=0, priority=0)
    session.add(job)
    await session.commit()  # committed (synchronous_commit = on) before the 202
    return JSONResponse({"id": job.id, "status": "queued", "created_at": rfc3339_ms(now_ms)},
                        status_code=202, headers={"Location": f"/v1/jobs/{job.id}",
                                                  "X-Request-Id": secrets.token_hex(8)})


async def create_schema():
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


if __name__ == "__main__" and "--create-schema" in sys.argv[1:]:
    asyncio.run(create_schema())
