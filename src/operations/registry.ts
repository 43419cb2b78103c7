/**
 * The explicit registry of KMS operations this gateway serves, keyed by the
 * exact name in `X-Amz-Target: TrentService.<Name>`.
 */
import { decrypt } from './decrypt.js';
import { encrypt } from './encrypt.js';
import type { Operation } from './operation.js';

export const operations: ReadonlyMap<string, Operation> = new Map<string, Operation>([
  ['Encrypt', encrypt as Operation],
  ['Decrypt', decrypt as Operation],
  // -- data keys, randomness, re-encryption --
  // -- key lifecycle, tags, public keys --
  // -- aliases and rotation --
  // -- unsupported operations --
]);
