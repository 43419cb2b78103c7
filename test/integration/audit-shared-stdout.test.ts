/**
 * The audit sink of several processes on one stdout pipe, as the workers of
 * a cluster share the primary's: real processes, a real pipe whose reader
 * falls behind, so the writers meet a full pipe and their lines queue up.
 * Every line must come out whole (the sink writes whole lines in writes of
 * at most PIPE_BUF, one at a time), and none may be lost.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { ROOT } from '../support/gateway.js';

const WRITERS = 3;
const LINES = 2000;

/** A process that writes LINES audit lines of ~600 bytes, tagged with its number, through the stdout sink, as fast as it can queue them. */
function writerScript(n: number): string {
  const audit = pathToFileURL(join(ROOT, 'dist', 'src', 'api', 'audit.js')).href;
  return [
    `const { openAuditSink } = await import(${JSON.stringify(audit)});`,
    `const log = { warn: (o, m) => console.error(m, JSON.stringify(o)), info() {}, error() {} };`,
    `const sink = openAuditSink(undefined, log);`,
    `for (let i = 0; i < ${LINES}; i++) {`,
    `  sink.write(JSON.stringify({ writer: ${n}, i, pad: 'x'.repeat(560 + (i % 40)) }));`,
    `  if (i % 50 === 49) await new Promise((r) => setImmediate(r));`,
    `}`,
    `await sink.close();`,
  ].join('\n');
}

describe('audit lines of several processes sharing one stdout pipe', function () {
  this.timeout(60_000);

  it('come out whole and all there, though the pipe was full while they were written', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'kmsgw-audit-'));
    try {
      const files = Array.from({ length: WRITERS }, (_, n) => {
        const f = join(dir, `writer-${n}.mjs`);
        writeFileSync(f, writerScript(n));
        return f;
      });
      // One shell, so every writer inherits the same stdout pipe.
      const child = spawn('sh', ['-c', `${files.map((f) => `"${process.execPath}" "${f}" &`).join(' ')} wait`], { stdio: ['ignore', 'pipe', 'inherit'] });
      // The reader falls behind: nothing is read for a second, so the 64 KiB pipe fills and the writers queue.
      child.stdout.pause();
      await new Promise((r) => setTimeout(r, 1000));
      const chunks: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => chunks.push(c));
      child.stdout.resume();
      const code = await new Promise<number | null>((r) => child.on('close', r));
      expect(code).to.equal(0);
      const lines = Buffer.concat(chunks).toString('utf8').split('\n').filter((l) => l !== '');
      expect(lines).to.have.length(WRITERS * LINES);
      const seen = Array.from({ length: WRITERS }, () => [] as number[]);
      for (const l of lines) {
        const rec = JSON.parse(l) as { writer: number; i: number; pad: string };
        expect(rec.pad).to.have.length(560 + (rec.i % 40));
        seen[rec.writer]?.push(rec.i);
      }
      // Each writer's lines in the order it wrote them.
      for (const s of seen) expect(s).to.deep.equal(Array.from({ length: LINES }, (_, i) => i));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
