// `npm run smtp-sink`: runs the SMTP sink until SIGINT/SIGTERM.
// Try it with `swaks --server 127.0.0.1 --port 2525 --to you@example.org`; with
// `--maildir DIR`, each message is kept as DIR/<id>.eml (see README.md, "SMTP sink").
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { createEngine } from 'async-engine';
import {
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_SIZE,
  MAX_EARLY_COMMANDS,
  startSmtpSink,
} from './server.js';

const USAGE = `usage: node examples/smtp-sink/main.js [options]
  --impl auto|completion|readiness|poll|threadpool   engine implementation (default auto)
  --host HOST            address to bind (default 127.0.0.1)
  --port PORT            TCP port (default 2525; 0 picks one)
  --hostname NAME        the name in the greeting and the EHLO reply (default: this host's)
  --max-size BYTES       largest message accepted, as sent (default ${DEFAULT_MAX_SIZE})
  --maildir DIR          write each message to DIR/<id>.eml (made if missing); without it,
                         messages are counted and summed up on stdout, one line each
  --idle-timeout SECS    a client silent this long gets 421 and is closed (default
                         ${DEFAULT_IDLE_TIMEOUT}; 0: never)
  --max-early N          commands before HELO/EHLO answered 500, then 421 (default ${MAX_EARLY_COMMANDS})
  --stats                print one line per closed connection: its end, the command lines
                         its JavaScript read, its messages
  -h, --help`;

function integer(text, name, min) {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < min) {
    throw new Error(`--${name}: not an integer >= ${min}: ${text}`);
  }
  return Number(text);
}

let values;
let options;
try {
  ({ values } = parseArgs({
    options: {
      impl: { type: 'string', default: 'auto' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '2525' },
      hostname: { type: 'string' },
      'max-size': { type: 'string', default: String(DEFAULT_MAX_SIZE) },
      maildir: { type: 'string' },
      'idle-timeout': { type: 'string', default: String(DEFAULT_IDLE_TIMEOUT) },
      'max-early': { type: 'string', default: String(MAX_EARLY_COMMANDS) },
      stats: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const port = integer(values.port, 'port', 0);
  if (port > 65535) throw new Error(`--port: not a port: ${values.port}`);
  options = {
    host: values.host,
    port,
    hostname: values.hostname,
    maxSize: integer(values['max-size'], 'max-size', 1),
    idleTimeout: integer(values['idle-timeout'], 'idle-timeout', 0),
    maxEarlyCommands: integer(values['max-early'], 'max-early', 0),
    maildir: values.maildir,
  };
  if (options.maildir !== undefined) fs.mkdirSync(options.maildir, { recursive: true });
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}

let engine;
try {
  engine = createEngine({ impl: values.impl });
} catch (err) {
  console.error(`cannot start the engine: ${err.message}`);
  process.exit(1);
}

/** An address as the client sent it (bytes kept as latin1), shown as UTF-8. */
const shown = (text) => Buffer.from(text, 'latin1').toString('utf8');

let server;
try {
  server = startSmtpSink({
    engine,
    ...options,
    onMessage({ id, from, recipients, size, file }) {
      const to = recipients.map(shown).join(',');
      const where = file === undefined ? '' : ` file=${file}`;
      console.log(`message ${id}: from=<${shown(from)}> to=${to} size=${size}${where}`);
    },
    onSessionEnd: values.stats
      ? (s) =>
          console.log(
            `stats session=${s.id} end=${JSON.stringify(s.endReason)} ` +
              `lineCallbacks=${s.lineCallbacks} messages=${s.messages}`,
          )
      : undefined,
  });
} catch (err) {
  console.error(`cannot listen on ${values.host}:${values.port}: ${err.code ?? ''} ${err.message}`);
  await engine.shutdown();
  process.exit(1);
}

const { address, port } = server.address;
const where = server.address.family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`;
const keeping = options.maildir === undefined ? 'counting messages' : `maildir ${options.maildir}`;
console.log(`async-engine smtp-sink: impl=${engine.impl} listening on ${where} (${keeping})`);

let stopping = false;
async function stop(signal) {
  if (stopping) {
    console.error(`${signal} again: exiting now`);
    process.exit(1);
  }
  stopping = true;
  console.log(`${signal}: shutting down`);
  server.close();
  await engine.shutdown();
  const { sessions, messages, refused } = server.stats;
  console.log(
    `${messages} messages kept, ${refused} refused as too large, in ${sessions} sessions`,
  );
  console.log('bye');
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
