// The TLS command-line flags both demos take, named as redis-server names them: `--tls`,
// `--tls-cert FILE`, `--tls-key FILE`, `--tls-ca-cert FILE`. `--tls` alone makes a self-signed
// pair for localhost / 127.0.0.1 in a temporary directory (with `openssl req`, or with
// node:crypto when openssl is not installed) and says where it is.
import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The `parseArgs` options of the TLS flags. */
export const TLS_ARGS = {
  tls: { type: 'boolean', default: false },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca-cert': { type: 'string' },
};

/** The usage lines of the TLS flags. */
export const TLS_USAGE = `  --tls                serve TLS; without --tls-cert/--tls-key, with a self-signed pair for
                       localhost and 127.0.0.1 made in a temporary directory (removed on exit)
  --tls-cert FILE      the server certificate, PEM (leaf first, then intermediates); implies --tls
  --tls-key FILE       its private key, PEM; implies --tls
  --tls-ca-cert FILE   CA certificates, PEM: clients must present a certificate they signed`;

/** The subject alternative names of the generated certificate. */
const SAN = 'DNS:localhost,IP:127.0.0.1';

/**
 * The listener's `tls` options from the parsed flags, or undefined without any TLS flag.
 * Throws an Error whose message names the flag when a flag is wrong or a file unreadable.
 * @param {object} values parsed by `parseArgs` with {@link TLS_ARGS}
 * @param {string[]} [alpn] ALPN protocols to serve
 * @returns {undefined | { tls: { key: string, cert: string, ca?: string, alpn?: string[] },
 *   generated?: { dir: string, certFile: string, keyFile: string, tool: string }, remove(): void }}
 */
export function tlsFromArgs(values, alpn) {
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  const caFile = values['tls-ca-cert'];
  if (!values.tls && certFile === undefined && keyFile === undefined && caFile === undefined) {
    return undefined;
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new Error(
      certFile === undefined ? '--tls-key needs --tls-cert' : '--tls-cert needs --tls-key',
    );
  }
  const tls = {};
  let generated;
  if (caFile !== undefined) tls.ca = readPem(caFile, 'tls-ca-cert');
  if (certFile !== undefined) {
    tls.cert = readPem(certFile, 'tls-cert');
    tls.key = readPem(keyFile, 'tls-key');
  } else {
    generated = selfSigned(); // last: nothing can fail after it
    tls.cert = readFileSync(generated.certFile, 'latin1');
    tls.key = readFileSync(generated.keyFile, 'latin1');
  }
  if (alpn !== undefined) tls.alpn = alpn;
  return {
    tls,
    generated,
    remove() {
      if (generated !== undefined) rmSync(generated.dir, { recursive: true, force: true });
    },
  };
}

/** One line about the generated pair and how to trust it, or undefined for the user's own. */
export function describeGenerated(generated) {
  if (generated === undefined) return undefined;
  let text =
    `TLS: self-signed certificate for localhost and 127.0.0.1 made with ${generated.tool} in ` +
    `${generated.dir} (cert.pem, key.pem; removed on exit)`;
  if (generated.tool !== 'openssl') {
    text +=
      '\nTLS: openssl was not found, so node:crypto made the pair; openssl is needed to make ' +
      'your own (see README.md) and for redis-cli --tls (install the openssl package)';
  }
  return text;
}

function readPem(file, flag) {
  let text;
  try {
    text = readFileSync(file, 'latin1');
  } catch (err) {
    throw new Error(`--${flag}: cannot read ${file}: ${err.code ?? err.message}`);
  }
  if (!text.includes('-----BEGIN ')) throw new Error(`--${flag}: not PEM: ${file}`);
  return text;
}

/** A self-signed P-256 pair, valid 30 days, in a new temporary directory. */
function selfSigned() {
  const dir = mkdtempSync(join(tmpdir(), 'async-engine-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  try {
    // prettier-ignore
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '30',
      '-subj', '/CN=localhost', '-addext', `subjectAltName=${SAN}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { dir, certFile, keyFile, tool: 'openssl' };
  } catch (err) {
    if (err.code !== 'ENOENT') {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`--tls: openssl req failed: ${String(err.stderr ?? err.message).trim()}`);
    }
  }
  const { key, cert } = selfSignedWithCrypto();
  writeFileSync(keyFile, key, { mode: 0o600 });
  writeFileSync(certFile, cert);
  return { dir, certFile, keyFile, tool: 'node:crypto' };
}

// ---- A self-signed certificate without openssl: X.509 v3 in DER, signed with node:crypto ----

function der(tag, ...parts) {
  const body = Buffer.concat(parts);
  const n = body.length;
  let len;
  if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else len = Buffer.from([0x82, n >> 8, n & 0xff]); // certificates here are far below 64 KiB
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...parts) => der(0x30, ...parts);
function oid(text) {
  const [a, b, ...rest] = text.split('.').map(Number);
  const bytes = [40 * a + b];
  for (const n of rest) {
    const groups = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) groups.unshift((v & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return der(0x06, Buffer.from(bytes));
}
/**
 * A DER INTEGER of the unsigned big-endian `buf`, in its one valid form: no leading zero byte
 * unless the next byte's top bit is set (OpenSSL refuses any other form as "illegal padding").
 */
function derInteger(buf) {
  let start = 0;
  while (start < buf.length - 1 && buf[start] === 0) start++;
  const body = buf.subarray(start);
  return der(0x02, body[0] & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body);
}
function utcTime(date) {
  const text = date.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  return der(0x17, Buffer.from(text, 'latin1'));
}
const name = (cn) => seq(der(0x31, seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn)))));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function pem(label, body) {
  const lines = body
    .toString('base64')
    .match(/.{1,64}/g)
    .join('\n');
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

/**
 * A self-signed P-256 certificate for CN=localhost, SAN localhost and 127.0.0.1, 30 days.
 * `serial` (unsigned, big-endian) is 16 random bytes unless given.
 */
export function selfSignedWithCrypto(serial = randomBytes(16)) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const now = Date.now();
  const san = seq(
    der(0x82, Buffer.from('localhost')), // dNSName
    der(0x87, Buffer.from([127, 0, 0, 1])), // iPAddress
  );
  const critical = der(0x01, Buffer.from([0xff]));
  const extensions = seq(
    seq(oid('2.5.29.19'), critical, der(0x04, seq(der(0x01, Buffer.from([0xff]))))), // CA:TRUE
    seq(oid('2.5.29.17'), der(0x04, san)),
  );
  const tbs = seq(
    der(0xa0, derInteger(Buffer.from([2]))), // v3
    derInteger(serial),
    ECDSA_SHA256,
    name('localhost'),
    seq(utcTime(new Date(now - 60_000)), utcTime(new Date(now + 30 * 86_400_000))),
    name('localhost'),
    spki,
    der(0xa3, extensions),
  );
  const signature = sign('sha256', tbs, privateKey);
  const cert = seq(tbs, ECDSA_SHA256, der(0x03, Buffer.from([0]), signature));
  return {
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    cert: pem('CERTIFICATE', cert),
  };
}
