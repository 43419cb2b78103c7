/**
 * EME-OAEP encoding and decoding (RFC 8017 section 7.1.1 step 2 and
 * section 7.1.2 step 3), done in the gateway around raw RSA.
 *
 * Why this exists: SoftHSM2 2.6.1 cannot do CKM_RSA_PKCS_OAEP with SHA-256.
 * For OAEP the gateway therefore asks the token for raw RSA
 * (CKM_RSA_X_509) and does the padding here. MGF1 always uses the same hash
 * as the label hash, and the label is always empty, as in AWS KMS
 * RSAES_OAEP_SHA_1 / RSAES_OAEP_SHA_256.
 *
 * This module is pure: no PKCS#11 and no I/O. node:crypto is used only for
 * hashing. The random seed for encoding is supplied by the caller (it comes
 * from the token's RNG).
 *
 * Decoding contract (see oaepDecode): any failure returns `null`, one and the
 * same result whatever check failed, and the work done does not depend on
 * which check failed. This matters because the decoder sits behind the
 * private key: a caller who can tell "first byte not zero" apart from "hash
 * mismatch" or "no separator", by the error or by timing, has a padding
 * oracle and can decrypt any ciphertext with a few thousand queries
 * (J. Manger, "A Chosen Ciphertext Attack on RSA Optimal Asymmetric
 * Encryption Padding (OAEP)", CRYPTO 2001; RFC 8017 section 7.1.2 note).
 */
import { createHash } from 'node:crypto';

export type OaepHash = 'sha1' | 'sha256';

/** Output length in bytes of each supported hash. */
const HASH_LENGTHS: Readonly<Record<OaepHash, number>> = Object.freeze({
  sha1: 20,
  sha256: 32,
});

/** Hash of the empty label, per hash (computed once). */
const EMPTY_LABEL_HASHES = new Map<OaepHash, Buffer>();

function hashLength(hash: OaepHash): number {
  // Guard against untyped callers: an unknown hash is a programming error,
  // not a decryption failure, so it throws even in oaepDecode.
  if (!Object.prototype.hasOwnProperty.call(HASH_LENGTHS, hash)) {
    throw new RangeError(`unsupported OAEP hash: ${String(hash)}`);
  }
  return HASH_LENGTHS[hash];
}

function emptyLabelHash(hash: OaepHash): Buffer {
  let lHash = EMPTY_LABEL_HASHES.get(hash);
  if (lHash === undefined) {
    lHash = createHash(hash).update(Buffer.alloc(0)).digest();
    EMPTY_LABEL_HASHES.set(hash, lHash);
  }
  return lHash;
}

/** MGF1 (RFC 8017 appendix B.2.1): maskLen bytes derived from seed. */
function mgf1(seed: Buffer, maskLen: number, hash: OaepHash, hLen: number): Buffer {
  const blocks = Math.ceil(maskLen / hLen);
  const out = Buffer.alloc(blocks * hLen);
  const counter = Buffer.alloc(4);
  for (let i = 0; i < blocks; i++) {
    counter.writeUInt32BE(i, 0);
    createHash(hash).update(seed).update(counter).digest().copy(out, i * hLen);
  }
  return out.subarray(0, maskLen);
}

/** dst[i] ^= mask[i] for every i (same lengths). */
function xorInto(dst: Buffer, mask: Buffer): void {
  for (let i = 0; i < dst.length; i++) {
    dst[i] = dst[i]! ^ mask[i]!;
  }
}

function checkModulusLength(k: number, hLen: number): void {
  if (!Number.isSafeInteger(k) || k < 2 * hLen + 2) {
    throw new RangeError(`modulus length ${k} bytes is too small for OAEP with a ${hLen}-byte hash`);
  }
}

/** Largest message OAEP can carry for a k-byte modulus: k - 2*hLen - 2. */
export function oaepMaxMessageLength(k: number, hash: OaepHash): number {
  const hLen = hashLength(hash);
  checkModulusLength(k, hLen);
  return k - 2 * hLen - 2;
}

/**
 * EME-OAEP encoding: returns EM of exactly k bytes (leading 0x00). seed must
 * be hLen random bytes (the caller takes it from the token's RNG). Throws
 * RangeError if message too long or seed wrong length.
 */
export function oaepEncode(message: Buffer, k: number, hash: OaepHash, seed: Buffer): Buffer {
  const hLen = hashLength(hash);
  const maxLen = oaepMaxMessageLength(k, hash);
  if (message.length > maxLen) {
    throw new RangeError(`message too long for OAEP: ${message.length} bytes, at most ${maxLen}`);
  }
  if (seed.length !== hLen) {
    throw new RangeError(`OAEP seed must be ${hLen} bytes, got ${seed.length}`);
  }

  // EM = 0x00 || maskedSeed (hLen) || maskedDB (k - hLen - 1)
  // DB = lHash || PS (zeros) || 0x01 || M
  const em = Buffer.alloc(k);
  const seedPart = em.subarray(1, 1 + hLen);
  const db = em.subarray(1 + hLen);
  emptyLabelHash(hash).copy(db, 0);
  db[db.length - message.length - 1] = 0x01;
  message.copy(db, db.length - message.length);
  seed.copy(seedPart, 0);

  xorInto(db, mgf1(seed, db.length, hash, hLen)); // maskedDB
  xorInto(seedPart, mgf1(db, hLen, hash, hLen)); // maskedSeed
  return em;
}

// Constant-time helpers on small non-negative integers (< 2^31). They use
// only arithmetic and bitwise operators, no comparison that the JIT could
// turn into a data-dependent branch.

/** 1 if x === 0, else 0. */
function ctIsZero(x: number): number {
  return (((x | -x) >>> 31) ^ 1) & 1;
}

/** 1 if a === b, else 0. */
function ctEq(a: number, b: number): number {
  return ctIsZero(a ^ b);
}

/** 0xffffffff (-1) if bit is 1, 0 if bit is 0. */
function ctMask(bit: number): number {
  return -(bit & 1);
}

/**
 * EME-OAEP decoding of EM (k bytes, the raw RSA output left-padded to k).
 * Returns the message, or null on ANY failure.
 *
 * Constant-time with respect to the padding: every check (Y byte, lHash',
 * the position of the 0x01 separator, non-zero PS bytes) runs over all bytes
 * and folds into one `bad` flag with bitwise operators; the only branch on it
 * is the single one at the end, and every failure gives the same `null`.
 * Returning distinguishable errors, or exiting early, would be a padding
 * oracle (Manger 2001). Only the public lengths (k, em.length) are checked
 * with an early exit. The length of the returned message is, of course,
 * visible once decoding succeeded.
 */
export function oaepDecode(em: Buffer, k: number, hash: OaepHash): Buffer | null {
  const hLen = hashLength(hash);
  // Public values: early exits are fine.
  if (!Number.isSafeInteger(k) || k < 2 * hLen + 2 || em.length !== k) {
    return null;
  }

  const dbLen = k - hLen - 1;
  const maskedSeed = em.subarray(1, 1 + hLen);
  const maskedDB = em.subarray(1 + hLen);

  const seed = Buffer.from(maskedSeed);
  xorInto(seed, mgf1(maskedDB, hLen, hash, hLen));
  const db = Buffer.from(maskedDB);
  xorInto(db, mgf1(seed, dbLen, hash, hLen));

  // bad != 0 means failure. Y must be 0x00.
  let bad = em[0]!;

  // lHash' must equal lHash; accumulate differences over all hLen bytes.
  const lHash = emptyLabelHash(hash);
  let diff = 0;
  for (let i = 0; i < hLen; i++) {
    diff |= db[i]! ^ lHash[i]!;
  }
  bad |= diff;

  // After lHash': PS (zeros), then 0x01, then M. Scan the whole rest of DB.
  // `looking` is 1 until the first 0x01 is seen; while looking, every byte
  // must be 0x00 or 0x01, and the index of the first 0x01 is recorded.
  let looking = 1;
  let sepIndex = 0;
  let invalid = 0;
  for (let i = hLen; i < dbLen; i++) {
    const b = db[i]!;
    const isOne = ctEq(b, 0x01);
    const isZero = ctIsZero(b);
    const found = looking & isOne;
    sepIndex |= ctMask(found) & i;
    invalid |= looking & ((isOne | isZero) ^ 1); // looking, and neither 0x00 nor 0x01
    looking &= isOne ^ 1;
  }
  bad |= invalid | looking; // `looking` still 1: no separator

  seed.fill(0);
  if (bad !== 0) {
    db.fill(0);
    return null;
  }
  const message = Buffer.from(db.subarray(sepIndex + 1));
  db.fill(0);
  return message;
}
