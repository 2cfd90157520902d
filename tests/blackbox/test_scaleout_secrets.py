"""The PostgreSQL password never reaches a log (issue 10, SPEC §7: "a password
may come from service.database.password_file, never from the log").

reeld runs against a real PostgreSQL with a password in service.database.url
and another in service.database.password_file (the cluster trusts loopback,
so any password connects). A command pipeline prints both passwords and the
whole URL; the job's logs (stored in PostgreSQL and served by the API), the
jobs table itself and everything reeld wrote must hold none of them.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402

URL_PASSWORD = "Pg-uRl-pAsSw0rd-91x"
FILE_PASSWORD = "Pg-f1le-PaSsWoRd-77q"


def body(c):
    with pgserver.PgServer() as pg:
        url = pg.url.replace("postgresql://reel@", "postgresql://reel:%s@" % URL_PASSWORD)
        password_file = os.path.join(pg.tmp, "db-password")
        with open(password_file, "w") as f:
            f.write(FILE_PASSWORD + "\n")
        script = "echo url %s; echo file %s; echo glued x%sy; echo x > output/final_video.mp4" % (
            url, FILE_PASSWORD, URL_PASSWORD)
        service = {"workers": 1, "database": {"backend": "postgres", "url": url, "password_file": password_file}}
        with h.Reeld(service=service, pipeline={"default_backend": "command", "command": ["sh", "-c", script]}) as r:
            status, _, job = r.json("POST", "/v1/jobs", {"prompt": "secrets"})
            c.eq(status, 202, "a job is accepted on PostgreSQL with a password in the URL and in password_file")
            r.wait_job(job["id"], "finished", timeout=60)
            status, _, logs = r.json("GET", "/v1/jobs/%s/logs" % job["id"])
            text = "\n".join(logs["lines"])
            c.check(any("[REDACTED]" in line for line in logs["lines"]), "the job's output was stored, redacted")
            for name, secret in (("the URL's password", URL_PASSWORD), ("password_file's", FILE_PASSWORD)):
                c.check(secret not in text, "%s is not in the job's logs" % name)
                c.check(secret not in r.log_text(), "%s is not in reeld's log" % name)
                c.check(secret not in pg.psql("SELECT string_agg(line, ' ') FROM job_logs"),
                        "%s is not in the job_logs table" % name)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
