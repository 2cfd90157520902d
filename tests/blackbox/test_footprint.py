"""Idle footprint: a reeld that does not need a library does not load it.

libcurl, and through it OpenSSL's libcrypto, Kerberos, LDAP and libssh2,
cost a reeld ~4.5 MB of resident pages when they were linked in. Only S3 and
GCS storage use them, so reeld loads libcurl at start only when such storage
is configured. The test starts reeld with every listener kind on local
storage and checks that none of those libraries is mapped, then with S3
storage and checks that libcurl is. It prints VmRSS for each (for the
record; the figures that count come from bench/footprint.sh, since a test
must not fail on a machine-dependent number).
"""

import os
import shutil
import subprocess
import tempfile

import reelharness as h

ONLY_FOR_OBJECT_STORAGE = ("libcurl", "libcrypto.so", "libssh2", "libldap", "libkrb5", "librtmp")


def mapped_libraries(pid):
    with open("/proc/%d/maps" % pid) as f:
        return {line.split()[-1] for line in f if "/" in line.split()[-1]}


def body(c):
    tmp = tempfile.mkdtemp(prefix="reel-footprint-")
    certs = os.path.join(tmp, "certs")
    subprocess.run(["bash", os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh"), certs],
                   capture_output=True, check=True, timeout=60)
    tls = {"cert_file": os.path.join(certs, "server.pem"), "key_file": os.path.join(certs, "server-key.pem")}
    try:
        with h.Reeld(service={"workers": 2, "tls": tls}, start=False) as r:
            tls_port = h.free_port()
            kinds = (("http://", ["127.0.0.1:%d" % r.port]),
                     ("https://", ["127.0.0.1:%d" % r.port, "https://127.0.0.1:%d" % tls_port]),
                     ("h3://", ["127.0.0.1:%d" % r.port, "h3://127.0.0.1:%d" % tls_port]),
                     ("http + https + h3 (reel.yaml's)",
                      ["127.0.0.1:%d" % r.port, "https://127.0.0.1:%d" % tls_port, "h3://127.0.0.1:%d" % tls_port]))
            for label, listen in kinds:
                r.config["service"]["listen"] = listen
                r.start()
                libs = mapped_libraries(r.proc.pid)
                loaded = sorted(l for l in libs if any(name in l for name in ONLY_FOR_OBJECT_STORAGE))
                c.eq(loaded, [], "%s on local storage maps none of libcurl's libraries" % label)
                print("       %s: idle VmRSS %d kB" % (label, h.rss_kb(r.proc.pid)), flush=True)
                r.stop()

            r.config["service"]["listen"] = ["127.0.0.1:%d" % r.port]
            r.config["service"]["storage"] = {
                "backend": "s3", "bucket": "b", "endpoint": "http://127.0.0.1:9", "region": "us-east-1",
                "access_key_id": "AKIDEXAMPLE", "secret_access_key": "footprint-secret", "path_style": True}
            r.start()
            libs = mapped_libraries(r.proc.pid)
            c.check(any("libcurl" in l for l in libs), "with S3 storage libcurl is loaded")
            print("       http:// with S3 storage: idle VmRSS %d kB" % h.rss_kb(r.proc.pid), flush=True)
            r.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
