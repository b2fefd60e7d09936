// Must not compile: a Callback typed for a Socket op given to a File op.
import { Callback, type File, type Socket, createEngine } from 'async-engine';

const engine = createEngine();
declare const file: File;
const cb = new Callback<Buffer, Socket, Socket>({ success: (buf, sock) => sock.remoteAddress });
engine.readChunk(file, 10, cb); // expect TS2345 Type 'File' is missing the following properties from type 'Socket'
