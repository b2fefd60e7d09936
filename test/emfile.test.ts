// Out of file descriptors at accept time: no busy loop, no failure storm, and recovery once
// fds are freed. Runs in a child process with a low RLIMIT_NOFILE.
import test from 'ava';
import net from 'node:net';
import { implsUnderTest, runLowFdChild } from './helpers/harness.js';

const childScript = `
import fs from 'node:fs';
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const engine = createEngine({ impl: process.env.IMPL });
const l = engine.listen({ port: 0 });
let failures = 0;
let accepted = 0;
const arm = () =>
  engine.accept(l, new Callback({
    success: (s) => { accepted++; engine.close(s); arm(); },
    failure: (e) => { if (e.code !== 'ECANCELED') { failures++; arm(); } },
  }));
arm();
const held = [];
try { for (;;) held.push(fs.openSync('/dev/null', 'r')); } catch {}
console.log('port ' + l.address().port);
const before = process.cpuUsage();
await sleep(1000);
const used = process.cpuUsage(before);
console.log('cpu ' + Math.round((used.user + used.system) / 1000));
console.log('failures ' + failures);
for (const fd of held) fs.closeSync(fd);
console.log('freed');
for (let i = 0; i < 100 && accepted === 0; i++) await sleep(50);
console.log('accepted ' + accepted);
await engine.shutdown();
`;

for (const impl of implsUnderTest()) {
  test(`[${impl}] accept out of fds: no spin, no failures, recovers when fds are freed`, async (t) => {
    const lines: Record<string, string> = {};
    const clients: net.Socket[] = [];
    const connect = (port: number) => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      clients.push(c);
    };
    const { code, stderr } = await runLowFdChild(childScript, impl, lines, (key) => {
      if (key === 'port' || key === 'freed') connect(Number(lines.port));
    });
    for (const c of clients) c.destroy();
    t.is(code, 0, stderr);
    t.is(lines.failures, '0', 'accepts wait rather than fail');
    t.true(Number(lines.cpu) < 400, `CPU used while out of fds: ${lines.cpu} ms in 1 s`);
    t.true(Number(lines.accepted) >= 1, 'a connection is accepted once fds are free');
  });
}
