#!/usr/bin/env node
// Prints one V4 signed URL made by the official Google Cloud Storage SDK
// (@google-cloud/storage, pinned in tools/package.json), offline and at a
// fixed time, for test_gcs_nodejs.py to compare with reel's.
//
//   node gcs_signed_url.js --key FILE --bucket B --object O --method GET|PUT|POST
//                          --time UNIX --expires SECONDS [--content-type T] [--endpoint URL]
//
// GET is action 'read', PUT is 'write', POST is 'resumable' (x-goog-resumable: start).
//
// Fixed time: the SDK reads the clock through `new Date()` and `Date.now()`
// (the signing time and its "expires is in the past" check), so the global
// Date is replaced by one frozen at --time before the SDK is loaded; the
// signing time is also passed as `accessibleAt`.
// Offline: with a service-account key the SDK signs locally (google-auth-library's
// JWT client, node:crypto). Every way out to the network is replaced by a stub
// that records the attempt, and the script fails if one was made.
'use strict';

const path = require('path');
const fs = require('fs');

function usage(msg) {
  process.stderr.write(`gcs_signed_url.js: ${msg}\n`);
  process.exit(2);
}

const opts = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const flag = argv[i];
  if (!flag.startsWith('--') || i + 1 >= argv.length) usage(`bad argument ${flag}`);
  opts[flag.slice(2)] = argv[i + 1];
}
for (const required of ['key', 'bucket', 'object', 'method', 'time', 'expires']) {
  if (opts[required] === undefined) usage(`--${required} is required`);
}
const fixedMs = Number(opts.time) * 1000;
const expiresS = Number(opts.expires);
if (!Number.isSafeInteger(fixedMs) || !Number.isSafeInteger(expiresS)) usage('--time and --expires take whole seconds');
const action = {GET: 'read', PUT: 'write', POST: 'resumable'}[opts.method];
if (!action) usage('--method must be GET, PUT or POST');

// ---- freeze the clock ----------------------------------------------------
const RealDate = Date;
class FrozenDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(fixedMs);
    else super(...args);
  }
  static now() {
    return fixedMs;
  }
}
global.Date = FrozenDate;

// ---- forbid the network ----------------------------------------------------
const networkAttempts = [];
function forbid(moduleName, fnName) {
  const mod = require(moduleName);
  mod[fnName] = function () {
    networkAttempts.push(`${moduleName}.${fnName}`);
    throw new Error(`network access attempted (${moduleName}.${fnName}) in an offline test`);
  };
}
for (const [m, f] of [['net', 'connect'], ['net', 'createConnection'], ['tls', 'connect'],
                      ['http', 'request'], ['http', 'get'], ['https', 'request'], ['https', 'get'],
                      ['dns', 'lookup'], ['dns', 'resolve']]) {
  forbid(m, f);
}
if (typeof globalThis.fetch === 'function') {
  globalThis.fetch = async () => {
    networkAttempts.push('fetch');
    throw new Error('network access attempted (fetch) in an offline test');
  };
}
// The SDK would read these from the environment; the test decides instead.
for (const name of ['STORAGE_EMULATOR_HOST', 'GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_CLOUD_PROJECT',
                    'GCLOUD_PROJECT', 'GOOGLE_CLOUD_UNIVERSE_DOMAIN']) {
  delete process.env[name];
}

// ---- sign ----------------------------------------------------------------
let Storage;
try {
  ({Storage} = require(path.join(__dirname, '..', '..', 'tools', 'node_modules', '@google-cloud', 'storage')));
} catch (e) {
  process.stderr.write(`gcs_signed_url.js: cannot load @google-cloud/storage (${e.code || e.message}); ` +
                       'run scripts/install-deps.sh --test (npm ci in tools/)\n');
  process.exit(3);
}

const key = JSON.parse(fs.readFileSync(opts.key, 'utf8'));
const storageOptions = {
  projectId: key.project_id || 'offline-test',
  credentials: {client_email: key.client_email, private_key: key.private_key},
};
if (opts.endpoint) storageOptions.apiEndpoint = opts.endpoint;
const storage = new Storage(storageOptions);

const config = {
  version: 'v4',
  action,
  accessibleAt: new Date(fixedMs),
  expires: fixedMs + expiresS * 1000,
};
if (opts['content-type'] !== undefined) config.contentType = opts['content-type'];

storage.bucket(opts.bucket).file(opts.object).getSignedUrl(config).then(
  ([url]) => {
    if (networkAttempts.length) {
      process.stderr.write(`gcs_signed_url.js: network was attempted: ${networkAttempts.join(', ')}\n`);
      process.exit(4);
    }
    process.stdout.write(url + '\n');
  },
  err => {
    // Messages from the signer carry no key material; keep it short anyway.
    process.stderr.write(`gcs_signed_url.js: getSignedUrl failed: ${String(err && err.message).slice(0, 300)}\n`);
    process.exit(1);
  });
