/**
 * A worker thread that owns one PKCS#11 instance (one session for crypto,
 * one login session) and runs the Hsm methods its lane sends, one at a
 * time. Synchronous pkcs11js calls (C_EncryptInit, C_FindObjects, ...) may
 * block here for as long as the token hangs; the main thread's event loop
 * never does.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pack, revive, toWireError, type LaneLog, type LaneReply, type LaneRequest } from '../lane-protocol.js';
import { Pkcs11Hsm, type Pkcs11HsmOptions } from './pkcs11-hsm.js';

export type WorkerOptions = Omit<Pkcs11HsmOptions, 'log'>;

const port = parentPort;
if (port === null) throw new Error('pkcs11-worker.js runs only as a worker thread');

const send = (level: LaneLog['log']['level']) => (obj: object, msg: string) => port.postMessage({ log: { level, obj, msg } } satisfies LaneLog);
const hsm = Pkcs11Hsm.unopened({ ...(workerData as WorkerOptions), log: { info: send('info'), warn: send('warn'), error: send('error') } });

port.on('message', (req: LaneRequest) => {
  void (async () => {
    let reply: LaneReply;
    try {
      let value: unknown;
      if (req.method === 'describe') value = hsm.describe();
      else {
        const fn = (hsm as unknown as Record<string, (...a: unknown[]) => unknown>)[req.method];
        if (typeof fn !== 'function') throw new Error(`no method ${req.method}`);
        value = await fn.apply(hsm, revive(req.args) as unknown[]);
      }
      const transfer: ArrayBuffer[] = [];
      reply = { id: req.id, ok: true, value: pack(value, transfer) };
      port.postMessage(reply, transfer);
      return;
    } catch (e) {
      if (!(e instanceof Error && 'status' in e)) send('error')({ method: req.method, err: String(e) }, 'unexpected failure in the PKCS#11 worker');
      reply = { id: req.id, ok: false, error: toWireError(e) };
    }
    port.postMessage(reply);
  })();
});
