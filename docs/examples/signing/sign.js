// Sign a paygate merchant request with Node.js's built-in crypto module only.
//
// Environment: PAYGATE_MERCHANT, PAYGATE_ALGORITHM (hmac-sha256 | rsa-sha256 | ed25519;
// default hmac-sha256), PAYGATE_SECRET (hmac) or PAYGATE_PRIVATE_KEY (path of a PEM private
// key), PAYGATE_METHOD, PAYGATE_URI (path plus "?" and the query, exactly as sent),
// PAYGATE_BODY_FILE (optional), PAYGATE_TIMESTAMP and PAYGATE_NONCE (optional).
// Prints the four X-Paygate-* headers, one "Name: value" per line.
'use strict';
const crypto = require('crypto');
const fs = require('fs');

function canonical(method, uri, ts, nonce, body) {
  // Five lines, each ending in "\n"; the body as raw bytes.
  return Buffer.concat([Buffer.from(`${method}\n${uri}\n${ts}\n${nonce}\n`), body, Buffer.from('\n')]);
}

function sign(algorithm, message, env) {
  switch (algorithm) {
    case 'hmac-sha256':
      return crypto.createHmac('sha256', env.PAYGATE_SECRET).update(message).digest('base64');
    case 'rsa-sha256': // RSASSA-PKCS1-v1_5 over SHA-256
      return crypto.sign('sha256', message, fs.readFileSync(env.PAYGATE_PRIVATE_KEY)).toString('base64');
    case 'ed25519':
      return crypto.sign(null, message, fs.readFileSync(env.PAYGATE_PRIVATE_KEY)).toString('base64');
  }
  throw new Error(`unknown algorithm ${algorithm}`);
}

const env = process.env;
const body = env.PAYGATE_BODY_FILE ? fs.readFileSync(env.PAYGATE_BODY_FILE) : Buffer.alloc(0);
const ts = env.PAYGATE_TIMESTAMP || String(Math.floor(Date.now() / 1000));
const nonce = env.PAYGATE_NONCE || crypto.randomBytes(16).toString('hex');
const msg = canonical(env.PAYGATE_METHOD, env.PAYGATE_URI, ts, nonce, body);
console.log(`X-Paygate-Merchant: ${env.PAYGATE_MERCHANT}`);
console.log(`X-Paygate-Timestamp: ${ts}`);
console.log(`X-Paygate-Nonce: ${nonce}`);
console.log(`X-Paygate-Signature: ${sign(env.PAYGATE_ALGORITHM || 'hmac-sha256', msg, env)}`);
