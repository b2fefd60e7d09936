// Must not compile: a file op's success gets the File, which has no peer address.
import { type File, createEngine } from 'async-engine';

const engine = createEngine();
declare const file: File;
engine.readChunk(file, 10, (buf, f) => f.remoteAddress); // expect TS2339 Property 'remoteAddress' does not exist on type 'File'
