// HTTP/1.1 pieces shared by examples/http-hello and the node:net baseline: request-head parsing
// and the `Hello, World!` responses (with a Date header, cached per second). No engine here.

/** Longest request head accepted, in bytes (431 past it). */
export const MAX_HEAD = 8 * 1024;
/** Largest request body read (and discarded), in bytes (413 past it). */
export const MAX_BODY = 1024 * 1024;
const BODY = 'Hello, World!';

let dateSecond = -1;
let dateText = '';

/** The `Date` header value, rebuilt at most once a second. */
function httpDate() {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

let cachedSecond = -1;
const cached = new Map(); // `${keepAlive}${head}` → Buffer, valid for `cachedSecond`

/** The `Hello, World!` response (headers only for HEAD), cached per second. */
export function helloResponse(head, connection) {
  const date = httpDate();
  if (cachedSecond !== dateSecond) {
    cachedSecond = dateSecond;
    cached.clear();
  }
  const key = `${connection}|${head}`;
  let buf = cached.get(key);
  if (buf === undefined) {
    const conn = connection === '' ? '' : `Connection: ${connection}\r\n`;
    buf = Buffer.from(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n' +
        `Date: ${date}\r\n${conn}\r\n${head ? '' : BODY}`,
      'latin1',
    );
    cached.set(key, buf);
  }
  return buf;
}

/** An error response; the connection closes after it. */
export function errorResponse(status, reason) {
  const text = `${status} ${reason}\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n` +
      `Date: ${httpDate()}\r\nConnection: close\r\n\r\n${text}`,
    'latin1',
  );
}

const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/;

/**
 * Parses a request head (latin1, `\r\n\r\n` included). Returns `{ head, keepAlive, bodyLength }`
 * or `{ status, reason }` for a request that gets an error and a close.
 */
export function parseHead(text) {
  return parseHeadLines(text, text.length - 4);
}

/**
 * Parses a request head whose lines end where its `\r\n\r\n` starts (`end`: `text.length` when
 * the delimiter was stripped). Returns what parseHead returns.
 */
export function parseHeadLines(text, end = text.length) {
  let eol = text.indexOf('\r\n');
  if (eol < 0 || eol > end) eol = end;
  const m = REQUEST_LINE.exec(text.slice(0, eol));
  if (m === null) return { status: 400, reason: 'Bad Request' };
  const http10 = m[3] === '0';
  let keepAlive = !http10;
  let bodyLength = 0;
  let pos = eol + 2;
  while (pos < end) {
    let next = text.indexOf('\r\n', pos);
    if (next < 0 || next > end) next = end;
    const colon = text.indexOf(':', pos);
    if (colon < 0 || colon > next) return { status: 400, reason: 'Bad Request' };
    const nameLength = colon - pos;
    // Only three headers matter here; compare names of their lengths alone.
    if (nameLength === 10 || nameLength === 14 || nameLength === 17) {
      const name = text.slice(pos, colon).toLowerCase();
      const value = text
        .slice(colon + 1, next)
        .trim()
        .toLowerCase();
      if (name === 'connection') {
        if (/(?:^|,)\s*close\s*(?:,|$)/.test(value)) keepAlive = false;
        else if (/(?:^|,)\s*keep-alive\s*(?:,|$)/.test(value)) keepAlive = true;
      } else if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value)) return { status: 400, reason: 'Bad Request' };
        bodyLength = Number(value);
        if (bodyLength > MAX_BODY) return { status: 413, reason: 'Payload Too Large' };
      } else if (name === 'transfer-encoding') {
        return { status: 501, reason: 'Not Implemented' };
      }
    }
    pos = next + 2;
  }
  // The Connection header a reply needs: HTTP/1.0 keep-alive is said explicitly.
  const connection = !keepAlive ? 'close' : http10 ? 'keep-alive' : '';
  return { head: m[1] === 'HEAD', keepAlive, connection, bodyLength };
}
