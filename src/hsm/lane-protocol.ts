/**
 * The messages between GuardedHsm's lanes and the threads that run them.
 * Structured clone turns a Buffer into a plain Uint8Array; `revive` turns
 * them back (in plain objects and arrays only: a KeyObject crosses as is).
 * Errors cross as their KMS wire name and message and are rebuilt as the
 * same KmsError class on the other side.
 */
import * as errors from '../errors.js';
import { KmsError, KMSInternalException, KeyUnavailableException } from '../errors.js';

export type LaneMethod =
  | 'recover'
  | 'close'
  | 'prepareKey'
  | 'findKeys'
  | 'random'
  | 'aesGcmSeal'
  | 'aesGcmSealRandom'
  | 'aesGcmEncrypt'
  | 'aesGcmDecrypt'
  | 'rsaOaepEncrypt'
  | 'rsaOaepDecrypt'
  | 'rsaPublicKey'
  | 'generateDataKeyPair'
  | 'destroyKey'
  | 'forgetKey'
  | 'listRecords'
  | 'readRecord'
  | 'createRecord'
  | 'deleteRecord'
  | 'readStateMark'
  | 'writeStateMark'
  | 'describe';

export interface LaneRequest {
  id: number;
  /** Which of the thread's lanes (PKCS#11 instances) runs the call. */
  lane: number;
  method: LaneMethod;
  args: unknown[];
}

export interface WireError {
  name: string;
  message: string;
  tokenFault?: boolean;
  permanent?: boolean;
}

export type LaneReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

export interface LaneLog {
  log: { level: 'info' | 'warn' | 'error'; obj: object; msg: string };
}

/**
 * Makes `v` cheap to post: structured clone copies a typed array's whole
 * backing ArrayBuffer, and a small Buffer is usually a view into Node's
 * shared 8 KiB pool (or a request body), so each byte view is copied once
 * into an ArrayBuffer of its own size and transferred, not cloned.
 */
export function pack(v: unknown, transfer: ArrayBuffer[]): unknown {
  if (v instanceof Uint8Array) {
    const own = new Uint8Array(v);
    transfer.push(own.buffer);
    return own;
  }
  if (Array.isArray(v)) return v.map((x) => pack(x, transfer));
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = pack(x, transfer);
    return out;
  }
  return v;
}

export function revive(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(revive);
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = revive(x);
    return out;
  }
  return v;
}

export function toWireError(e: unknown): WireError {
  if (e instanceof KeyUnavailableException) return { name: e.name, message: e.message, tokenFault: e.tokenFault, permanent: e.permanent };
  if (e instanceof KmsError) return { name: e.name, message: e.message };
  return { name: 'KMSInternalException', message: 'An internal error occurred.' };
}

const byName = errors as unknown as Record<string, unknown>;

export function fromWireError(w: WireError): KmsError {
  if (w.name === 'KeyUnavailableException') return new KeyUnavailableException(w.message, { tokenFault: w.tokenFault ?? false, permanent: w.permanent ?? false });
  const cls = byName[w.name];
  if (typeof cls === 'function' && cls.prototype instanceof KmsError) {
    const err = new (cls as new (m?: string) => KmsError)(w.message === '' ? undefined : w.message);
    return err;
  }
  return new KMSInternalException();
}
