/**
 * Micro-benchmark of the HSM layer alone (no HTTP): symmetric Encrypt as the
 * gateway does it (encryptSymmetric: fresh IV, AES-256-GCM, blob), with a
 * fixed number of calls in flight for a few seconds, in this one process.
 * Prints one human line and one JSON line (ops/s, latency percentiles, CPU
 * of this process, peak RSS).
 *
 *   node dist/bench/hsm-micro.js [--hsm guarded|sync] [--lanes 8] [--threads N] [--keys 5] [--use K]
 *        [--op encrypt|encrypt-2trip|decrypt|datakey|datakey-1trip|random] [--size 4096] [--inflight 32]
 *        [--seconds 5] [--warmup 2] [--copies] [--metrics on|off] [--data-dir DIR]
 *
 * --hsm guarded   GuardedHsm over `--lanes` lanes (sessions) on `--threads` worker threads (the gateway's HSM;
 *                 threads default: the gateway's default)
 * --hsm sync      one Pkcs11Hsm on this thread, synchronous calls (the token's one-process limit)
 * --keys N        N AES keys on the token (made once, kept in --data-dir); calls go round-robin over all of them,
 *                 or over the first --use K
 * --copies        hsm.sessionKeyCopies: each lane uses an in-token session copy of a key
 *
 * The token lives in --data-dir (default: $TMPDIR/kmsgw-bench-hsm-<N>-keys,
 * one per key count), made with softhsm/init-token.sh and kept between runs
 * so 1,000 keys are made only once. Numbers on a shared 2-core machine are noisy: compare runs made
 * one after the other, never single figures.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Hsm, PrepareKeyRequest } from '../src/hsm/hsm.js';
import { DEFAULT_LANE_THREADS, openPkcs11Hsm } from '../src/hsm/pkcs11/open.js';
import { Pkcs11Hsm } from '../src/hsm/pkcs11/pkcs11-hsm.js';
import { decryptSymmetric, encryptSymmetric } from '../src/keys/key-crypto.js';
import { materialName, type KmsKey } from '../src/keys/key-store.js';
import { createMetrics } from '../src/metrics/metrics.js';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const TOKEN = 'kmsgw-bench';

const { values: a } = parseArgs({
  options: {
    hsm: { type: 'string', default: 'guarded' },
    lanes: { type: 'string', default: '8' },
    threads: { type: 'string' },
    keys: { type: 'string', default: '5' },
    use: { type: 'string' },
    op: { type: 'string', default: 'encrypt' },
    size: { type: 'string', default: '4096' },
    inflight: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    copies: { type: 'boolean', default: false },
    metrics: { type: 'string', default: 'on' },
    'data-dir': { type: 'string' },
  },
});
const lanes = Number(a.lanes);
const threads = a.threads === undefined ? undefined : Number(a.threads);
const keyCount = Number(a.keys);
/** How many of the keys the calls go round (default: all of them). */
const useCount = Math.min(keyCount, Number(a.use ?? keyCount));
const size = Number(a.size);
const inflight = Number(a.inflight);
const seconds = Number(a.seconds);
const warmup = Number(a.warmup);
// One token per key count, so "5 keys" means 5 key objects on the token.
const dataDir = resolve(a['data-dir'] ?? join(tmpdir(), `kmsgw-bench-hsm-${keyCount}-keys`));
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const quiet = { info() {}, warn: (o: object, m: string) => console.error('warn:', m, JSON.stringify(o)), error: (o: object, m: string) => console.error('error:', m, JSON.stringify(o)) };

/** CPU time of this process's main thread so far, in µs (Linux: /proc/self/task/<pid>/stat, clock ticks of 10 ms). */
function mainThreadCpuUs(): number {
  try {
    const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000;
  } catch {
    return NaN;
  }
}

/** CPU time (µs) of every thread of this process, by thread id, with its name. */
function threadCpu(): Map<string, { name: string; us: number }> {
  const out = new Map<string, { name: string; us: number }>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      out.set(tid, { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), us: (Number(f[11]) + Number(f[12])) * 10_000 });
    } catch {
      // the thread ended
    }
  }
  return out;
}

function sample(): number {
  return process.memoryUsage.rss();
}

async function main(): Promise<void> {
  execFileSync(join(root, 'softhsm/init-token.sh'), [dataDir, TOKEN], { stdio: ['ignore', 'ignore', 'inherit'] });
  process.env['SOFTHSM2_CONF'] = join(dataDir, 'softhsm2.conf');
  const pin = readFileSync(join(dataDir, 'pin'), 'utf8').trim();
  const rssBefore = sample();

  // Only passed when asked, so the bench also builds against a tree without the option.
  const copies = a.copies ? { sessionKeyCopies: true } : {};
  let hsm: Hsm;
  if (a.hsm === 'sync') {
    hsm = await Pkcs11Hsm.open({ module: MODULE, token: { label: TOKEN }, pin, sessionPoolSize: 1, ...copies, log: quiet });
  } else {
    hsm = await openPkcs11Hsm(
      { module: MODULE, token: { label: TOKEN }, pin: { file: join(dataDir, 'pin') }, sessionPoolSize: lanes, laneThreads: threads, ...copies, deadlineMs: 2000, circuitFailureThreshold: 5, probeIntervalMs: 1000, readyCacheMs: 1000 },
      pin,
      quiet,
      // As in the gateway: every call observes its duration in a histogram.
      a.metrics === 'on' ? createMetrics({ defaultMetrics: false }) : undefined,
    );
  }

  // The keys: found in one pass (as the KeyStore does at start), the missing ones made.
  const reqs: PrepareKeyRequest[] = Array.from({ length: keyCount }, (_, i) => ({
    name: materialName(`00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`, 0),
    displayName: `bench key ${i}`,
    keySpec: 'SYMMETRIC_DEFAULT',
    createIfMissing: false,
    ref: { label: `kmsgw-bench-aes-${i}` },
  }));
  const t0 = performance.now();
  const found = await hsm.findKeys(reqs);
  let made = 0;
  for (const [i, r] of found.entries()) {
    if (r.state === 'ready') continue;
    await hsm.prepareKey({ ...reqs[i]!, createIfMissing: true });
    made++;
  }
  const prepareMs = performance.now() - t0;
  const keys: KmsKey[] = reqs.map(
    (r, i) =>
      ({
        keyId: `00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`,
        keySpec: 'SYMMETRIC_DEFAULT',
        currentMaterial: { version: 0, name: r.name },
        materials: [{ version: 0 }],
      }) as unknown as KmsKey,
  );

  const rssOpen = sample();
  const plaintext = randomBytes(size);
  const context = { purpose: 'bench' };
  const blobs = a.op === 'decrypt' ? await Promise.all(keys.map((k) => encryptSymmetric(hsm, k, plaintext, context))) : [];
  let next = 0;
  const once = async (): Promise<void> => {
    const i = next++ % useCount;
    const key = keys[i]!;
    switch (a.op) {
      case 'encrypt':
        await encryptSymmetric(hsm, key, plaintext, context);
        return;
      case 'encrypt-2trip': {
        // Encrypt as it was before aesGcmSeal: the IV in one round trip, the encryption in a second.
        const iv = await hsm.random(12);
        await hsm.aesGcmEncrypt(key.currentMaterial.name, iv, plaintext, Buffer.from('bench-aad'));
        return;
      }
      case 'decrypt':
        await decryptSymmetric(hsm, key, blobs[i]!, context);
        return;
      case 'datakey': {
        const dk = await hsm.random(32);
        await encryptSymmetric(hsm, key, dk, context);
        dk.fill(0);
        return;
      }
      case 'datakey-1trip': {
        // GenerateDataKey's data key drawn and sealed by the token in one call.
        const { plaintext: dk } = await hsm.aesGcmSealRandom(key.currentMaterial.name, 32, Buffer.from('bench-aad'));
        dk.fill(0);
        return;
      }
      case 'random':
        await hsm.random(12);
        return;
      default:
        throw new Error(`unknown --op ${a.op}`);
    }
  };

  // Phases by the clock, not by timers: in --hsm sync every call settles in
  // microtasks, which would starve any setTimeout.
  let count = 0;
  let errors = 0;
  // Latencies in 10 µs buckets up to 10 s: a growing array would be promoted to
  // the old generation and make major GCs (on V8's helper threads) part of the figures.
  const BUCKET_MS = 0.01;
  const latencies = new Uint32Array(1_000_000);
  let peakRss = sample();
  const t1 = performance.now();
  const warmEnd = t1 + warmup * 1000;
  const end = warmEnd + seconds * 1000;
  let cpu0: NodeJS.CpuUsage | undefined;
  let main0 = 0;
  let threads0 = new Map<string, { name: string; us: number }>();
  let w0 = 0;
  let ops = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const s = performance.now();
      if (s >= end) return;
      if (s >= warmEnd && cpu0 === undefined) {
        cpu0 = process.cpuUsage();
        main0 = mainThreadCpuUs();
        threads0 = threadCpu();
        w0 = s;
      }
      if (++ops % 1000 === 0) peakRss = Math.max(peakRss, sample());
      try {
        await once();
        if (s >= warmEnd) {
          count++;
          latencies[Math.min(latencies.length - 1, Math.floor((performance.now() - s) / BUCKET_MS))]!++;
        }
      } catch (e) {
        if (s >= warmEnd) errors++;
        if (errors < 3) console.error('error:', String(e));
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const wall = (performance.now() - w0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const mainUs = mainThreadCpuUs() - main0;
  // CPU per operation of each busy thread (main first, then the others by CPU: the lanes' threads are the busy ones).
  const perThread: number[] = [];
  for (const [tid, t] of threadCpu()) {
    if (tid === String(process.pid)) continue;
    perThread.push(t.us - (threads0.get(tid)?.us ?? 0));
  }
  const threadsUsPerOp = perThread
    .sort((x, y) => y - x)
    .filter((us) => us > 0)
    .map((us) => Math.round(us / Math.max(1, count)));
  peakRss = Math.max(peakRss, sample());
  const rssEnd = sample();
  await hsm.close();

  const pct = (p: number) => {
    const rank = Math.max(1, Math.ceil((p / 100) * count));
    let seen = 0;
    for (let i = 0; i < latencies.length; i++) {
      seen += latencies[i]!;
      if (seen >= rank) return Number(((i + 1) * BUCKET_MS).toFixed(2));
    }
    return 0;
  };
  const result = {
    hsm: a.hsm,
    lanes: a.hsm === 'sync' ? 0 : lanes,
    threads: a.hsm === 'sync' ? 0 : Math.min(lanes, threads ?? DEFAULT_LANE_THREADS),
    keys: keyCount,
    keysUsed: useCount,
    keysMade: made,
    prepareMs: Math.round(prepareMs),
    op: a.op,
    size,
    inflight,
    copies: a.copies,
    seconds: Number(wall.toFixed(2)),
    opsPerSec: Math.round(count / wall),
    errors,
    p50ms: pct(50),
    p99ms: pct(99),
    maxMs: pct(100),
    cpuPercent: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 100),
    /** CPU per operation, all threads of the process / its main thread only (µs): what a saturated machine divides its cores by. */
    cpuUsPerOp: Math.round((cpu.user + cpu.system) / Math.max(1, count)),
    mainCpuUsPerOp: Math.round(mainUs / Math.max(1, count)),
    threadsUsPerOp,
    rssBeforeMb: Math.round(rssBefore / 2 ** 20),
    /** After the HSM opened and the keys were found, before the load. */
    rssOpenMb: Math.round(rssOpen / 2 ** 20),
    rssPeakMb: Math.round(peakRss / 2 ** 20),
    rssEndMb: Math.round(rssEnd / 2 ** 20),
  };
  console.log(
    `${result.op} ${size} B, ${result.hsm}${result.hsm === 'guarded' ? ` ${lanes} lanes/${result.threads} threads` : ''}${a.copies ? ' +copies' : ''}, ${keyCount} keys${useCount < keyCount ? ` (${useCount} used)` : ''}, ${inflight} in flight: ` +
      `${result.opsPerSec} ops/s, p50 ${result.p50ms} ms, p99 ${result.p99ms} ms, errors ${errors}, CPU ${result.cpuPercent}% (${result.cpuUsPerOp} us/op, main thread ${result.mainCpuUsPerOp} us/op), RSS peak ${result.rssPeakMb} MB`,
  );
  console.log(JSON.stringify(result));
  // A lane thread stuck in the token must not hold the exit.
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
