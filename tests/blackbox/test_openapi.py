#!/usr/bin/env python3
"""openapi.yaml is valid, lint-clean, and describes exactly the routes reeld serves.

1. `redocly lint` (pinned in tools/, config tools/redocly.yaml, `recommended`
   ruleset) reports no error and no warning.
2. The document keeps reel's own conventions: OpenAPI 3.1.0, the agreed
   operationIds, an X-Request-Id header on every response, a 401 with
   WWW-Authenticate on every operation that needs a token, and
   application/problem+json for every error body.
3. The (METHOD, PATH) pairs of `$REELD --routes` and the operations in the
   document are the same set; every pair missing on either side is printed.
4. A running reeld serves the document at GET /openapi.yaml byte for byte,
   without a token.

The YAML is read without PyYAML: redocly bundles it to JSON first.
Run by CTest with REELD, REEL_SOURCE_DIR and REEL_BUILD_DIR set; by hand,
`python3 tests/blackbox/test_openapi.py` from anywhere works after a build
in build/ and `scripts/install-deps.sh --test`.
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

OPENAPI = os.path.join(h.SOURCE_DIR, "openapi.yaml")
REDOCLY = os.path.join(h.SOURCE_DIR, "tools", "node_modules", ".bin", "redocly")
REDOCLY_CONFIG = os.path.join(h.SOURCE_DIR, "tools", "redocly.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The operationIds clients and docs rely on; more may be added, none removed.
REQUIRED_OPERATION_IDS = {
    "createJob", "listJobs", "getJob", "getJobArtifact", "getJobLogs", "cancelJob",
    "downloadFile", "headFile", "healthz", "readyz", "metrics", "openapi", "docs", "docsAsset",
}
# Error responses whose body is deliberately not a problem document:
# /readyz answers 503 with its readiness document so probes see which check failed.
NON_PROBLEM_ERRORS = {("readyz", "503")}


def redocly(args, timeout=180):
    """Runs the pinned redocly CLI from the repository root; returns the CompletedProcess."""
    env = dict(os.environ)
    env.update({"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
                "NO_COLOR": "1", "FORCE_COLOR": "0"})
    return subprocess.run([REDOCLY] + args, cwd=h.SOURCE_DIR, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def clean_stderr(text):
    """redocly's stderr without its framed banners (e.g. Node.js deprecation notices)."""
    keep = [l for l in text.splitlines() if l.strip() and not any(ch in l for ch in "║╔╚═")]
    return "\n".join("  | " + l for l in keep[-20:])


def check_tools(c):
    ok = c.check(os.path.isfile(OPENAPI), "openapi.yaml exists at %s" % OPENAPI)
    ok = c.check(os.path.isfile(REDOCLY_CONFIG), "redocly config exists at %s" % REDOCLY_CONFIG) and ok
    ok = c.check(os.access(REDOCLY, os.X_OK),
                 "redocly is installed at %s (if not: scripts/install-deps.sh --test, "
                 "or `npm ci` in tools/)" % REDOCLY) and ok
    return ok


def check_lint(c):
    p = redocly(["lint", OPENAPI, "--config", REDOCLY_CONFIG, "--format=json", "--max-problems=1000"])
    out = p.stdout.decode("utf-8", "replace")
    try:
        report = json.loads(out[out.index("{"):])
        totals = report["totals"]
    except (ValueError, KeyError) as e:
        c.fail("redocly lint printed a JSON report (exit %d, %s)\nstdout:\n%s\nstderr:\n%s"
               % (p.returncode, e, out[-2000:], clean_stderr(p.stderr.decode("utf-8", "replace"))))
        return
    for problem in report.get("problems", []):
        loc = (problem.get("location") or [{}])[0]
        start = loc.get("start") or {}
        print("  %s %s at openapi.yaml:%s:%s %s\n      %s" % (
            problem.get("severity"), problem.get("ruleId"), start.get("line", "?"),
            start.get("col", "?"), loc.get("pointer", ""), problem.get("message")))
    c.eq(totals.get("errors"), 0, "redocly lint: no errors")
    c.eq(totals.get("warnings"), 0, "redocly lint: no warnings")
    c.eq(p.returncode, 0, "redocly lint exits 0")


def load_document(c):
    """Bundles openapi.yaml to JSON with redocly and returns it parsed (None on failure)."""
    with tempfile.TemporaryDirectory(prefix="reel-openapi-") as tmp:
        out = os.path.join(tmp, "openapi.json")
        p = redocly(["bundle", OPENAPI, "--config", REDOCLY_CONFIG, "--ext", "json", "-o", out])
        if not c.check(p.returncode == 0 and os.path.isfile(out),
                       "redocly bundle converts openapi.yaml to JSON (exit %d)%s" % (
                           p.returncode,
                           "" if p.returncode == 0 else "\n" + clean_stderr(p.stderr.decode("utf-8", "replace")))):
            return None
        with open(out, encoding="utf-8") as f:
            try:
                return json.load(f)
            except ValueError as e:
                c.fail("bundled document is JSON: %s" % e)
                return None


def resolve(doc, node):
    """Follows local $refs ("#/components/...") until a non-reference object."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise ValueError("cannot resolve $ref %r" % ref)
        seen.add(ref)
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def document_operations(doc):
    """{(METHOD, path): operation} for every operation in the document."""
    ops = {}
    for path, item in (doc.get("paths") or {}).items():
        item = resolve(doc, item)
        for method in HTTP_METHODS:
            if method in item:
                ops[(method.upper(), path)] = item[method]
    return ops


def check_conventions(c, doc, ops):
    c.eq(doc.get("openapi"), "3.1.0", "document is OpenAPI 3.1.0")
    ids = {op.get("operationId") for op in ops.values()}
    missing = sorted(REQUIRED_OPERATION_IDS - ids)
    c.check(not missing, "every agreed operationId is present" + (
        "; missing: " + ", ".join(missing) if missing else ""))

    global_security = doc.get("security") or []
    no_request_id, no_auth, not_problem = [], [], []
    for (method, path), op in sorted(ops.items()):
        name = "%s %s" % (method, path)
        responses = op.get("responses") or {}
        for code, response in responses.items():
            response = resolve(doc, response)
            if "X-Request-Id" not in (response.get("headers") or {}):
                no_request_id.append("%s -> %s" % (name, code))
            content = response.get("content") or {}
            if (code[:1] in "45" and content and (op.get("operationId"), code) not in NON_PROBLEM_ERRORS
                    and set(content) != {"application/problem+json"}):
                not_problem.append("%s -> %s (%s)" % (name, code, ", ".join(sorted(content))))
        security = op.get("security", global_security)
        if security and security != [{}]:
            unauthorized = resolve(doc, responses["401"]) if "401" in responses else None
            if not unauthorized or "WWW-Authenticate" not in (unauthorized.get("headers") or {}):
                no_auth.append(name)
    for label, bad in (("every response declares the X-Request-Id header", no_request_id),
                       ("every operation that needs a token declares 401 with WWW-Authenticate", no_auth),
                       ("every error body is application/problem+json", not_problem)):
        c.check(not bad, label + ("; not: " + "; ".join(bad) if bad else ""))


def reeld_routes(c):
    """The set of (METHOD, PATH) pairs printed by `$REELD --routes`, or None."""
    try:
        binary = h.reeld_binary()
    except h.ReeldError as e:
        c.fail(str(e))
        return None
    try:
        p = subprocess.run([binary, "--routes"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
    except subprocess.TimeoutExpired:
        c.fail("`reeld --routes` finished within 30 s")
        return None
    if not c.eq(p.returncode, 0, "`reeld --routes` exits 0 (stderr: %s)"
                % p.stderr.decode("utf-8", "replace").strip()[-500:]):
        return None
    routes, bad, dups = set(), [], []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[0].isalpha() or not fields[0].isupper() or not fields[1].startswith("/"):
            bad.append(line)
            continue
        pair = (fields[0], fields[1])
        if pair in routes:
            dups.append(line)
        routes.add(pair)
    c.check(not bad, "every `reeld --routes` line is `METHOD /path`" + (
        "; not: " + "; ".join(repr(l) for l in bad) if bad else ""))
    c.check(not dups, "`reeld --routes` lists each route once" + (
        "; repeated: " + "; ".join(dups) if dups else ""))
    c.check(routes, "`reeld --routes` lists some routes")
    return routes


def check_routes(c, doc_pairs, routes):
    only_server = sorted(routes - doc_pairs)
    only_doc = sorted(doc_pairs - routes)
    for method, path in only_server:
        print("  served by reeld but missing from openapi.yaml: %s %s" % (method, path))
    for method, path in only_doc:
        print("  in openapi.yaml but not served by reeld:      %s %s" % (method, path))
    c.check(not only_server, "every route reeld serves is in openapi.yaml (%d missing)" % len(only_server))
    c.check(not only_doc, "every operation in openapi.yaml is served by reeld (%d missing)" % len(only_doc))


def check_served(c):
    with open(OPENAPI, "rb") as f:
        expected = f.read()
    with h.Reeld() as r:
        status, headers, body = r.request("GET", "/openapi.yaml", token=False)
        c.eq(status, 200, "GET /openapi.yaml without a token answers 200")
        c.check(headers.get("content-type", "").startswith("application/yaml"),
                "GET /openapi.yaml is application/yaml (got %r)" % headers.get("content-type"))
        c.check(body == expected, "GET /openapi.yaml serves openapi.yaml byte for byte "
                "(%d bytes served, %d in the repository; rebuild after editing it)" % (len(body), len(expected)))
        c.check(headers.get("x-request-id"), "GET /openapi.yaml carries X-Request-Id")


def body(c):
    doc = None
    if check_tools(c):
        check_lint(c)
        doc = load_document(c)
    doc_pairs = None
    if doc is not None:
        ops = document_operations(doc)
        doc_pairs = set(ops)
        print("  openapi.yaml describes %d operations" % len(doc_pairs))
        check_conventions(c, doc, ops)
    routes = reeld_routes(c)
    if routes is not None and doc_pairs is not None:
        print("  reeld --routes lists %d routes" % len(routes))
        check_routes(c, doc_pairs, routes)
    if routes is not None:
        check_served(c)


if __name__ == "__main__":
    sys.exit(h.run(body))
