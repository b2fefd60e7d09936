// Certificates for TLS tests, made once per process with the openssl CLI into a temporary
// directory: a self-signed localhost pair, a CA with a leaf it signed, a leaf for another name
// and an expired leaf.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyPair {
  key: string;
  cert: string;
}

export interface TestCerts {
  /** Self-signed, CN=localhost, SAN DNS:localhost, IP:127.0.0.1. */
  self: KeyPair;
  /** A CA (self-signed) and a leaf for localhost / 127.0.0.1 it signed. */
  ca: string;
  leaf: KeyPair;
  /** Signed by the CA, for example.com only. */
  otherName: KeyPair;
  /** Signed by the CA, for localhost, expired (not after a date in the past). */
  expired: KeyPair;
}

let made: TestCerts | undefined;

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

// A leaf the CA signs, through `openssl ca`, which takes explicit validity dates (OpenSSL 3.0's
// x509 command has only -days): `dates` is [startdate, enddate] or none (30 days from now).
function leafSignedBy(dir: string, name: string, san: string, dates?: [string, string]): KeyPair {
  openssl(dir, [
    'req',
    ...EC,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    '/CN=' + name,
  ]);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
  const validity = dates ? ['-startdate', dates[0], '-enddate', dates[1]] : ['-days', '30'];
  openssl(dir, [
    'ca',
    '-batch',
    '-notext',
    '-config',
    'ca.cnf',
    '-cert',
    'ca.crt',
    '-keyfile',
    'ca.key',
    '-in',
    `${name}.csr`,
    '-out',
    `${name}.crt`,
    '-extfile',
    `${name}.ext`,
    ...validity,
  ]);
  return {
    key: readFileSync(join(dir, `${name}.key`), 'latin1'),
    cert: readFileSync(join(dir, `${name}.crt`), 'latin1'),
  };
}

/** The test certificates (made on first use, then cached for the process). */
export function testCerts(): TestCerts {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), 'ae-tls-'));
  try {
    const san = 'subjectAltName=DNS:localhost,IP:127.0.0.1';
    openssl(dir, [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      'self.key',
      '-out',
      'self.crt',
      '-days',
      '30',
      '-subj',
      '/CN=localhost',
      '-addext',
      san,
    ]);
    openssl(dir, [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '30',
      '-subj',
      '/CN=Test CA',
    ]);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '01\n');
    writeFileSync(
      join(dir, 'ca.cnf'),
      '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n' +
        'default_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n',
    );
    const read = (f: string): string => readFileSync(join(dir, f), 'latin1');
    made = {
      self: { key: read('self.key'), cert: read('self.crt') },
      ca: read('ca.crt'),
      leaf: leafSignedBy(dir, 'localhost', 'DNS:localhost,IP:127.0.0.1'),
      otherName: leafSignedBy(dir, 'example.com', 'DNS:example.com'),
      expired: leafSignedBy(dir, 'expired', 'DNS:localhost,IP:127.0.0.1', [
        '20200101000000Z',
        '20200201000000Z',
      ]),
    };
    return made;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface ExtraCerts {
  /** A CA ("SNI Test CA") and what it signed: example.test, *.wild.test, and a client leaf. */
  sniCa: string;
  example: KeyPair;
  wild: KeyPair;
  client: KeyPair;
  /** Another CA ("Other CA") and a client leaf it signed. */
  otherCa: string;
  otherClient: KeyPair;
}

let extra: ExtraCerts | undefined;

// A CA in `dir` (ca.key, ca.crt, and what `openssl ca` needs), as testCerts makes its own.
function caIn(dir: string, cn: string): string {
  openssl(dir, [
    'req',
    '-x509',
    ...EC,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '30',
    '-subj',
    '/CN=' + cn,
  ]);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '01\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n' +
      'default_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n',
  );
  return readFileSync(join(dir, 'ca.crt'), 'latin1');
}

/**
 * Certificates for SNI and mutual TLS (made on first use, then cached for the process): two CAs,
 * leaves for example.test and *.wild.test, and a client leaf from each CA.
 */
export function extraCerts(): ExtraCerts {
  if (extra) return extra;
  const a = mkdtempSync(join(tmpdir(), 'ae-tls-a-'));
  const b = mkdtempSync(join(tmpdir(), 'ae-tls-b-'));
  try {
    const sniCa = caIn(a, 'SNI Test CA');
    const otherCa = caIn(b, 'Other CA');
    extra = {
      sniCa,
      example: leafSignedBy(a, 'example.test', 'DNS:example.test'),
      wild: leafSignedBy(a, 'wild', 'DNS:*.wild.test'),
      client: leafSignedBy(a, 'client', 'DNS:client.test'),
      otherCa,
      otherClient: leafSignedBy(b, 'other-client', 'DNS:client.test'),
    };
    return extra;
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
}
