// An SSE client for the black-box tests: the WHATWG-conformant `eventsource`
// npm package (v4), with the bearer token added through its fetch option.
//
//   node sse_client.js URL TOKEN [LAST_EVENT_ID] [STOP_AFTER]
//
// Prints one JSON line per event {id, type, data} (data parsed), "open" when
// connected, and "closed" when the server ended the stream (eventsource
// would reconnect: we close instead) or an error occurred. With STOP_AFTER
// it exits after that many events (a client that drops mid-stream).
const path = require("path");
const { EventSource } = require(path.join(__dirname, "../../tools/node_modules/eventsource"));

const [url, token, lastId, stopAfter] = process.argv.slice(2);
let seen = 0;
const es = new EventSource(url, {
  fetch: (input, init) =>
    fetch(input, {
      ...init,
      headers: { ...(init && init.headers), Authorization: "Bearer " + token,
                 ...(lastId ? { "Last-Event-ID": lastId } : {}) },
    }),
});
const types = ["job.created", "job.started", "job.progress", "job.log", "job.retrying", "job.finished",
               "job.failed", "job.canceled"];
for (const t of types) {
  es.addEventListener(t, (e) => {
    console.log(JSON.stringify({ id: e.lastEventId, type: e.type, data: JSON.parse(e.data) }));
    seen += 1;
    if (stopAfter && seen >= Number(stopAfter)) {
      es.close();
      process.exit(0);
    }
  });
}
es.onopen = () => console.log("open");
es.onerror = () => {
  console.log("closed");
  es.close();
  process.exit(0);
};
