// Must not compile: readChunk takes no maxBytes (it reads at most `size` bytes).
import { type Socket, createEngine } from 'async-engine';

const engine = createEngine();
declare const sock: Socket;
engine.readChunk(sock, 10, { maxBytes: 5 }, () => {}); // expect TS2353 'maxBytes' does not exist in type 'PositionOptions'
