import { expect } from 'chai';
import {
  constants,
  createHash,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  randomInt,
  type KeyObject,
} from 'node:crypto';
import { oaepDecode, oaepEncode, oaepMaxMessageLength, type OaepHash } from '../../src/hsm/oaep.js';

const HASHES: readonly OaepHash[] = ['sha1', 'sha256'];
const H_LEN: Record<OaepHash, number> = { sha1: 20, sha256: 32 };

interface RsaKey {
  bits: number;
  k: number;
  publicKey: KeyObject;
  privateKey: KeyObject;
}

/** What the HSM does with CKM_RSA_X_509 on the public side: m^e mod n. */
function rawPublic(key: RsaKey, em: Buffer): Buffer {
  return publicEncrypt({ key: key.publicKey, padding: constants.RSA_NO_PADDING }, em);
}

/** What the HSM does with CKM_RSA_X_509 on the private side, left-padded to k. */
function rawPrivate(key: RsaKey, c: Buffer): Buffer {
  const out = privateDecrypt({ key: key.privateKey, padding: constants.RSA_NO_PADDING }, c);
  if (out.length >= key.k) return out;
  return Buffer.concat([Buffer.alloc(key.k - out.length), out]);
}

/** A second, independent MGF1 (RFC 8017 B.2.1), to build hand-made EMs. */
function mgf1(seed: Buffer, len: number, hash: OaepHash): Buffer {
  const parts: Buffer[] = [];
  for (let counter = 0; parts.length * H_LEN[hash] < len; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    parts.push(createHash(hash).update(Buffer.concat([seed, c])).digest());
  }
  return Buffer.concat(parts).subarray(0, len);
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Masks an arbitrary (possibly malformed) DB exactly as EME-OAEP would: EM = Y || maskedSeed || maskedDB. */
function maskDb(db: Buffer, seed: Buffer, hash: OaepHash, y = 0x00): Buffer {
  const maskedDb = xor(db, mgf1(seed, db.length, hash));
  const maskedSeed = xor(seed, mgf1(maskedDb, H_LEN[hash], hash));
  return Buffer.concat([Buffer.from([y]), maskedSeed, maskedDb]);
}

function lHash(hash: OaepHash): Buffer {
  return createHash(hash).update(Buffer.alloc(0)).digest();
}

/** A well-formed DB = lHash || PS || 0x01 || M for a k-byte modulus. */
function wellFormedDb(message: Buffer, k: number, hash: OaepHash): Buffer {
  const hLen = H_LEN[hash];
  const ps = Buffer.alloc(k - message.length - 2 * hLen - 2);
  return Buffer.concat([lHash(hash), ps, Buffer.from([0x01]), message]);
}

function flipByte(buf: Buffer, index: number): Buffer {
  const copy = Buffer.from(buf);
  copy[index] = copy[index]! ^ 0x5a;
  return copy;
}

describe('OAEP in the gateway (RFC 8017 EME-OAEP, MGF1 with the same hash, empty label)', function () {
  const keys: RsaKey[] = [];

  before(function () {
    this.timeout(120_000);
    for (const bits of [2048, 3072]) {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
      keys.push({ bits, k: bits / 8, publicKey, privateKey });
    }
  });

  describe('interop with node:crypto (OpenSSL) RSA-OAEP', function () {
    for (const bits of [2048, 3072]) {
      for (const hash of HASHES) {
        const key = (): RsaKey => keys.find((k) => k.bits === bits)!;

        it(`an EM encoded here, raw-RSA encrypted, decrypts with node:crypto's RSA-${bits} OAEP-${hash} private key`, function () {
          const { k } = key();
          const max = oaepMaxMessageLength(k, hash);
          for (const len of [0, 1, 16, 32, max - 1, max]) {
            const message = randomBytes(len);
            const em = oaepEncode(message, k, hash, randomBytes(H_LEN[hash]));
            const ciphertext = rawPublic(key(), em);
            const plain = privateDecrypt(
              { key: key().privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash },
              ciphertext,
            );
            expect(plain.equals(message), `length ${len}`).to.equal(true);
          }
        });

        it(`a node:crypto RSA-${bits} OAEP-${hash} ciphertext, raw-RSA decrypted, decodes here to the message`, function () {
          const { k } = key();
          const max = oaepMaxMessageLength(k, hash);
          for (const len of [0, 1, 16, 32, max - 1, max]) {
            const message = randomBytes(len);
            const ciphertext = publicEncrypt(
              { key: key().publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash },
              message,
            );
            const em = rawPrivate(key(), ciphertext);
            expect(em.length).to.equal(k);
            const decoded = oaepDecode(em, k, hash);
            expect(decoded, `length ${len}`).to.not.equal(null);
            expect(decoded!.equals(message), `length ${len}`).to.equal(true);
          }
        });
      }
    }

    it('a node:crypto ciphertext made with SHA-1 does not decode as SHA-256, and vice versa', function () {
      const key = keys[0]!;
      for (const [encHash, decHash] of [
        ['sha1', 'sha256'],
        ['sha256', 'sha1'],
      ] as const) {
        const ciphertext = publicEncrypt(
          { key: key.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: encHash },
          Buffer.from('data key material'),
        );
        expect(oaepDecode(rawPrivate(key, ciphertext), key.k, decHash)).to.equal(null);
      }
    });
  });

  describe('message length limits', function () {
    const expected: Array<[number, OaepHash, number]> = [
      [256, 'sha1', 214],
      [256, 'sha256', 190],
      [384, 'sha1', 342],
      [384, 'sha256', 318],
      [512, 'sha1', 470],
      [512, 'sha256', 446],
    ];
    for (const [k, hash, max] of expected) {
      it(`a ${k * 8}-bit key carries at most ${max} bytes with OAEP-${hash}, and one more throws RangeError`, function () {
        expect(oaepMaxMessageLength(k, hash)).to.equal(max);
        const seed = randomBytes(H_LEN[hash]);
        const em = oaepEncode(randomBytes(max), k, hash, seed);
        expect(em.length).to.equal(k);
        expect(oaepDecode(em, k, hash)!.length).to.equal(max);
        expect(() => oaepEncode(randomBytes(max + 1), k, hash, seed)).to.throw(RangeError);
      });
    }

    for (const hash of HASHES) {
      it(`an empty message encodes and decodes with OAEP-${hash}`, function () {
        const em = oaepEncode(Buffer.alloc(0), 256, hash, randomBytes(H_LEN[hash]));
        expect(em.length).to.equal(256);
        const decoded = oaepDecode(em, 256, hash);
        expect(decoded).to.be.instanceOf(Buffer);
        expect(decoded!.length).to.equal(0);
      });
    }

    it('a seed that is not hLen bytes throws RangeError', function () {
      const m = Buffer.from('x');
      expect(() => oaepEncode(m, 256, 'sha256', randomBytes(20))).to.throw(RangeError);
      expect(() => oaepEncode(m, 256, 'sha256', randomBytes(33))).to.throw(RangeError);
      expect(() => oaepEncode(m, 256, 'sha1', randomBytes(32))).to.throw(RangeError);
      expect(() => oaepEncode(m, 256, 'sha1', Buffer.alloc(0))).to.throw(RangeError);
    });

    it('a modulus too small for the hash throws RangeError; the smallest one carries exactly 0 bytes', function () {
      expect(oaepMaxMessageLength(66, 'sha256')).to.equal(0);
      expect(oaepMaxMessageLength(42, 'sha1')).to.equal(0);
      expect(() => oaepMaxMessageLength(65, 'sha256')).to.throw(RangeError);
      expect(() => oaepMaxMessageLength(41, 'sha1')).to.throw(RangeError);
      expect(() => oaepEncode(Buffer.alloc(0), 65, 'sha256', randomBytes(32))).to.throw(RangeError);
      const em = oaepEncode(Buffer.alloc(0), 66, 'sha256', randomBytes(32));
      expect(oaepDecode(em, 66, 'sha256')!.length).to.equal(0);
    });
  });

  describe('encoding', function () {
    it('EM is k bytes, starts with 0x00, and is deterministic for a given seed and different for another seed', function () {
      const message = Buffer.from('hello, HSM');
      const seed = randomBytes(32);
      const a = oaepEncode(message, 256, 'sha256', seed);
      const b = oaepEncode(message, 256, 'sha256', Buffer.from(seed));
      const c = oaepEncode(message, 256, 'sha256', randomBytes(32));
      expect(a.length).to.equal(256);
      expect(a[0]).to.equal(0x00);
      expect(a.equals(b)).to.equal(true);
      expect(a.equals(c)).to.equal(false);
    });

    it('EM matches an independent construction of 0x00 || maskedSeed || maskedDB', function () {
      for (const hash of HASHES) {
        const message = randomBytes(50);
        const seed = randomBytes(H_LEN[hash]);
        const expected = maskDb(wellFormedDb(message, 384, hash), seed, hash);
        expect(oaepEncode(message, 384, hash, seed).equals(expected)).to.equal(true);
      }
    });

    it('does not modify the message or the seed it is given', function () {
      const message = Buffer.from('unchanged');
      const seed = Buffer.alloc(32, 7);
      oaepEncode(message, 256, 'sha256', seed);
      expect(message.toString()).to.equal('unchanged');
      expect(seed.equals(Buffer.alloc(32, 7))).to.equal(true);
    });
  });

  describe('decoding rejects every malformed EM with the same null', function () {
    const k = 256;

    for (const hash of HASHES) {
      const hLen = H_LEN[hash];
      const fresh = (): { message: Buffer; em: Buffer } => {
        const message = randomBytes(48);
        return { message, em: oaepEncode(message, k, hash, randomBytes(hLen)) };
      };

      it(`OAEP-${hash}: a good EM decodes, and the EM buffer is left untouched`, function () {
        const { message, em } = fresh();
        const before = Buffer.from(em);
        expect(oaepDecode(em, k, hash)!.equals(message)).to.equal(true);
        expect(em.equals(before)).to.equal(true);
      });

      it(`OAEP-${hash}: a non-zero Y byte gives null`, function () {
        const { em } = fresh();
        for (const y of [0x01, 0x80, 0xff]) {
          const bad = Buffer.from(em);
          bad[0] = y;
          expect(oaepDecode(bad, k, hash)).to.equal(null);
        }
      });

      it(`OAEP-${hash}: a tampered byte anywhere in maskedSeed gives null`, function () {
        const { em } = fresh();
        for (const i of [1, 2, Math.floor(hLen / 2), hLen]) {
          expect(oaepDecode(flipByte(em, i), k, hash), `index ${i}`).to.equal(null);
        }
      });

      it(`OAEP-${hash}: a tampered byte anywhere in maskedDB (lHash, PS, separator or message) gives null`, function () {
        const { em } = fresh();
        for (const i of [hLen + 1, hLen + 2, 2 * hLen, 2 * hLen + 1, k - 50, k - 49, k - 48, k - 2, k - 1]) {
          expect(oaepDecode(flipByte(em, i), k, hash), `index ${i}`).to.equal(null);
        }
      });

      it(`OAEP-${hash}: a DB with no 0x01 separator gives null`, function () {
        const allZero = Buffer.concat([lHash(hash), Buffer.alloc(k - hLen - 1 - hLen)]);
        expect(oaepDecode(maskDb(allZero, randomBytes(hLen), hash), k, hash)).to.equal(null);
        // Only 0x00 and 0x02 after lHash: still no separator.
        const noOne = Buffer.concat([lHash(hash), Buffer.alloc(k - hLen - 1 - hLen, 0x02)]);
        expect(oaepDecode(maskDb(noOne, randomBytes(hLen), hash), k, hash)).to.equal(null);
      });

      it(`OAEP-${hash}: a non-zero byte in PS before the separator gives null`, function () {
        const db = wellFormedDb(Buffer.from('msg'), k, hash);
        db[hLen + 3] = 0x02; // inside PS, well before the 0x01
        expect(oaepDecode(maskDb(db, randomBytes(hLen), hash), k, hash)).to.equal(null);
        const db2 = wellFormedDb(Buffer.from('msg'), k, hash);
        db2[hLen] = 0xff; // first byte after lHash'
        expect(oaepDecode(maskDb(db2, randomBytes(hLen), hash), k, hash)).to.equal(null);
      });

      it(`OAEP-${hash}: a wrong lHash' (non-empty label) gives null, even with perfect PS and separator`, function () {
        const db = wellFormedDb(Buffer.from('msg'), k, hash);
        createHash(hash).update('label').digest().copy(db, 0);
        expect(oaepDecode(maskDb(db, randomBytes(hLen), hash), k, hash)).to.equal(null);
      });

      it(`OAEP-${hash}: the separator may sit right after lHash' (maximum-length message) or last (empty message)`, function () {
        const max = oaepMaxMessageLength(k, hash);
        const full = randomBytes(max);
        expect(oaepDecode(maskDb(wellFormedDb(full, k, hash), randomBytes(hLen), hash), k, hash)!.equals(full)).to.equal(
          true,
        );
        expect(oaepDecode(maskDb(wellFormedDb(Buffer.alloc(0), k, hash), randomBytes(hLen), hash), k, hash)!.length).to.equal(0);
      });

      it(`OAEP-${hash}: only the first 0x01 counts as the separator; later 0x00/0x01 bytes belong to the message`, function () {
        const message = Buffer.from([0x00, 0x01, 0x00, 0x01, 0x01]);
        const em = maskDb(wellFormedDb(message, k, hash), randomBytes(hLen), hash);
        expect(oaepDecode(em, k, hash)!.equals(message)).to.equal(true);
      });

      it(`OAEP-${hash}: an EM of the wrong length, or a k too small for the hash, gives null`, function () {
        const { em } = fresh();
        expect(oaepDecode(em.subarray(1), k, hash)).to.equal(null);
        expect(oaepDecode(Buffer.concat([Buffer.alloc(1), em]), k, hash)).to.equal(null);
        expect(oaepDecode(em, k - 1, hash)).to.equal(null);
        expect(oaepDecode(Buffer.alloc(0), 0, hash)).to.equal(null);
        expect(oaepDecode(Buffer.alloc(2 * hLen + 1), 2 * hLen + 1, hash)).to.equal(null);
      });
    }

    it('an EM encoded with SHA-1 does not decode with SHA-256, and vice versa', function () {
      const message = Buffer.from('wrapped key');
      expect(oaepDecode(oaepEncode(message, k, 'sha1', randomBytes(20)), k, 'sha256')).to.equal(null);
      expect(oaepDecode(oaepEncode(message, k, 'sha256', randomBytes(32)), k, 'sha1')).to.equal(null);
    });

    it('random garbage of the right length gives null', function () {
      for (let i = 0; i < 50; i++) {
        const em = randomBytes(k);
        em[0] = 0;
        expect(oaepDecode(em, k, 'sha256')).to.equal(null);
      }
    });
  });

  describe('randomized round trips', function () {
    it('200 random messages of random lengths, hashes and modulus sizes survive encode then decode', function () {
      const sizes = [66, 128, 129, 256, 300, 384, 512];
      for (let n = 0; n < 200; n++) {
        const hash = HASHES[randomInt(HASHES.length)]!;
        const k = sizes[randomInt(sizes.length)]!; // 66 is the smallest k that OAEP-SHA-256 allows
        const len = randomInt(oaepMaxMessageLength(k, hash) + 1);
        const message = randomBytes(len);
        const em = oaepEncode(message, k, hash, randomBytes(H_LEN[hash]));
        const where = `case ${n}: k=${k} hash=${hash} len=${len} message=${message.toString('hex')}`;
        expect(em.length, where).to.equal(k);
        expect(em[0], where).to.equal(0);
        const decoded = oaepDecode(em, k, hash);
        expect(decoded, where).to.not.equal(null);
        expect(decoded!.equals(message), where).to.equal(true);
      }
    });

    it('50 random messages round-trip through a real RSA-2048 key both ways, with a random hash each time', function () {
      const key = keys[0]!;
      for (let n = 0; n < 50; n++) {
        const hash = HASHES[randomInt(HASHES.length)]!;
        const message = randomBytes(randomInt(oaepMaxMessageLength(key.k, hash) + 1));
        const where = `case ${n}: hash=${hash} message=${message.toString('hex')}`;
        const ours = rawPublic(key, oaepEncode(message, key.k, hash, randomBytes(H_LEN[hash])));
        const theirs = privateDecrypt(
          { key: key.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash },
          ours,
        );
        expect(theirs.equals(message), where).to.equal(true);
        const c = publicEncrypt({ key: key.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, message);
        expect(oaepDecode(rawPrivate(key, c), key.k, hash)!.equals(message), where).to.equal(true);
      }
    });
  });
});
