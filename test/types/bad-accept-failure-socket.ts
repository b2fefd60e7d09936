// Must not compile: a failed accept made no socket, so its failure has none to close.
import { type Listener, createEngine } from 'async-engine';

const engine = createEngine();
declare const listener: Listener;
engine.accept(listener, { failure: (err, sock) => engine.close(sock) }); // expect TS2345 Argument of type 'undefined' is not assignable to parameter of type 'Listener
