// An SMTP sink on async-engine: accepts mail for anyone and keeps it (as Postfix's smtp-sink or
// MailHog do, for tests and development). The greeting goes out with an acceptThenWrite chain;
// HELO/EHLO is enforced by the engine with a pre-registered reply (expectLine's onMismatch), so a
// client's commands before it are answered without any code of this file running; the message
// body is read up to its `<CRLF>.<CRLF>` with readUntil, a compound op framed natively.
import os from 'node:os';
import path from 'node:path';
import { Callback } from 'async-engine';

/** Largest message accepted by default, in bytes (Postfix's message_size_limit). */
export const DEFAULT_MAX_SIZE = 10_240_000;
/** Seconds a client may stay silent before it gets a 421 and is closed (RFC 5321's 5 minutes). */
export const DEFAULT_IDLE_TIMEOUT = 300;
/** Longest command line without its CRLF: RFC 5321 allows 512 bytes with it. */
export const MAX_LINE = 510;
/** Commands before HELO/EHLO answered with 500 before the client is closed with 421. */
export const MAX_EARLY_COMMANDS = 5;
/** Recipients one transaction may have (RFC 5321 asks servers to take at least 100). */
export const MAX_RECIPIENTS = 1000;

/** Bytes of an oversized message dropped per read while its end is looked for. */
const DISCARD_CHUNK = 64 * 1024;
/** Milliseconds the server keeps reading and dropping input before closing after an error. */
const LINGER_MS = 2000;
const DOT = 0x2e;
const BODY_END = '\r\n.\r\n';

const HELO_FIRST = '500 5.5.1 Send HELO or EHLO first\r\n';
const BAD_SEQUENCE = '503 5.5.1 Bad sequence of commands\r\n';
const TOO_BIG = '552 5.3.4 Message size exceeds fixed limit\r\n';

/** The lines a session may start with: HELO, EHLO, and QUIT, which RFC 5321 allows at any time. */
const FIRST_COMMAND = /^(?:HELO|EHLO|QUIT)(?:[ \t]|$)/i;
const MAIL_FROM = /^FROM:[ \t]*<([^<>\s]*)>((?:[ \t]+\S+)*)[ \t]*$/i;
const RCPT_TO = /^TO:[ \t]*<([^<>\s]+)>((?:[ \t]+\S+)*)[ \t]*$/i;

let idSerial = 0;

/** A queue id unique to this process and, through the time and pid, across runs sharing a maildir. */
function newQueueId() {
  idSerial += 1;
  return `${Date.now().toString(36).toUpperCase()}${process.pid.toString(36).toUpperCase()}${idSerial.toString(36).toUpperCase()}`;
}

/**
 * Removes SMTP's dot-stuffing (RFC 5321 4.5.2) from a message as sent: a line starting with a
 * dot loses that dot. Lines end at LF, so a CRLF or a bare LF both start a new line.
 */
export function unstuff(data) {
  let dots = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === DOT && (i === 0 || data[i - 1] === 0x0a)) dots++;
  }
  if (dots === 0) return data;
  const out = Buffer.allocUnsafe(data.length - dots);
  let o = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === DOT && (i === 0 || data[i - 1] === 0x0a)) continue;
    out[o++] = data[i];
  }
  return out;
}

/**
 * The headers a stored message starts with: the envelope, which the message itself may not
 * carry. Addresses are kept as the client sent their bytes.
 */
function envelopeHeaders(from, recipients) {
  let text = `Return-Path: <${from}>\r\n`;
  for (const r of recipients) text += `X-Rcpt-To: <${r}>\r\n`;
  return Buffer.from(text, 'latin1');
}

/**
 * One client: a greeting already sent, then HELO/EHLO, then transactions. Reads run one at a
 * time; replies are written in order, at most one write in flight and the others joined into
 * the next one, so pipelined commands are answered with few writes.
 */
class Session {
  constructor(server, sock) {
    this.server = server;
    this.engine = server.engine;
    this.sock = sock;
    this.id = ++server.stats.sessions;
    this.closed = false;
    this.endReason = 'closed';
    // Callbacks of this session's command reads that ran in JavaScript: a command answered by
    // the engine's pre-registered reply never adds to it.
    this.lineCallbacks = 0;
    this.messages = 0;
    this.greeted = false;
    this.resetTransaction();
    // The reply queue.
    this.queue = [];
    this.writing = false;
    this.afterWrites = undefined; // run once every queued reply is written
    this.writeCallback = new Callback({
      success: () => this.onWritten(),
      failure: () => this.destroy('write failed'),
    });
    this.heloOptions = {
      maxBytes: MAX_LINE,
      encoding: 'latin1',
      onMismatch: { reply: HELO_FIRST, max: server.maxEarlyCommands },
    };
    this.commandOptions = { maxBytes: MAX_LINE, encoding: 'latin1' };
    this.lineCallback = new Callback({
      success: (line) => {
        this.lineCallbacks++;
        this.onCommand(line);
      },
      failure: (err) => {
        this.lineCallbacks++;
        this.onReadError(err);
      },
    });
    // The body reads: peek (is the next line a dot line?), a line, the rest, and the oversized
    // message's discards.
    this.peekCallback = new Callback({
      success: (bytes) => this.onBodyPeek(bytes),
      failure: (err) => this.onReadError(err),
    });
    this.bodyCallback = new Callback({
      success: (data) => this.onBodyPiece(data),
      failure: (err) => this.onBodyError(err),
    });
    this.discardCallback = new Callback({
      success: () => this.readBodyRest(),
      failure: (err) => this.onReadError(err),
    });
  }

  resetTransaction() {
    this.from = undefined;
    this.recipients = [];
  }

  start() {
    const idle = this.server.idleTimeout;
    if (idle > 0) this.engine.setTimeouts(this.sock, { idle, write: idle });
    this.readHelo();
  }

  /** The first command, HELO or EHLO: anything else gets 500 from the engine, up to a bound. */
  readHelo() {
    this.engine.expectLine(this.sock, FIRST_COMMAND, this.heloOptions, this.lineCallback);
  }

  readCommand() {
    if (this.closed) return;
    if (!this.greeted) this.readHelo();
    else this.engine.expectLine(this.sock, null, this.commandOptions, this.lineCallback);
  }

  onCommand(line) {
    if (this.closed) return;
    const space = line.search(/[ \t]/);
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const arg = space < 0 ? '' : line.slice(space + 1).trim();
    switch (verb) {
      case 'HELO':
      case 'EHLO':
        return this.hello(verb, arg);
      case 'MAIL':
        return this.mail(arg);
      case 'RCPT':
        return this.rcpt(arg);
      case 'DATA':
        return this.data(arg);
      case 'RSET':
        this.resetTransaction();
        return this.reply('250 2.0.0 Ok\r\n');
      case 'NOOP':
        return this.reply('250 2.0.0 Ok\r\n');
      case 'VRFY':
        return this.reply(
          '252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n',
        );
      case 'HELP':
        return this.reply(
          '214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT\r\n',
        );
      case 'QUIT':
        this.endReason = 'quit';
        this.send('221 2.0.0 Bye\r\n');
        return this.whenWritten(() => this.destroy('quit'));
      case '':
        return this.reply('500 5.5.2 Error: bad syntax\r\n');
      default:
        return this.reply('502 5.5.2 Command not recognized\r\n');
    }
  }

  /** Sends a reply and reads the next command. */
  reply(text) {
    this.send(text);
    this.readCommand();
  }

  hello(verb, arg) {
    if (arg === '') return this.reply(`501 5.5.4 Syntax: ${verb} hostname\r\n`);
    this.greeted = true;
    this.resetTransaction();
    const host = this.server.hostname;
    if (verb === 'HELO') return this.reply(`250 ${host}\r\n`);
    this.reply(
      `250-${host}\r\n250-PIPELINING\r\n250-SIZE ${this.server.maxSize}\r\n` +
        '250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n',
    );
  }

  mail(arg) {
    if (this.from !== undefined) return this.reply(BAD_SEQUENCE);
    const m = MAIL_FROM.exec(arg);
    if (m === null) return this.reply('501 5.5.4 Syntax: MAIL FROM:<address>\r\n');
    for (const param of m[2].trim().split(/[ \t]+/)) {
      if (param === '') continue;
      const [key, value = ''] = param.split('=', 2);
      switch (key.toUpperCase()) {
        case 'SIZE':
          if (!/^\d{1,20}$/.test(value)) return this.reply('501 5.5.4 Bad SIZE parameter\r\n');
          if (Number(value) > this.server.maxSize) return this.reply(TOO_BIG);
          break;
        case 'BODY':
          if (!/^(?:7BIT|8BITMIME)$/i.test(value)) {
            return this.reply('501 5.5.4 Bad BODY parameter\r\n');
          }
          break;
        case 'SMTPUTF8':
          break;
        default:
          return this.reply(`555 5.5.4 Unsupported option: ${param}\r\n`);
      }
    }
    this.from = m[1];
    this.reply('250 2.1.0 Ok\r\n');
  }

  rcpt(arg) {
    if (this.from === undefined) return this.reply(BAD_SEQUENCE);
    const m = RCPT_TO.exec(arg);
    if (m === null || m[2].trim() !== '') {
      return this.reply('501 5.5.4 Syntax: RCPT TO:<address>\r\n');
    }
    if (this.recipients.length >= MAX_RECIPIENTS) {
      return this.reply('452 4.5.3 Error: too many recipients\r\n');
    }
    this.recipients.push(m[1]);
    this.reply('250 2.1.5 Ok\r\n');
  }

  data(arg) {
    if (arg !== '') return this.reply('501 5.5.4 Syntax: DATA\r\n');
    if (this.recipients.length === 0) return this.reply(BAD_SEQUENCE);
    this.send('354 End data with <CR><LF>.<CR><LF>\r\n');
    this.pieces = [];
    this.received = 0; // bytes of the message as sent, dot-stuffing included
    this.tooBig = false;
    this.readBodyLine();
  }

  // The body. The terminator is a line holding one dot; readUntil finds `<CRLF>.<CRLF>`, whose
  // CRLF ends the line before it. At the start of a line, with the previous CRLF already
  // consumed (the one of DATA, or of a dot line read alone), a peek looks at the next byte
  // first: a line that starts with a dot is read alone (the terminator itself, or a stuffed
  // line), anything else lets readUntil take the rest of the message at once.

  /** The budget a body read gets: the bytes left under the size limit, or a discard chunk. */
  bodyBudget() {
    return this.tooBig ? DISCARD_CHUNK : Math.max(1, this.server.maxSize - this.received);
  }

  readBodyLine() {
    if (this.closed) return;
    this.engine.peek(this.sock, 1, this.peekCallback);
  }

  onBodyPeek(bytes) {
    if (this.closed) return;
    if (bytes.length === 0) return this.destroy('end of stream in DATA');
    this.lineRead = bytes[0] === DOT;
    const delimiter = this.lineRead ? '\r\n' : BODY_END;
    this.bodyMaxBytes = this.bodyBudget();
    this.engine.readUntil(this.sock, delimiter, { maxBytes: this.bodyMaxBytes }, this.bodyCallback);
  }

  /** After a discard: the rest of an oversized message, from the middle of a line. */
  readBodyRest() {
    if (this.closed) return;
    this.lineRead = false;
    this.bodyMaxBytes = this.bodyBudget();
    this.engine.readUntil(this.sock, BODY_END, { maxBytes: this.bodyMaxBytes }, this.bodyCallback);
  }

  onBodyPiece(data) {
    if (this.closed) return;
    const last = !this.lineRead || (data.length === 3 && data[0] === DOT);
    if (!this.tooBig) {
      // The message as sent ends with the CRLF before the dot line.
      this.received += last ? data.length - 3 : data.length;
      if (this.received > this.server.maxSize) {
        this.tooBig = true;
        this.pieces = [];
      } else {
        this.pieces.push(data);
      }
    }
    if (!last) return this.readBodyLine();
    if (this.tooBig) {
      this.server.stats.refused++;
      this.resetTransaction();
      return this.reply(TOO_BIG);
    }
    const sent = Buffer.concat(this.pieces);
    this.pieces = [];
    this.deliver(unstuff(sent.subarray(0, sent.length - 3)));
  }

  onBodyError(err) {
    if (this.closed) return;
    if (err.code !== 'ERR_LIMIT') return this.onReadError(err);
    // Over the limit: the bytes stay buffered. None of the first maxBytes of them starts the
    // delimiter, so dropping all but the last four keeps any terminator whole; then look again.
    this.tooBig = true;
    this.pieces = [];
    const n = this.bodyMaxBytes > 4 ? this.bodyMaxBytes - 4 : this.bodyMaxBytes;
    this.engine.readExactly(this.sock, n, this.discardCallback);
  }

  /** Stores the message (a file in the maildir, or a line on stdout), then answers 250. */
  deliver(message) {
    const server = this.server;
    const id = newQueueId();
    const envelope = { id, from: this.from, recipients: this.recipients, size: message.length };
    this.resetTransaction();
    const done = (file) => {
      if (this.closed) return;
      this.messages++;
      server.stats.messages++;
      server.onMessage?.({ ...envelope, file, message });
      this.reply(`250 2.0.0 Ok: queued as ${id}\r\n`);
    };
    if (server.maildir === undefined) return done(undefined);
    const file = path.join(server.maildir, `${id}.eml`);
    const failed = () => {
      if (this.closed) return;
      this.reply('451 4.3.0 Error: queue file write error\r\n');
    };
    this.engine.open(
      file,
      { flags: 'wx' },
      new Callback({
        success: (fd) => {
          const data = [envelopeHeaders(envelope.from, envelope.recipients), message];
          this.engine.write(fd, data, {
            success: () => {
              this.engine.close(fd);
              done(file);
            },
            failure: () => {
              this.engine.close(fd);
              failed();
            },
          });
        },
        failure: failed,
      }),
    );
  }

  onReadError(err) {
    if (this.closed) return;
    const host = this.server.hostname;
    switch (err.code) {
      case 'ERR_LIMIT':
        this.send('500 5.5.2 Line too long\r\n');
        return this.lingerAndClose('line too long');
      case 'ERR_MISMATCH':
        this.send(`421 4.7.0 ${host} Error: too many commands before HELO/EHLO\r\n`);
        return this.lingerAndClose('no HELO');
      case 'ETIMEDOUT':
        this.send(`421 4.4.2 ${host} Error: timeout exceeded\r\n`);
        return this.whenWritten(() => this.destroy('idle'));
      default:
        // The peer left (ERR_INCOMPLETE, ECONNRESET) or the server is closing (ECANCELED).
        return this.destroy(err.code === 'ERR_INCOMPLETE' ? 'peer closed' : err.code);
    }
  }

  send(text) {
    if (this.closed) return;
    if (this.writing) {
      this.queue.push(Buffer.from(text, 'latin1'));
    } else {
      this.writing = true;
      this.engine.write(this.sock, Buffer.from(text, 'latin1'), this.writeCallback);
    }
  }

  onWritten() {
    if (this.closed) return;
    if (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      this.engine.write(this.sock, batch, this.writeCallback);
      return;
    }
    this.writing = false;
    const then = this.afterWrites;
    this.afterWrites = undefined;
    then?.();
  }

  whenWritten(fn) {
    if (this.writing) this.afterWrites = fn;
    else fn();
  }

  /**
   * Closes after the last reply, reading and dropping what the client still sends meanwhile
   * (for at most LINGER_MS, until it closes too): closing with unread bytes makes the kernel
   * send a reset, and the client could lose the reply it is about to read.
   */
  lingerAndClose(reason) {
    this.whenWritten(() => {
      if (this.closed) return;
      const timer = this.engine.callLater(LINGER_MS, () => this.destroy(reason));
      const drop = new Callback({
        timeout: LINGER_MS,
        success: (chunk) => {
          if (chunk.length === 0 || this.closed) {
            timer.cancel();
            this.destroy(reason);
          } else {
            this.engine.readChunk(this.sock, DISCARD_CHUNK, drop);
          }
        },
        failure: () => {
          timer.cancel();
          this.destroy(reason);
        },
      });
      this.engine.end(this.sock, {
        success: () => this.engine.readChunk(this.sock, DISCARD_CHUNK, drop),
        failure: () => {
          timer.cancel();
          this.destroy(reason);
        },
      });
    });
  }

  destroy(reason) {
    if (this.closed) return;
    this.closed = true;
    this.endReason = reason;
    this.queue = [];
    this.server.sessions.delete(this);
    this.engine.close(this.sock);
    this.server.onSessionEnd?.(this);
  }
}

/**
 * Starts the SMTP sink on `engine`.
 * @param {object} options
 * @param {import('async-engine').AsyncEngine} options.engine
 * @param {string} [options.host] default 127.0.0.1
 * @param {number} [options.port] default 2525; 0 picks a free port
 * @param {string} [options.hostname] the name in the greeting and EHLO reply (default: os.hostname())
 * @param {number} [options.maxSize] largest message, bytes as sent (default DEFAULT_MAX_SIZE)
 * @param {string} [options.maildir] a directory each message is written to as `<id>.eml`
 * @param {number} [options.idleTimeout] seconds of silence before a 421 and a close; 0: none
 * @param {number} [options.maxEarlyCommands] commands answered 500 before HELO/EHLO, then 421
 * @param {(msg: { id, from, recipients, size, file, message: Buffer }) => void} [options.onMessage]
 *   called for each message stored
 * @param {(session: { id, endReason, lineCallbacks, messages }) => void} [options.onSessionEnd]
 *   called once per connection when it closes
 * @returns {{ listener, address, sessions: Set<object>, stats: { sessions, messages, refused }, close(): void }}
 */
export function startSmtpSink({
  engine,
  host = '127.0.0.1',
  port = 2525,
  hostname = os.hostname(),
  maxSize = DEFAULT_MAX_SIZE,
  maildir,
  idleTimeout = DEFAULT_IDLE_TIMEOUT,
  maxEarlyCommands = MAX_EARLY_COMMANDS,
  onMessage,
  onSessionEnd,
}) {
  const listener = engine.listen({ host, port });
  const server = {
    engine,
    listener,
    address: listener.address(),
    hostname,
    maxSize,
    maildir,
    idleTimeout: idleTimeout * 1000,
    maxEarlyCommands,
    onMessage,
    onSessionEnd,
    sessions: new Set(),
    stats: { sessions: 0, messages: 0, refused: 0 },
    closed: false,
    close,
  };
  const greeting = Buffer.from(`220 ${hostname} ESMTP async-engine smtp-sink\r\n`, 'latin1');

  // The accept loop: each accepted connection gets the greeting in the same chain, and the
  // accept is armed again as soon as its socket stage settles. Plain slot objects make a new
  // Callback per chain, since the greeting stage of one may still run when the next is armed.
  function arm() {
    if (server.closed || engine.closed) return;
    engine.acceptThenWrite(listener, greeting, [
      {
        success: (sock) => {
          if (server.closed) return engine.close(sock);
          const session = new Session(server, sock);
          server.sessions.add(session);
          sockets.set(sock, session);
          arm();
        },
        failure: (err) => {
          if (server.closed || err.code === 'ECANCELED' || err.code === 'EBADF') return;
          engine.callLater(100, arm); // out of fds or another accept error: try again soon
        },
      },
      {
        success: (_n, sock) => {
          const session = sockets.get(sock);
          sockets.delete(sock);
          if (session !== undefined && !session.closed) session.start();
        },
        failure: (_err, sock) => {
          const session = sockets.get(sock);
          sockets.delete(sock);
          if (session !== undefined) session.destroy('greeting not written');
          else if (sock !== undefined) engine.close(sock);
        },
      },
    ]);
  }
  // Sessions whose greeting is still being written.
  const sockets = new Map();
  arm();

  /** Stops accepting and closes every session. */
  function close() {
    if (server.closed) return;
    server.closed = true;
    engine.close(listener);
    for (const session of server.sessions) session.destroy('server closed');
    sockets.clear();
  }

  return server;
}
