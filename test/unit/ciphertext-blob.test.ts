import { createDecipheriv } from 'node:crypto';
import { expect } from 'chai';
import { blobAad, BLOB_OVERHEAD, blobHeader, parseBlob } from '../../src/keys/ciphertext-blob.js';

/**
 * Golden vectors for ciphertext blob format 1. They were produced once with
 * node:crypto and the key below; they must keep decrypting forever. If one of
 * these tests fails, the change broke every ciphertext already in the field.
 */
export const GOLDEN_KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
export const GOLDEN_KEY_ID = '11111111-2222-4333-8444-555555555555';
export const GOLDEN = [
  {
    story: 'no encryption context, material version 0',
    context: undefined,
    plaintext: 'golden plaintext',
    materialVersion: 0,
    blob: '011111111122224333844455555555555500000000a0a1a2a3a4a5a6a7a8a9aaab8177104920a522cf0e04eebd731fb8aa7efa31409886f0310787dd8871cb9b93',
  },
  {
    story: 'a two-pair context with non-ASCII text, material version 7',
    context: { purpose: 'golden', b: 'é∑' },
    plaintext: 'x',
    materialVersion: 7,
    blob: '011111111122224333844455555555555500000007a0a1a2a3a4a5a6a7a8a9aaab9e2cbe4dfaa50b9fddf11697ebb3018df1',
  },
] as const;

function openWithNode(blobHex: string, context: Record<string, string> | undefined): string {
  const parsed = parseBlob(Buffer.from(blobHex, 'hex'));
  if (parsed === undefined) throw new Error('golden blob no longer parses');
  const ct = parsed.ciphertextAndTag;
  const d = createDecipheriv('aes-256-gcm', GOLDEN_KEY, parsed.iv);
  d.setAAD(blobAad(parsed.header, context));
  d.setAuthTag(ct.subarray(ct.length - 16));
  return Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]).toString('utf8');
}

describe('the ciphertext blob, format 1', () => {
  for (const g of GOLDEN) {
    it(`still opens the golden vector with ${g.story}`, () => {
      expect(openWithNode(g.blob, g.context)).to.equal(g.plaintext);
      const parsed = parseBlob(Buffer.from(g.blob, 'hex'));
      expect(parsed?.keyId).to.equal(GOLDEN_KEY_ID);
      expect(parsed?.materialVersion).to.equal(g.materialVersion);
      expect(parsed?.iv.toString('hex')).to.equal('a0a1a2a3a4a5a6a7a8a9aaab');
    });
  }

  it('lays out version byte, key id, material version as documented in the README', () => {
    expect(blobHeader(GOLDEN_KEY_ID, 0x01020304).toString('hex')).to.equal('01' + '1111111122224333844455555555555' + '5' + '01020304');
    expect(BLOB_OVERHEAD).to.equal(1 + 16 + 4 + 12 + 16);
  });

  it('binds the header into the AAD, so a blob edited to name other material fails', () => {
    const g = GOLDEN[0];
    const edited = Buffer.from(g.blob, 'hex');
    edited[20] = 1; // material version 0 -> 1
    expect(() => openWithNode(edited.toString('hex'), g.context)).to.throw();
  });

  it('refuses what cannot be a format-1 blob: another version byte, or too short to hold a byte of ciphertext', () => {
    const g = Buffer.from(GOLDEN[0].blob, 'hex');
    const v2 = Buffer.from(g);
    v2[0] = 2;
    expect(parseBlob(v2)).to.equal(undefined);
    expect(parseBlob(g.subarray(0, BLOB_OVERHEAD))).to.equal(undefined);
    expect(parseBlob(Buffer.alloc(0))).to.equal(undefined);
    expect(parseBlob(g.subarray(0, BLOB_OVERHEAD + 1))).to.not.equal(undefined);
  });
});
