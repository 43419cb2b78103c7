/**
 * The HSM in domain terms. The keys layer names key material by an opaque
 * `name` it chose when it prepared the material; the HSM maps that name to
 * the token objects and caches their handles.
 *
 * Contract for errors (the implementation translates its own fault codes
 * into these KMS errors, once):
 * - a ciphertext that fails authentication or decoding: InvalidCiphertextException;
 * - key material missing on the token, token or session lost, device error,
 *   login lost: KeyUnavailableException (retryable);
 * - anything else unexpected: KMSInternalException.
 * Plaintext, keys and PINs never appear in an error message.
 */
import type { KeyObject } from 'node:crypto';
import type { KeySpec } from '../config/config.js';

export type OaepHash = 'sha1' | 'sha256';

/** Where the key material lives on the token: CKA_LABEL and/or CKA_ID. */
export interface HsmObjectRef {
  label?: string | undefined;
  id?: Buffer | undefined;
}

export interface PrepareKeyRequest {
  /** The keys layer's name for this key material (stable within the process). */
  name: string;
  /** Used in error messages, e.g. the key ARN. */
  displayName: string;
  ref: HsmObjectRef;
  keySpec: KeySpec;
  /** Generate the material on the token (sensitive, non-extractable) when nothing matches. */
  createIfMissing: boolean;
}

export type PrepareKeyResult =
  | { state: 'ready'; created: boolean }
  /** Nothing on the token matches and creation was not asked for. */
  | { state: 'missing' };

export interface RsaPublicKeyInfo {
  /** SubjectPublicKeyInfo, DER. */
  spki: Buffer;
  /** Modulus length in bytes (256 for RSA_2048). */
  modulusBytes: number;
  keyObject: KeyObject;
}

export interface Hsm {
  /** Finds (or creates) the material and caches its handles. Throws KMSInternalException for an ambiguous or mismatched object. */
  prepareKey(req: PrepareKeyRequest): Promise<PrepareKeyResult>;
  /** Random bytes from the token's RNG. */
  random(length: number): Promise<Buffer>;
  /** AES-256-GCM, 128-bit tag: returns ciphertext || tag. */
  aesGcmEncrypt(name: string, iv: Buffer, plaintext: Buffer, aad: Buffer): Promise<Buffer>;
  /** Input ciphertext || tag; InvalidCiphertextException when the tag does not verify. */
  aesGcmDecrypt(name: string, iv: Buffer, ciphertextAndTag: Buffer, aad: Buffer): Promise<Buffer>;
  /** RSAES-OAEP (MGF1 with the same hash, empty label); output is modulus-length bytes. */
  rsaOaepEncrypt(name: string, hash: OaepHash, plaintext: Buffer): Promise<Buffer>;
  rsaOaepDecrypt(name: string, hash: OaepHash, ciphertext: Buffer): Promise<Buffer>;
  rsaPublicKey(name: string): Promise<RsaPublicKeyInfo>;
  /** What the token can do, for logs and the README. */
  describe(): HsmDescription;
  /** Lets calls in flight finish, then releases the token. */
  close(): Promise<void>;
}

export interface HsmDescription {
  module: string;
  tokenLabel: string;
  /** How OAEP with each hash is done: natively by the token, or raw RSA on the token plus encoding in the gateway. */
  oaep: Record<OaepHash, 'native' | 'raw-rsa+gateway-encoding'>;
  sessionPoolSize: number;
}
