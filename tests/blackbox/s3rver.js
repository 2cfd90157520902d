// Starts @20minutes/s3rver (a real S3-protocol server that checks SigV4 header
// and query signatures and expiry) for the tests: node s3rver.js PORT DIR BUCKET.
// Prints "ready" once listening. The package ships no CLI binary, so its
// library is used directly.
const path = require('path');
const S3rver = require(path.join(__dirname, '..', '..', 'tools', 'node_modules', '@20minutes', 's3rver', 'lib', 's3rver'));
const [port, directory, bucket] = process.argv.slice(2);
const server = new S3rver({ port: Number(port), address: '127.0.0.1', directory, silent: true,
  configureBuckets: [{ name: bucket }] });
server.run().then(() => console.log('ready')).catch((e) => { console.error('s3rver failed:', e.message); process.exit(1); });
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
