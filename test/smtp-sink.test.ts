// The SMTP sink example (examples/smtp-sink) as a child process on every available impl, with
// swaks as the real client and a node:net client for what swaks cannot send: commands before
// HELO (answered by the engine's pre-registered reply, never by the example's JavaScript),
// pipelined commands, messages over --max-size, over-long lines, silent clients.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { implsUnderTest, waitUntil } from './helpers/harness.js';

const SWAKS = '/usr/bin/swaks';
const MAIN_JS = fileURLToPath(new URL('../../examples/smtp-sink/main.js', import.meta.url));
const MAX_SIZE = 4000;

/** The example running as a child, with its maildir. */
interface Sink {
  port: number;
  maildir: string;
  output(): string;
  /** SIGTERM; resolves with the exit code once the process is gone (SIGKILL after 15 s). */
  stop(): Promise<number | null>;
}

async function startSink(impl: string, extra: string[]): Promise<Sink> {
  const maildir = fs.mkdtempSync(path.join(os.tmpdir(), 'ae-smtp-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [MAIN_JS, '--impl', impl, '--port', '0', '--maildir', maildir, '--stats', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (text += d));
  const gone = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await gone;
    clearTimeout(timer);
    fs.rmSync(maildir, { recursive: true, force: true });
    return code;
  };
  const banner = /listening on 127\.0\.0\.1:(\d+)/;
  // A deadline for a process that never starts; generous, as many start at once (and slowly in
  // the sanitizer lane).
  if (!(await waitUntil(() => banner.test(text) || child.exitCode !== null, 60_000))) {
    await stop();
    throw new Error(`no banner: ${text}`);
  }
  const m = banner.exec(text);
  if (m === null) {
    await stop();
    throw new Error(`the example exited: ${text}`);
  }
  return { port: Number(m[1]), maildir, output: () => text, stop };
}

/** Runs fn against a fresh sink; the sink must then shut down cleanly on SIGTERM (exit 0). */
async function withSink(
  t: ExecutionContext,
  impl: string,
  extra: string[],
  fn: (sink: Sink) => Promise<void>,
): Promise<void> {
  const sink = await startSink(impl, extra);
  let code: number | null;
  try {
    await fn(sink);
  } finally {
    code = await sink.stop();
  }
  t.is(code, 0, `exit code after SIGTERM; output:\n${sink.output()}`);
  t.regex(sink.output(), /SIGTERM: shutting down\n(?:.*\n)*?\d+ messages kept, .*\nbye\n$/);
}

/** Fails the test when swaks is missing: it is the real client these tests are about. */
function haveSwaks(t: ExecutionContext): boolean {
  if (fs.existsSync(SWAKS)) return true;
  t.fail(`${SWAKS} not found: install swaks (apt-get install swaks; .ci/run does)`);
  return false;
}

/** Runs swaks against the sink; resolves with its exit code and transcript. */
function swaks(port: number, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      SWAKS,
      ['--server', '127.0.0.1', '--port', String(port), '--timeout', '30', ...args],
      { timeout: 60_000, encoding: 'latin1' },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(err);
        const code = err ? Number((err as { code?: unknown }).code ?? 1) : 0;
        resolve({ code, out: stdout + stderr });
      },
    );
  });
}

/** The stored messages of a maildir, by file name. */
function stored(maildir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of fs.readdirSync(maildir).sort()) {
    out.set(name, fs.readFileSync(path.join(maildir, name)));
  }
  return out;
}

/** A raw SMTP client: sends bytes, hands out whole replies (multi-line ones joined by \n). */
class SmtpClient {
  private buf = '';
  private readonly replies: string[] = [];
  private lines: string[] = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      let eol: number;
      while ((eol = this.buf.indexOf('\r\n')) >= 0) {
        const line = this.buf.slice(0, eol);
        this.buf = this.buf.slice(eol + 2);
        this.lines.push(line);
        if (!/^\d{3}-/.test(line)) {
          this.replies.push(this.lines.join('\n'));
          this.lines = [];
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => (this.closed = true));
  }

  static connect(port: number): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.removeListener('error', reject);
        resolve(new SmtpClient(socket));
      });
      socket.once('error', reject);
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** The next reply, within ms. */
  async reply(ms = 30_000): Promise<string> {
    if (!(await waitUntil(() => this.replies.length > 0 || this.closed, ms))) {
      throw new Error(`no reply within ${ms} ms (pending: ${JSON.stringify(this.buf)})`);
    }
    const r = this.replies.shift();
    if (r === undefined)
      throw new Error(`closed without a reply (pending: ${JSON.stringify(this.buf)})`);
    return r;
  }

  /** Sends, then collects `count` replies. */
  async exchange(data: string | Buffer, count = 1): Promise<string[]> {
    this.send(data);
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(await this.reply());
    return out;
  }

  /** Resolves true once the server has closed the connection (within ms). */
  async closedByServer(ms = 30_000): Promise<boolean> {
    return waitUntil(() => this.closed, ms);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

async function greeted(port: number): Promise<SmtpClient> {
  const c = await SmtpClient.connect(port);
  const greeting = await c.reply();
  if (!/^220 \S+ ESMTP async-engine smtp-sink$/.test(greeting)) {
    c.destroy();
    throw new Error(`unexpected greeting: ${greeting}`);
  }
  return c;
}

const statsLine = (session: number) => new RegExp(`^stats session=${session} .*$`, 'm');

const QUEUED = /^250 2\.0\.0 Ok: queued as ([A-Z0-9]+)$/;

for (const impl of implsUnderTest()) {
  test(`[${impl}] swaks: a message with a dot line and 8-bit bytes is kept byte for byte, for several recipients`, async (t) => {
    if (!haveSwaks(t)) return;
    await withSink(t, impl, ['--max-size', String(MAX_SIZE)], async (sink) => {
      const body = Buffer.concat([
        Buffer.from('Subject: dots and bytes\r\nX-Eight: caf\xc3\xa9 \xff\x80\r\n\r\n', 'latin1'),
        Buffer.from('hello\r\n.a line starting with a dot\r\n..two dots\r\n.\r\n', 'latin1'),
        Buffer.from('8-bit: \xe2\x82\xac \x00\x01\xfe\r\nlast line', 'latin1'),
      ]);
      const file = path.join(sink.maildir, '..', `${path.basename(sink.maildir)}.data`);
      fs.writeFileSync(file, body);
      try {
        const { code, out } = await swaks(sink.port, [
          '--from',
          'sender@example.org',
          '--to',
          'one@example.org,two@example.net,three@example.com',
          '--helo',
          'client.example',
          '--data',
          `@${file}`,
        ]);
        t.is(code, 0, out);
        const id = /queued as ([A-Z0-9]+)/.exec(out)?.[1];
        t.truthy(id, out);
        // swaks sends the data, a CRLF and the dot line: the message ends with that CRLF.
        const expected = Buffer.concat([
          Buffer.from(
            'Return-Path: <sender@example.org>\r\nX-Rcpt-To: <one@example.org>\r\n' +
              'X-Rcpt-To: <two@example.net>\r\nX-Rcpt-To: <three@example.com>\r\n',
          ),
          body,
          Buffer.from('\r\n'),
        ]);
        const files = stored(sink.maildir);
        t.deepEqual([...files.keys()], [`${id}.eml`]);
        t.deepEqual(files.get(`${id}.eml`), expected);
        t.regex(
          sink.output(),
          new RegExp(
            `^message ${id}: from=<sender@example.org> ` +
              `to=one@example.org,two@example.net,three@example.com size=${body.length + 2} `,
            'm',
          ),
        );
      } finally {
        fs.rmSync(file, { force: true });
      }
    });
  });

  test(`[${impl}] swaks --pipeline: MAIL, RCPT and DATA sent together are answered in order`, async (t) => {
    if (!haveSwaks(t)) return;
    await withSink(t, impl, [], async (sink) => {
      const { code, out } = await swaks(sink.port, [
        '--pipeline',
        '--from',
        'p@example.org',
        '--to',
        'a@example.org,b@example.org',
        '--body',
        'pipelined',
      ]);
      t.is(code, 0, out);
      // swaks prints the three commands, then the three replies.
      t.regex(
        out,
        / -> MAIL FROM:<p@example\.org>\n -> RCPT TO:<a@example\.org>\n -> RCPT TO:<b@example\.org>\n -> DATA\n<- {2}250 2\.1\.0 Ok\n<- {2}250 2\.1\.5 Ok\n<- {2}250 2\.1\.5 Ok\n<- {2}354 /,
      );
      t.regex(out, /<- {2}250 2\.0\.0 Ok: queued as [A-Z0-9]+\n/);
      t.is(stored(sink.maildir).size, 1);

      // The same by hand: every command of one packet, answered in order.
      const c = await greeted(sink.port);
      const replies = await c.exchange(
        'EHLO raw\r\nMAIL FROM:<> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<x@example.org>\r\nNOOP\r\n' +
          'VRFY someone\r\nHELP\r\nRSET\r\nRCPT TO:<y@example.org>\r\nDATA\r\nFROB\r\n' +
          'MAIL FROM:<q@example.org>\r\nMAIL FROM:<r@example.org>\r\nRCPT TO:<>\r\nQUIT\r\n',
        14,
      );
      t.regex(
        replies[0]!,
        /^250-\S+\n250-PIPELINING\n250-SIZE 10240000\n250-8BITMIME\n(250-.*\n)*250 \S+$/,
      );
      t.deepEqual(
        replies.slice(1).map((r) => r.slice(0, 3)),
        ['250', '250', '250', '252', '214', '250', '503', '503', '502', '250', '503', '501', '221'],
      );
      t.is(replies[7], '503 5.5.1 Bad sequence of commands');
      t.is(replies[9], '502 5.5.2 Command not recognized');
      t.true(await c.closedByServer());
    });
  });

  test(`[${impl}] a message over --max-size gets 552 with its whole body dropped, and the session goes on`, async (t) => {
    await withSink(t, impl, ['--max-size', String(MAX_SIZE)], async (sink) => {
      const c = await greeted(sink.port);
      t.regex((await c.exchange('EHLO raw\r\n'))[0]!, new RegExp(`\n250-SIZE ${MAX_SIZE}\n`));
      // SIZE= announced over the limit: refused at MAIL.
      t.deepEqual(await c.exchange(`MAIL FROM:<a@example.org> SIZE=${MAX_SIZE + 1}\r\n`), [
        '552 5.3.4 Message size exceeds fixed limit',
      ]);
      // A body far over the limit, in many lines, with dot-stuffed lines and lines that look
      // like commands: the sink drops it all and answers 552 once.
      let big = '';
      for (let i = 0; big.length < 50 * MAX_SIZE; i++) {
        big += i % 7 === 0 ? `..stuffed ${i}\r\n` : `line ${i} ${'x'.repeat(i % 300)}\r\n`;
        if (i % 1000 === 0) big += 'MAIL FROM:<inside@example.org>\r\n';
      }
      // One starting with a long dot-stuffed line (longer than the limit, no CRLF for a while).
      const dotted = `..${'d'.repeat(3 * MAX_SIZE)}\r\nmore\r\n`;
      for (const body of [big, dotted]) {
        t.deepEqual(
          await c.exchange('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n', 3),
          ['250 2.1.0 Ok', '250 2.1.5 Ok', '354 End data with <CR><LF>.<CR><LF>'],
        );
        t.deepEqual(await c.exchange(`${body}.\r\n`), [
          '552 5.3.4 Message size exceeds fixed limit',
        ]);
        // The transaction is over: RCPT needs a MAIL first.
        t.deepEqual(await c.exchange('RCPT TO:<b@example.org>\r\n'), [
          '503 5.5.1 Bad sequence of commands',
        ]);
      }
      // Then a message that fits, on the same connection, and an empty one.
      const fits = 'Subject: fits\r\n\r\n..dot\r\n';
      const replies = await c.exchange(
        `MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n${fits}.\r\n` +
          'MAIL FROM:<e@example.org>\r\nRCPT TO:<f@example.org>\r\nDATA\r\n.\r\nQUIT\r\n',
        9,
      );
      t.deepEqual(
        replies.map((r) => r.slice(0, 3)),
        ['250', '250', '354', '250', '250', '250', '354', '250', '221'],
      );
      const first = QUEUED.exec(replies[3]!)?.[1];
      const second = QUEUED.exec(replies[7]!)?.[1];
      const files = stored(sink.maildir);
      t.is(files.size, 2);
      t.is(
        files.get(`${first}.eml`)?.toString('latin1'),
        'Return-Path: <a@example.org>\r\nX-Rcpt-To: <b@example.org>\r\nSubject: fits\r\n\r\n.dot\r\n',
      );
      t.is(
        files.get(`${second}.eml`)?.toString('latin1'),
        'Return-Path: <e@example.org>\r\nX-Rcpt-To: <f@example.org>\r\n',
      );
      t.true(await c.closedByServer());
      await waitUntil(() => statsLine(1).test(sink.output()));
      t.regex(sink.output(), /^stats session=1 end="quit" .* messages=2$/m);
    });
  });

  test(`[${impl}] --max-size is exact, and a message ending just past it leaves the session in step`, async (t) => {
    await withSink(t, impl, ['--max-size', String(MAX_SIZE)], async (sink) => {
      const c = await greeted(sink.port);
      t.regex((await c.exchange('EHLO raw\r\n'))[0]!, /^250-/);
      // A message of n bytes as sent ends with the CRLF before the dot line. Around the limit,
      // and with the terminator starting just past the bytes the first read may take, so that
      // dropping the oversized part must keep the terminator whole.
      for (let n = MAX_SIZE - 1; n <= MAX_SIZE + 8; n++) {
        const replies = await c.exchange(
          `MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n${'x'.repeat(n - 2)}\r\n.\r\nNOOP\r\n`,
          5,
        );
        t.deepEqual(replies.slice(0, 3), [
          '250 2.1.0 Ok',
          '250 2.1.5 Ok',
          '354 End data with <CR><LF>.<CR><LF>',
        ]);
        if (n <= MAX_SIZE) t.regex(replies[3]!, QUEUED, `${n} bytes`);
        else t.is(replies[3], '552 5.3.4 Message size exceeds fixed limit', `${n} bytes`);
        t.is(replies[4], '250 2.0.0 Ok');
      }
      const files = [...stored(sink.maildir).values()];
      t.deepEqual(
        files.map((f) => f.length).sort(),
        [MAX_SIZE - 1, MAX_SIZE].map(
          (n) => n + 'Return-Path: <a@example.org>\r\nX-Rcpt-To: <b@example.org>\r\n'.length,
        ),
      );
      c.destroy();
    });
  });

  test(`[${impl}] commands before HELO get the engine's 500 reply and never reach JavaScript`, async (t) => {
    await withSink(t, impl, ['--max-early', '5'], async (sink) => {
      const c = await greeted(sink.port);
      const early = await c.exchange(
        'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nNOOP\r\nRSET\r\n',
        5,
      );
      t.deepEqual(early, Array(5).fill('500 5.5.1 Send HELO or EHLO first'));
      const replies = await c.exchange('HELO client.example\r\nNOOP\r\nQUIT\r\n', 3);
      t.deepEqual(
        replies.map((r) => r.slice(0, 4)),
        ['250 ', '250 ', '221 '],
      );
      t.true(await c.closedByServer());
      t.true(await waitUntil(() => statsLine(1).test(sink.output())), sink.output());
      // The example's JavaScript read three lines (HELO, NOOP, QUIT): not one of the five
      // before HELO, which the engine answered by itself.
      t.regex(sink.output(), /^stats session=1 end="quit" lineCallbacks=3 messages=0$/m);

      // One more than --max-early: five replies, then 421 and a close.
      const d = await greeted(sink.port);
      const burst = await d.exchange('NOOP\r\n'.repeat(6), 6);
      t.deepEqual(burst.slice(0, 5), Array(5).fill('500 5.5.1 Send HELO or EHLO first'));
      t.regex(burst[5]!, /^421 4\.7\.0 /);
      t.true(await d.closedByServer());
      t.true(await waitUntil(() => statsLine(2).test(sink.output())), sink.output());
      t.regex(sink.output(), /^stats session=2 end="no HELO" lineCallbacks=1 messages=0$/m);
    });
  });

  test(`[${impl}] a command line over 512 bytes gets 500 and a close`, async (t) => {
    await withSink(t, impl, [], async (sink) => {
      // 510 bytes and CRLF is the longest line allowed.
      const c = await greeted(sink.port);
      t.regex((await c.exchange(`HELO ${'h'.repeat(505)}\r\n`))[0]!, /^250 /);
      t.deepEqual(await c.exchange(`NOOP ${'n'.repeat(506)}\r\nNOOP\r\n`), [
        '500 5.5.2 Line too long',
      ]);
      t.true(await c.closedByServer());
      // Before HELO too, with the rest of the line still arriving.
      const d = await greeted(sink.port);
      d.send(`EHLO ${'e'.repeat(4000)}`);
      t.deepEqual([await d.reply()], ['500 5.5.2 Line too long']);
      d.send('\r\n');
      t.true(await d.closedByServer());
    });
  });

  test(`[${impl}] SIGTERM closes the sessions still open, mid-DATA included, and exits 0`, async (t) => {
    const clients: SmtpClient[] = [];
    await withSink(t, impl, [], async (sink) => {
      const c = await greeted(sink.port);
      t.deepEqual(
        (
          await c.exchange(
            'HELO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n',
            4,
          )
        ).map((r) => r.slice(0, 3)),
        ['250', '250', '250', '354'],
      );
      c.send('Subject: never finished\r\n\r\nhalf a bo');
      clients.push(c, await greeted(sink.port));
    });
    for (const c of clients) t.true(await c.closedByServer());
  });

  test(`[${impl}] a client silent past --idle-timeout gets 421 and is closed`, async (t) => {
    await withSink(t, impl, ['--idle-timeout', '3'], async (sink) => {
      const c = await greeted(sink.port);
      const d = await greeted(sink.port);
      t.regex((await d.exchange('EHLO late\r\nMAIL FROM:<a@example.org>\r\n', 2))[1]!, /^250 /);
      for (const client of [c, d]) {
        t.regex(await client.reply(10_000), /^421 4\.4\.2 \S+ Error: timeout exceeded$/);
        t.true(await client.closedByServer());
      }
      t.true(await waitUntil(() => /end="idle"[^\n]*\n[^\n]*end="idle"/.test(sink.output())));
    });
  });
}

test('smtp-sink: a bad option exits 2 with the usage, --help exits 0', async (t) => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(process.execPath, [MAIN_JS, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({
          code: err ? ((err as { code?: number }).code ?? null) : 0,
          out: stdout + stderr,
        }),
      );
    });
  for (const args of [
    ['--port', '70000'],
    ['--max-size', '0'],
    ['--idle-timeout', 'soon'],
    ['--bogus'],
  ]) {
    const { code, out } = await run(args);
    t.is(code, 2, args.join(' '));
    t.regex(out, /usage: node examples\/smtp-sink\/main\.js/);
  }
  const help = await run(['--help']);
  t.is(help.code, 0);
  t.regex(help.out, /--maildir DIR/);
});
