// A self-signed certificate for the TLS cases, made with openssl in a temporary directory
// when a case starts (never checked in): EC P-256, CN=localhost, subjectAltName localhost and
// 127.0.0.1, valid for two days. The same key type as the tests' certificates.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Makes a key and certificate. Returns their paths and PEM text, and `remove()`, which deletes
 * the directory. Throws when openssl is missing or fails.
 * @returns {{ dir: string, keyFile: string, certFile: string, key: string, cert: string,
 *   remove(): void }}
 */
export function makeCertPair() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'async-engine-bench-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        'key.pem',
        '-out',
        'cert.pem',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { cwd: dir, stdio: 'pipe' },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`openssl could not make a certificate: ${err.stderr ?? err.message}`);
  }
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  return {
    dir,
    keyFile,
    certFile,
    key: readFileSync(keyFile, 'utf8'),
    cert: readFileSync(certFile, 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
