// Must not compile: getaddrinfo's success gets no socket (undefined), so a socket's address
// cannot be read from it.
import { createEngine } from 'async-engine';

const engine = createEngine();
engine.getaddrinfo('localhost', 80, (addrs, sock) => sock.remoteAddress); // expect TS18048 'sock' is possibly 'undefined'
