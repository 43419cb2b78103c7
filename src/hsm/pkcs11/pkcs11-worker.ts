/**
 * A worker thread that runs the lanes of one LaneThread (worker-lane.ts):
 * one PKCS#11 instance per lane (its own sessions, handles and login),
 * made on the lane's first call. GuardedHsm gives a lane one call at a
 * time; the thread runs the calls of all its lanes in the order they
 * arrive. Every pkcs11js call is synchronous, so a call blocks this thread
 * for as long as the token takes (or hangs), and the main thread's event
 * loop never does.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pack, revive, toWireError, type LaneLog, type LaneMethod, type LaneReply, type LaneRequest } from '../lane-protocol.js';
import { Pkcs11Hsm, type Pkcs11HsmOptions } from './pkcs11-hsm.js';

export type WorkerOptions = Omit<Pkcs11HsmOptions, 'log'>;

if (parentPort === null) throw new Error('pkcs11-worker.js runs only as a worker thread');
const port = parentPort;

const send = (level: LaneLog['log']['level']) => (obj: object, msg: string) => port.postMessage({ log: { level, obj, msg } } satisfies LaneLog);
const log = { info: send('info'), warn: send('warn'), error: send('error') };
const lanes: Pkcs11Hsm[] = [];

/**
 * Replies wait here until the thread has run every call already queued,
 * then go in one message: the main thread is woken once per batch, not
 * once per call.
 */
let outbox: LaneReply[] = [];
let outboxTransfer: ArrayBuffer[] = [];
function answer(reply: LaneReply, transfer: ArrayBuffer[] = []): void {
  outbox.push(reply);
  for (const t of transfer) outboxTransfer.push(t);
  if (outbox.length === 1) setImmediate(flush);
}

function flush(): void {
  const batch = outbox;
  const transfer = outboxTransfer;
  outbox = [];
  outboxTransfer = [];
  port.postMessage(batch.length === 1 ? batch[0] : batch, transfer);
}

/**
 * Plaintext and data keys that crossed to this thread, or were made here,
 * are zeroed once the call is done with them (the reply carries copies):
 * they would otherwise stay in this thread's memory until a GC.
 */
const SECRET_ARGS = new Set<LaneMethod>(['aesGcmSeal', 'aesGcmEncrypt', 'rsaOaepEncrypt']);
const SECRET_RESULTS = new Set<LaneMethod>(['random', 'aesGcmSealRandom', 'aesGcmDecrypt', 'rsaOaepDecrypt', 'generateDataKeyPair']);

function wipe(v: unknown): void {
  if (v instanceof Uint8Array) v.fill(0);
  else if (Array.isArray(v)) v.forEach(wipe);
  else if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) Object.values(v).forEach(wipe);
}

async function run(req: LaneRequest): Promise<void> {
  let reply: LaneReply;
  const args = revive(req.args) as unknown[];
  try {
    const hsm = (lanes[req.lane] ??= Pkcs11Hsm.unopened({ ...(workerData as WorkerOptions), log }));
    let value: unknown;
    if (req.method === 'describe') value = hsm.describe();
    else {
      const fn = (hsm as unknown as Record<string, (...a: unknown[]) => unknown>)[req.method];
      if (typeof fn !== 'function') throw new Error(`no method ${req.method}`);
      value = await fn.apply(hsm, args);
    }
    const transfer: ArrayBuffer[] = [];
    reply = { id: req.id, ok: true, value: pack(value, transfer) };
    answer(reply, transfer);
    if (SECRET_RESULTS.has(req.method)) wipe(value);
    return;
  } catch (e) {
    if (!(e instanceof Error && 'status' in e)) send('error')({ method: req.method, err: String(e) }, 'unexpected failure in the PKCS#11 worker');
    reply = { id: req.id, ok: false, error: toWireError(e) };
  } finally {
    if (SECRET_ARGS.has(req.method)) wipe(args);
  }
  answer(reply);
}

port.on('message', (m: LaneRequest | LaneRequest[]) => {
  if (Array.isArray(m)) for (const req of m) void run(req);
  else void run(m);
});
