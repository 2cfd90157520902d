"""A node that stops inside a transaction (paused, hung) must not stall the
others (issue 10; found by test_scaleout_sigstop in CI): another session holds
a job's row lock while reeld serves. Reads never wait for row locks, a write
that meets the lock fails with 503 after the lock wait instead of stalling the
store for every later request, and the store goes on serving. (The other
session is psql, standing in for a SIGSTOPped node mid-batch.)
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402


def body(c):
    with pgserver.PgServer() as pg:
        svc={"workers":0,"database":{"backend":"postgres","url":pg.url}}
        with h.Reeld(service=svc) as r:
            st,_,j=r.json("POST","/v1/jobs",{"prompt":"x"})
            holder=subprocess.Popen(["psql","-X","-h","127.0.0.1","-p",str(pg.port),"-U","reel","-d","reel","-c","BEGIN; SELECT id FROM jobs WHERE id='%s' FOR UPDATE; SELECT pg_sleep(15);"%j["id"]],stdout=subprocess.DEVNULL)
            time.sleep(1)
            t=time.time(); st,_,g=r.json("GET","/v1/jobs/"+j["id"],timeout=10); c.eq(st,200,"GET answers while another session holds the row (%.2fs)"%(time.time()-t))
            t=time.time(); st,hd,_=r.json("POST","/v1/jobs/%s/cancel"%j["id"],timeout=20); el=time.time()-t
            c.eq(st,503,"cancel of a row locked elsewhere answers 503 after the lock wait (%.1fs)"%el)
            t=time.time(); st,_,_=r.json("GET","/v1/jobs/"+j["id"],timeout=10); c.eq(st,200,"and the store goes on serving")
            holder.kill()
if __name__ == "__main__":
    raise SystemExit(h.run(body))
