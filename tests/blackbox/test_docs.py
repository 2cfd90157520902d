"""/docs serves Swagger UI from files installed at build time (no CDN), and
/openapi.yaml serves the repository's document."""
import os
import re

import reelharness as h


def body(c):
    with h.Reeld() as r:
        status, headers, page = r.request("GET", "/docs", token=False)
        c.eq(status, 200, "GET /docs needs no token")
        c.check(headers.get("content-type", "").startswith("text/html"), "/docs is HTML")
        text = page.decode("utf-8")
        refs = re.findall(r'(?:src|href)="([^"]+)"', text)
        c.check(len(refs) >= 3, "/docs references its assets (%r)" % refs)
        c.check(all(ref.startswith("/docs/") for ref in refs), "every asset is local, none from a CDN (%r)" % refs)
        c.check("/openapi.yaml" in text, "/docs renders /openapi.yaml")
        for ref in refs:
            status, headers, data = r.request("GET", ref, token=False)
            c.check(status == 200 and len(data) > 100, "%s is served (%d, %d bytes)" % (ref, status, len(data)))
        status, headers, data = r.request("GET", "/docs/swagger-ui-bundle.js", token=False)
        c.check(b"SwaggerUIBundle" in data, "the bundle is Swagger UI")
        c.eq(headers.get("content-type"), "text/javascript", "the bundle is served as JavaScript")
        status, _, _ = r.request("GET", "/docs/..%2Freel.db", token=False)
        c.eq(status, 404, "only the known asset names are served")
        status, headers, data = r.request("GET", "/openapi.yaml", token=False)
        with open(os.path.join(h.SOURCE_DIR, "openapi.yaml"), "rb") as f:
            c.check(status == 200 and data == f.read(), "/openapi.yaml is the repository's file, byte for byte")


if __name__ == "__main__":
    raise SystemExit(h.run(body))
