"""Offline cross-check of reel's S3 presigned URLs against the official AWS SDK
for Python: for the same endpoint, addressing style, credentials, key, method,
expiry and a frozen clock, boto3's generate_presigned_url and
`reel-vectors presign-s3` must print exactly the same URL.

Needs boto3 from Debian (python3-boto3, run with /usr/bin/python3); without it
the test fails with the install hint. No network is used: presigning is local.
"""
import datetime
import os
import subprocess
import sys

import reelharness as h

# Hermetic SDK: no ~/.aws files, no AWS_* variables from the environment.
for _name in list(os.environ):
    if _name.startswith("AWS_"):
        del os.environ[_name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

# (name, endpoint, region, virtual_hosted, method, bucket, key, unix time, expires, content type, session token)
CASES = [
    ("GET path-style local", "http://127.0.0.1:9000", "us-east-1", False, "GET", "my-bucket",
     "a b/c+d~e.mp4", 1714979289, 900, None, None),
    ("PUT path-style local", "http://127.0.0.1:9000", "us-east-1", False, "PUT", "reel-staging",
     "uploads/job_01HX/final video.mp4", 1714979289, 3600, None, None),
    ("PUT path-style local with Content-Type", "http://127.0.0.1:9000", "us-east-1", False, "PUT", "reel-staging",
     "uploads/job_01HX/input.mp4", 1700000000, 600, "video/mp4", None),
    ("GET virtual-hosted AWS", "https://s3.us-east-1.amazonaws.com", "us-east-1", True, "GET", "my-bucket",
     "reel/2024-05/job_01HX/final_video.mp4", 1714979289, 86400, None, None),
    ("PUT virtual-hosted AWS eu-west-1", "https://s3.eu-west-1.amazonaws.com", "eu-west-1", True, "PUT",
     "media-eu", "in/clip (1).mov", 1600000000, 604800, None, None),
    ("PUT virtual-hosted with Content-Type", "https://s3.eu-west-1.amazonaws.com", "eu-west-1", True, "PUT",
     "media-eu", "in/clip.webm", 1600000000, 300, "video/webm", None),
    ("GET virtual-hosted local name", "http://minio.local:9000", "us-east-1", True, "GET", "my-bucket",
     "x/y.mp4", 1714979289, 60, None, None),
    ("GET virtual-hosted asked for an IP endpoint (path-style)", "http://127.0.0.1:9000", "us-east-1", True,
     "GET", "my-bucket", "x/y.mp4", 1714979289, 60, None, None),
    ("GET UTF-8 key", "http://127.0.0.1:9000", "us-east-1", False, "GET", "my-bucket",
     "vid\u00e9o/\u1234 \u00fc.mp4", 1714979289, 900, None, None),
    ("GET with session token", "https://s3.us-east-1.amazonaws.com", "us-east-1", True, "GET", "my-bucket",
     "k.mp4", 1714979289, 900, None, "FQoGZXIvYXdzEJr//////////wEaDOzQ+token/value=="),
    ("GET default port kept in the URL", "https://s3.eu-west-1.amazonaws.com:443", "eu-west-1", False, "GET",
     "my-bucket", "k.mp4", 1714979289, 900, None, None),
]


def frozen_datetime(at):
    """A datetime.datetime whose clock reads `at` (naive UTC)."""

    class Frozen(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return at

        @classmethod
        def now(cls, tz=None):
            return at if tz is None else at.replace(tzinfo=datetime.timezone.utc).astimezone(tz)

    return Frozen


def boto3_url(boto3, case):
    """generate_presigned_url at the case's frozen time."""
    from unittest import mock

    import botocore.auth
    from botocore.config import Config

    name, endpoint, region, virtual, method, bucket, key, when, expires, content_type, token = case
    session = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET,
                                    aws_session_token=token, region_name=region)
    client = session.client("s3", endpoint_url=endpoint, config=Config(
        signature_version="s3v4", s3={"addressing_style": "virtual" if virtual else "path"}))
    params = {"Bucket": bucket, "Key": key}
    if content_type:
        params["ContentType"] = content_type
    operation = {"GET": "get_object", "PUT": "put_object"}[method]
    at = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch.object(botocore.auth.datetime, "datetime", frozen_datetime(at)):
        return client.generate_presigned_url(operation, Params=params, ExpiresIn=expires)


def reel_url(binary, case):
    name, endpoint, region, virtual, method, bucket, key, when, expires, content_type, token = case
    args = [binary, "presign-s3", "--endpoint", endpoint, "--region", region, "--bucket", bucket, "--key", key,
            "--method", method, "--access-key", ACCESS_KEY, "--secret", SECRET, "--time", str(when),
            "--expires", str(expires)]
    if virtual:
        args.append("--virtual-hosted")
    if content_type:
        args += ["--header", "Content-Type: " + content_type]
    if token:
        args += ["--session-token", token]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def body(c):
    try:
        import boto3  # noqa: F401 - Debian's python3-boto3
    except ImportError:
        c.fail("boto3 is not installed for %s: install it with `apt-get install -y python3-boto3` "
               "(Debian's package; run this test with /usr/bin/python3)" % sys.executable)
        return
    binary = os.path.join(h.BUILD_DIR, "reel-vectors")
    if not c.check(os.access(binary, os.X_OK), "reel-vectors is built at %s (cmake --build build)" % binary):
        return
    for case in CASES:
        expected = boto3_url(boto3, case)
        rc, actual, err = reel_url(binary, case)
        if not c.eq(rc, 0, "%s: reel-vectors presign-s3 exits 0 (stderr %r)" % (case[0], err)):
            continue
        c.eq(actual, expected, "%s: reel's URL is boto3's" % case[0])

    # Secrets stay out of error messages.
    bad = ("invalid bucket", "https://s3.us-east-1.amazonaws.com", "us-east-1", True, "GET", "Not_A_DNS.Bucket",
           "k.mp4", 1714979289, 900, None, None)
    rc, out, err = reel_url(binary, bad)
    c.check(rc != 0 and out == "", "an invalid virtual-hosted bucket is refused (rc %d)" % rc)
    c.check(SECRET not in err and SECRET not in out, "the error message does not echo the secret")


if __name__ == "__main__":
    raise SystemExit(h.run(body))
