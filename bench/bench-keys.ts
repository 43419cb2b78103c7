/** The keys the bench's token-limit and reference-server processes use on the bench token (made by `token-limit.js setup`). */
import type { PrepareKeyRequest } from '../src/hsm/hsm.js';

export const BENCH_AES: PrepareKeyRequest = {
  name: 'bench-aes',
  displayName: 'bench AES-256 key',
  ref: { label: 'kmsgw-bench-aes' },
  keySpec: 'SYMMETRIC_DEFAULT',
  createIfMissing: true,
};
export const BENCH_RSA: PrepareKeyRequest = {
  name: 'bench-rsa',
  displayName: 'bench RSA-2048 key',
  ref: { label: 'kmsgw-bench-rsa-2048' },
  keySpec: 'RSA_2048',
  createIfMissing: true,
};
