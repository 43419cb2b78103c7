/**
 * A gateway worker's side of the cluster channel (see primary.ts): client
 * connections come from the primary (connections.ts), metric
 * scrapes go to the primary, and key state changes are
 * published so that every worker sees them before the client that made
 * them gets its answer (read-your-writes across the workers: a client's
 * next request may land on any worker).
 */
import type { Socket } from 'node:net';
import process from 'node:process';
import type { StateChange } from '../keys/state-store.js';
import { isKmsgwMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';

/** How long a worker waits for the primary (state sync, metrics). */
const REPLY_TIMEOUT_MS = 5_000;

export interface ClusterChannel {
  /** Every worker's metrics, aggregated by the primary (Prometheus text format). */
  metrics(): Promise<string>;
  /** Resolves when every other worker has applied these changes (or could not within the timeout). */
  publishStateChange(changes: StateChange[]): Promise<void>;
  /** Called with another worker's committed key state changes; resolves when applied. */
  onRefresh(fn: (changes: StateChange[]) => Promise<void>): void;
  /** Called once if the primary makes this worker the one that runs background key work. */
  onLeader(fn: () => void): void;
  /**
   * Ready to serve: the primary hands this worker client connections from
   * now on, each to `accept` (a socket not read from yet). The primary
   * learns the worker has one before `accept` gets it.
   */
  serve(info: { keys: number; hsm: unknown; pinRefused: boolean }, accept: (socket: Socket) => void): void;
}

export function workerChannel(): ClusterChannel {
  const send = process.send?.bind(process);
  if (send === undefined) throw new Error('workerChannel() runs only in a cluster worker');
  let nextId = 1;
  const pending = new Map<number, (m: PrimaryMessage) => void>();
  let refresh: (changes: StateChange[]) => Promise<void> = async () => undefined;
  let leader: (() => void) | undefined;
  let isLeader = false;
  let accept: ((socket: Socket) => void) | undefined;
  const post = (m: WorkerMessage) => {
    send(m);
  };
  const ask = (make: (id: number) => WorkerMessage): Promise<PrimaryMessage> => {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error('the cluster primary did not answer'));
      }, REPLY_TIMEOUT_MS);
      timer.unref();
      pending.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      post(make(id));
    });
  };
  process.on('message', (m: unknown, handle: unknown) => {
    if (!isKmsgwMessage(m)) return;
    const msg = m as PrimaryMessage;
    if (msg.type === 'kmsgw:connection') {
      const socket = handle as Socket | undefined;
      // Said at once, before the socket's first read can complete: until the
      // primary has it, it may hand the connection to another worker should
      // this one die.
      post({ type: 'kmsgw:connection-taken', id: msg.id });
      if (socket === undefined) return;
      if (accept === undefined) socket.destroy();
      else accept(socket);
    } else if (msg.type === 'kmsgw:refresh') {
      const id = msg.id;
      refresh(msg.changes).then(
        () => post({ type: 'kmsgw:refreshed', id }),
        () => post({ type: 'kmsgw:refreshed', id }),
      );
    } else if (msg.type === 'kmsgw:leader') {
      isLeader = true;
      leader?.();
    } else {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      p?.(msg);
    }
  });
  return {
    async metrics() {
      const m = await ask((id) => ({ type: 'kmsgw:metrics', id }));
      if (m.type !== 'kmsgw:metrics' || m.text === undefined) throw new Error(`cluster metrics failed: ${m.type === 'kmsgw:metrics' ? m.error : m.type}`);
      return m.text;
    },
    async publishStateChange(changes) {
      // A primary that does not answer (stopping) must not fail the change, which is committed on the token already.
      await ask((id) => ({ type: 'kmsgw:state-changed', id, changes })).catch(() => undefined);
    },
    onRefresh(fn) {
      refresh = fn;
    },
    onLeader(fn) {
      leader = fn;
      if (isLeader) fn();
    },
    serve(info, fn) {
      accept = fn;
      post({ type: 'kmsgw:serving', ...info });
    },
  };
}
