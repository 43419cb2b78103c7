/**
 * Canonical encoding of a KMS EncryptionContext, bound into AES-GCM as AAD.
 *
 * Contract: two contexts encode to the same bytes exactly when they hold the
 * same key/value pairs. Pairs are sorted by the UTF-8 bytes of the key, and
 * every string is length-prefixed (uint32 big-endian), preceded by the pair
 * count, so {"ab":"c"} and {"a":"bc"} differ (the public emulators that just
 * concatenate sorted keys and values let those collide). Changing this
 * encoding breaks every existing ciphertext: the golden-vector tests pin it.
 */
export type EncryptionContext = Record<string, string>;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

export function encodeEncryptionContext(context: EncryptionContext | undefined): Buffer {
  const pairs = Object.entries(context ?? {}).map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')] as const);
  pairs.sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Buffer[] = [u32(pairs.length)];
  for (const [k, v] of pairs) parts.push(u32(k.length), k, u32(v.length), v);
  return Buffer.concat(parts);
}
