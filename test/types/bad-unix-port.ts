// Must not compile: a Unix socket listener's address is its path, with no port.
import { createEngine } from 'async-engine';

const engine = createEngine();
export const port = engine.listen({ path: '/tmp/x.sock' }).address().port; // expect TS2339 Property 'port' does not exist on type 'string'
