"""Offline cross-check of reel's GCS V4 signed URLs with the official SDK.

For a set of requests (downloads, uploads with and without a Content-Type,
resumable-upload starts, object names that need percent-encoding, a custom
endpoint, several times and lifetimes), this test asks

  * Google's Node.js SDK, @google-cloud/storage (pinned in tools/package.json),
    through tests/blackbox/gcs_signed_url.js: file.getSignedUrl({version: 'v4',
    action: 'read' | 'write' | 'resumable', expires, accessibleAt, contentType});
  * reel, through `$REEL_BUILD_DIR/reel-vectors sign-gcs ...` (the upload and
    delivery API of src/storage/gcs_sign.h);

both with the conformance suite's inactive dummy service-account key
(tests/vectors/gcs-v4/service-account.json) at the same FIXED time, and
checks that the two URLs are byte-identical, signature included.

How the SDK is made deterministic and offline: the SDK reads the clock through
`new Date()` / `Date.now()`, so the node script replaces the global Date with
one frozen at the requested time before loading the SDK (and passes the same
instant as `accessibleAt`); with a service-account key getSignedUrl signs
locally (RSA-SHA256 in node:crypto), and the script stubs out every network
entry point (net, tls, http, https, dns, fetch) and fails if any was used.
Nothing is compared loosely: the timestamp-dependent parts (X-Goog-Date,
the credential scope, the signature) are compared too.

The SDK comes from npm: `scripts/install-deps.sh --test` runs `npm ci` in
tools/. Without tools/node_modules this test FAILS (it does not skip) and
says how to install it.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SCRIPT = os.path.join(HERE, "gcs_signed_url.js")
SDK_DIR = os.path.join(h.SOURCE_DIR, "tools", "node_modules", "@google-cloud", "storage")
KEY = os.path.abspath(os.path.join(h.SOURCE_DIR, "tests", "vectors", "gcs-v4", "service-account.json"))
VECTORS = os.path.join(h.BUILD_DIR, "reel-vectors")

# 2019-02-01T09:00:00Z, the conformance suite's time, and two others.
T_CONFORMANCE = 1549011600
T_LATER = 1756643696
T_LEAP_DAY = 1709251199  # 2024-02-29T23:59:59Z

CASES = [
    # (description, method, bucket, object, time, expires, content_type, endpoint)
    ("download, the conformance case", "GET", "test-bucket", "test-object", T_CONFORMANCE, 10, None, None),
    ("download of a rendered video", "GET", "reel-artifacts", "reel/2025-08/job_01ABCDEFGHJKMNPQRSTVWXYZ0/final_video.mp4",
     T_LATER, 3600, None, None),
    ("download, name that needs encoding", "GET", "reel-artifacts",
     "dir/sub dir/a+b&c=d?e#f%g (1) [x] {y} it's!*~_.-é漢字😀.mp4", T_LATER, 900, None, None),
    ("download, leading and doubled slashes", "GET", "test-bucket", "/a//b/", T_LEAP_DAY, 60, None, None),
    ("download, seven days (the V4 maximum)", "GET", "test-bucket", "test-object", T_LEAP_DAY, 604800, None, None),
    ("upload with Content-Type video/mp4", "PUT", "reel-artifacts", "reel/2025-08/job_01/final_video.mp4", T_LATER,
     900, "video/mp4", None),
    ("upload with a Content-Type that has parameters", "PUT", "reel-artifacts", "captions.vtt", T_LATER, 900,
     "text/vtt; charset=utf-8", None),
    ("upload without Content-Type", "PUT", "test-bucket", "test-object", T_CONFORMANCE, 10, None, None),
    ("resumable upload start", "POST", "reel-artifacts", "big/final_video.mp4", T_LATER, 3600, "video/mp4", None),
    ("resumable upload start without Content-Type", "POST", "test-bucket", "test-object", T_CONFORMANCE, 10, None,
     None),
    ("download from a local emulator endpoint", "GET", "test-bucket", "test-object", T_LATER, 300, None,
     "http://127.0.0.1:4443"),
    ("upload to a local emulator endpoint", "PUT", "test-bucket", "a b.mp4", T_LATER, 300, "video/mp4",
     "http://localhost:9023"),
]


def args_for(method, bucket, obj, when, expires, content_type, endpoint):
    args = ["--key", KEY, "--bucket", bucket, "--object", obj, "--method", method,
            "--time", str(when), "--expires", str(expires)]
    if content_type is not None:
        args += ["--content-type", content_type]
    if endpoint is not None:
        args += ["--endpoint", endpoint]
    return args


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def sdk_url(*case):
    return run(["node", NODE_SCRIPT] + args_for(*case))


def reel_url(*case):
    return run([VECTORS, "sign-gcs"] + args_for(*case))


def body(c):
    ready = c.check(shutil.which("node") is not None,
                    "node is installed (scripts/install-deps.sh installs nodejs)")
    ready &= c.check(os.path.isfile(os.path.join(SDK_DIR, "package.json")),
                     "@google-cloud/storage is installed in tools/node_modules "
                     "(run `scripts/install-deps.sh --test`, or `cd tools && npm ci`)")
    ready &= c.check(os.path.isfile(VECTORS) and os.access(VECTORS, os.X_OK),
                     "%s is built (cmake --build build)" % VECTORS)
    ready &= c.check(os.path.isfile(KEY), "the conformance key %s exists" % KEY)
    if not ready:
        return

    for desc, *case in CASES:
        rc_sdk, sdk, sdk_err = sdk_url(*case)
        if not c.check(rc_sdk == 0 and sdk.startswith("http"), "SDK signs: %s (%s)" % (desc, sdk_err or rc_sdk)):
            continue
        rc_reel, reel, reel_err = reel_url(*case)
        if not c.check(rc_reel == 0, "reel signs: %s (%s)" % (desc, reel_err or rc_reel)):
            continue
        c.eq(reel, sdk, "reel's URL equals the SDK's: %s" % desc)

    # The fixed time really drives both signers: another time, another URL;
    # the same time twice, the same URL.
    first = CASES[0][1:]
    later = (first[0], first[1], first[2], first[3] + 1) + tuple(first[4:])
    _, sdk_a, _ = sdk_url(*first)
    _, sdk_b, _ = sdk_url(*first)
    _, sdk_c, _ = sdk_url(*later)
    _, reel_c, _ = reel_url(*later)
    c.eq(sdk_a, sdk_b, "the SDK's URL is deterministic at a fixed time")
    c.check(sdk_c != sdk_a and "X-Goog-Date=20190201T090001Z" in sdk_c, "the SDK signs at the given time")
    c.eq(reel_c, sdk_c, "reel's URL equals the SDK's one second later")

    # Errors say what is wrong and carry no key material.
    rc, out, err = run([VECTORS, "sign-gcs"] + args_for("GET", "test-bucket", "o", T_LATER, 604801, None, None))
    c.check(rc != 0 and "expiration" in err and out == "", "reel refuses an expiry past seven days: %s" % err)
    rc, out, err = run([VECTORS, "sign-gcs"] + args_for("GET", "Bad_Bucket", "o", T_LATER, 60, None, None))
    c.check(rc != 0 and "bucket" in err, "reel refuses an invalid bucket name: %s" % err)
    c.check("PRIVATE KEY" not in err and "MII" not in err, "no key material in reel's error")


if __name__ == "__main__":
    raise SystemExit(h.run(body))
