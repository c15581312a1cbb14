// Test-only S3 server: node --openssl-legacy-provider s3rver.js PORT DATA_DIR [BUCKET...]
// (PORT 0 = pick one; the flag lets s3rver's DES continuation tokens work on OpenSSL 3).
// Listens on 127.0.0.1, creates the buckets, prints "listening on PORT" and runs until killed.
const S3rver = require('@20minutes/s3rver');
const [port, dir, ...buckets] = process.argv.slice(2);
new S3rver({ address: '127.0.0.1', port: Number(port), directory: dir, silent: true,
             configureBuckets: buckets.map((name) => ({ name })) })
  .run().then((a) => console.log(`listening on ${a.port}`), (e) => { console.error(e); process.exit(1); });
