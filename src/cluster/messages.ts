/**
 * The messages between the cluster primary and its gateway workers (over
 * node:cluster's IPC channel). prom-client's own metric requests travel on
 * the same channel with their own `prom-client:` types.
 */
import type { StateChange } from '../keys/state-store.js';

/** Worker -> primary. */
export type WorkerMessage =
  /** Ready to serve: the primary hands it connections from now on, and announces the gateway once every worker is. */
  | { type: 'kmsgw:serving'; keys: number; hsm: unknown; pinRefused: boolean }
  /** The connection sent with `kmsgw:connection` is this worker's now: the primary closes its copy. */
  | { type: 'kmsgw:connection-taken'; id: number }
  /** GET /metrics arrived here: the primary answers with every worker's metrics, aggregated. */
  | { type: 'kmsgw:metrics'; id: number }
  /** This worker committed key state changes: every other worker must apply them before its client is answered. */
  | { type: 'kmsgw:state-changed'; id: number; changes: StateChange[] }
  /** Answer to a refresh request. */
  | { type: 'kmsgw:refreshed'; id: number };

/** Primary -> worker. */
export type PrimaryMessage =
  | { type: 'kmsgw:metrics'; id: number; text?: string; error?: string }
  | { type: 'kmsgw:state-synced'; id: number }
  /** Another worker's committed changes, to apply (KeyStore.applyChanges), then answer `refreshed`. */
  | { type: 'kmsgw:refresh'; id: number; changes: StateChange[] }
  /** This worker runs the key store's background work (deletions, automatic rotations): exactly one does. */
  | { type: 'kmsgw:leader' }
  /** A client connection (the socket travels with the message, not read from yet): answer `connection-taken`, then serve it. */
  | { type: 'kmsgw:connection'; id: number };

export function isKmsgwMessage(m: unknown): m is { type: string } {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('kmsgw:');
}
