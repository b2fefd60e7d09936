// Out of file descriptors at accept time: no busy loop, no failure storm, and recovery once
// fds are freed. Runs in a child process with a low RLIMIT_NOFILE.
import test from 'ava';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { implsUnderTest } from './helpers/harness.js';

const engineUrl = new URL('../../dist/index.js', import.meta.url).href;

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
    const child = spawn(
      '/bin/sh',
      ['-c', `ulimit -n 128 && exec "${process.execPath}" --input-type=module -e "$SCRIPT"`],
      {
        env: { ...process.env, ENGINE_URL: engineUrl, IMPL: impl, SCRIPT: childScript },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const lines: Record<string, string> = {};
    let stderr = '';
    const clients: net.Socket[] = [];
    const connect = (port: number) => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      clients.push(c);
    };
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    let buf = '';
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const [key, value = ''] = buf.slice(0, i).split(' ');
        buf = buf.slice(i + 1);
        lines[key!] = value;
        if (key === 'port' || key === 'freed') connect(Number(lines.port));
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((r) => child.on('close', r));
    clearTimeout(timer);
    for (const c of clients) c.destroy();
    t.is(code, 0, stderr);
    t.is(lines.failures, '0', 'accepts wait rather than fail');
    t.true(Number(lines.cpu) < 400, `CPU used while out of fds: ${lines.cpu} ms in 1 s`);
    t.true(Number(lines.accepted) >= 1, 'a connection is accepted once fds are free');
  });
}
