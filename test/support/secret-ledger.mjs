// Test preload: when DOMSEC_SECRET_LEDGER names a directory, every private key this process generates
// is recorded there (a few PEM lines that carry private bytes), so test/run.mjs can grep the whole
// suite's output for them. Admin tokens are recorded by the test support code that makes them.
import { Buffer } from 'node:buffer';
import crypto from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';

const LEDGER = process.env.DOMSEC_SECRET_LEDGER;
const INSTALLED = Symbol.for('domsec.secretLedger');

/** The JWK members that are private, per key type; their bytes mark the private ranges of the DER. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'];
/** A recorded line carries at least this many private bytes: it cannot occur by chance. */
const MIN_PRIVATE_BYTES = 8;
/** Lines recorded per encoding of a key. */
const LINES_PER_ENCODING = 2;

let serial = 0;

/**
 * Appends one record ("<kind> <id> <origin> <secret>") to this process's ledger file: id names the
 * secret (a key has several recorded lines), origin the script that made it.
 */
export function recordSecret(kind, id, secret) {
  if (!LEDGER || typeof secret !== 'string' || secret.length === 0) return;
  const origin = (process.argv[1] ?? '-').replace(/\s/g, '_');
  appendFileSync(
    join(LEDGER, `${process.pid}.txt`),
    `${kind} ${process.pid}.${id} ${origin} ${secret}\n`,
  );
}

/** Byte ranges of the DER that hold private values, found from the key's JWK members. */
function privateRanges(der, jwk) {
  const ranges = [];
  for (const member of PRIVATE_MEMBERS) {
    if (typeof jwk?.[member] !== 'string') continue;
    const value = Buffer.from(jwk[member], 'base64url');
    const start = der.indexOf(value);
    if (start >= 0) ranges.push([start, start + value.length]);
  }
  return ranges;
}

/** The PEM body lines with the most private bytes (all lines' middle if the type has no JWK). */
function privateLines(pem, jwk) {
  const lines = pem.split('\n').filter((line) => line.length > 0 && !line.startsWith('-----'));
  const der = Buffer.from(lines.join(''), 'base64');
  const ranges = privateRanges(der, jwk);
  if (ranges.length === 0) {
    const middle = Math.floor(lines.length / 2);
    return lines.slice(middle, middle + LINES_PER_ENCODING);
  }
  const scored = lines.map((line, index) => {
    const [from, to] = [index * 48, index * 48 + (line.length * 3) / 4];
    const bytes = ranges.reduce(
      (sum, [start, end]) => sum + Math.max(0, Math.min(to, end) - Math.max(from, start)),
      0,
    );
    return { line, bytes };
  });
  return scored
    .filter((entry) => entry.bytes >= MIN_PRIVATE_BYTES)
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, LINES_PER_ENCODING)
    .map((entry) => entry.line);
}

/** Records a generated private key in whatever form the caller asked for. */
function recordPrivateKey(privateKey, options) {
  if (!LEDGER || privateKey === undefined) return;
  try {
    const encoding = options?.privateKeyEncoding;
    let key;
    if (privateKey instanceof crypto.KeyObject) key = privateKey;
    else if (Buffer.isBuffer(privateKey))
      key = crypto.createPrivateKey({
        key: privateKey,
        format: 'der',
        type: encoding?.type,
        passphrase: encoding?.passphrase,
      });
    else key = crypto.createPrivateKey({ key: privateKey, passphrase: encoding?.passphrase });
    let jwk;
    try {
      jwk = key.export({ format: 'jwk' });
    } catch {
      jwk = undefined; // dsa, dh: the middle lines serve
    }
    const encodings = [{ type: 'pkcs8', format: 'pem' }];
    if (key.asymmetricKeyType === 'rsa') encodings.push({ type: 'pkcs1', format: 'pem' });
    if (key.asymmetricKeyType === 'ec') encodings.push({ type: 'sec1', format: 'pem' });
    const id = `k${(serial += 1)}`;
    const lines = new Set(encodings.flatMap((form) => privateLines(key.export(form), jwk)));
    // The form the caller holds, if PEM and different (an encrypted key prints its own lines).
    if (typeof privateKey === 'string' && encoding?.cipher !== undefined) {
      for (const line of privateLines(privateKey, undefined)) lines.add(line);
    }
    for (const line of lines) recordSecret(`${key.asymmetricKeyType}-key`, id, line);
  } catch (error) {
    recordSecret('unrecorded-key', 'k0', `(${error?.message ?? error})`.replace(/\s/g, '_'));
  }
}

function install() {
  if (!LEDGER || globalThis[INSTALLED]) return;
  globalThis[INSTALLED] = true;
  const originalSync = crypto.generateKeyPairSync;
  const original = crypto.generateKeyPair;

  function generateKeyPairSync(type, options) {
    const pair = originalSync(type, options);
    recordPrivateKey(pair.privateKey, options);
    return pair;
  }

  function generateKeyPair(type, options, callback) {
    if (typeof options === 'function') [options, callback] = [undefined, options];
    if (typeof callback !== 'function') return original(type, options, callback); // its own error
    return original(type, options, (error, publicKey, privateKey) => {
      if (!error) recordPrivateKey(privateKey, options);
      callback(error, publicKey, privateKey);
    });
  }
  // promisify(generateKeyPair) resolves { publicKey, privateKey }, as with the original.
  Object.defineProperty(generateKeyPair, promisify.custom, {
    value: (type, options) =>
      new Promise((resolve, reject) =>
        generateKeyPair(type, options, (error, publicKey, privateKey) =>
          error ? reject(error) : resolve({ publicKey, privateKey }),
        ),
      ),
  });

  crypto.generateKeyPairSync = generateKeyPairSync;
  crypto.generateKeyPair = generateKeyPair;
  syncBuiltinESMExports();
}

install();
