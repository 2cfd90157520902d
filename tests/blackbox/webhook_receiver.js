// A webhook receiver for the black-box tests: verifies each delivery with the
// official `standardwebhooks` npm package and answers from a script.
//
//   node webhook_receiver.js SECRET SCRIPT
//
// SCRIPT is a comma-separated list of answers for the 1st, 2nd, ... request
// (the last repeats): a status ("500"), a status with Retry-After
// ("503:retry-after=2"), or "hang" (never answer). Prints "listening PORT"
// first, then one JSON line per request: {n, time_ms, id, timestamp,
// signature, body, verified, error, answer}.
const http = require("http");
const path = require("path");
const { Webhook } = require(path.join(__dirname, "../../tools/node_modules/standardwebhooks"));

const [secret, script] = process.argv.slice(2);
const answers = (script || "200").split(",");
const wh = new Webhook(secret);
let n = 0;

http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const answer = answers[Math.min(n, answers.length - 1)];
    n += 1;
    let verified = false, error = null;
    try {
      wh.verify(body, {
        "webhook-id": req.headers["webhook-id"],
        "webhook-timestamp": req.headers["webhook-timestamp"],
        "webhook-signature": req.headers["webhook-signature"],
      });
      verified = true;
    } catch (e) {
      error = String(e && e.message);
    }
    console.log(JSON.stringify({
      n, time_ms: Date.now(), id: req.headers["webhook-id"], timestamp: req.headers["webhook-timestamp"],
      signature: req.headers["webhook-signature"], content_type: req.headers["content-type"], body, verified,
      error, answer,
    }));
    if (answer === "hang") return; // never answers
    const [status, extra] = answer.split(":");
    const headers = { "Content-Length": "0" };
    if (extra && extra.startsWith("retry-after=")) headers["Retry-After"] = extra.slice("retry-after=".length);
    res.writeHead(Number(status), headers);
    res.end();
  });
}).listen(0, "127.0.0.1", function () {
  console.log("listening " + this.address().port);
});
