/**
 * The contract every Hsm implementation keeps, run against the PKCS#11 one
 * on a real SoftHSM2 token and against the in-memory fake used for fault
 * injection, so the fake cannot drift from what the token really does.
 */
import { constants, createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { InvalidCiphertextException, KeyUnavailableException, KmsError } from '../../src/errors.js';
import type { Hsm, PrepareKeyRequest } from '../../src/hsm/hsm.js';

async function rejectsWith(p: Promise<unknown>, type: new (...a: never[]) => KmsError): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(type);
    return;
  }
  throw new Error(`expected ${type.name}`);
}

export function hsmContract(name: string, open: () => Promise<Hsm>): void {
  describe(`the Hsm contract: ${name}`, function () {
    this.timeout(60_000);
    let hsm: Hsm;
    const run = randomUUID().slice(0, 8);
    const req = (n: string, keySpec: PrepareKeyRequest['keySpec'], createIfMissing = true): PrepareKeyRequest => ({
      name: `${n}-${run}`,
      displayName: `key ${n}`,
      keySpec,
      createIfMissing,
      ref: { label: `contract-${n}-${run}` },
    });

    before(async () => {
      hsm = await open();
      await hsm.prepareKey(req('aes', 'SYMMETRIC_DEFAULT'));
      await hsm.prepareKey(req('rsa', 'RSA_2048'));
    });
    after(() => hsm?.close());

    it('creates missing material when asked, finds it again under another name, and reports it missing otherwise', async () => {
      expect(await hsm.prepareKey(req('made', 'SYMMETRIC_DEFAULT'))).to.deep.equal({ state: 'ready', created: true });
      expect(await hsm.prepareKey({ ...req('made', 'SYMMETRIC_DEFAULT'), name: `again-${run}` })).to.deep.equal({ state: 'ready', created: false });
      expect(await hsm.prepareKey(req('absent', 'SYMMETRIC_DEFAULT', false))).to.deep.equal({ state: 'missing' });
      await rejectsWith(hsm.aesGcmEncrypt(`absent-${run}`, Buffer.alloc(12), Buffer.from('x'), Buffer.alloc(0)), KeyUnavailableException);
    });

    it('generates material under a label the caller just made (newLabel) without looking first: usable at once, found again under another name', async () => {
      expect(await hsm.prepareKey({ ...req('fresh', 'SYMMETRIC_DEFAULT'), newLabel: true })).to.deep.equal({ state: 'ready', created: true });
      const sealed = await hsm.aesGcmSeal(`fresh-${run}`, Buffer.from('new key'), Buffer.alloc(0));
      expect(await hsm.prepareKey({ ...req('fresh', 'SYMMETRIC_DEFAULT', false), name: `fresh-again-${run}` })).to.deep.equal({ state: 'ready', created: false });
      expect((await hsm.aesGcmDecrypt(`fresh-again-${run}`, sealed.iv, sealed.sealed, Buffer.alloc(0))).toString()).to.equal('new key');
    });

    it('finds many keys at once: present ones ready (and usable), absent ones missing, an ambiguous label failed', async () => {
      const present = Array.from({ length: 6 }, (_, i) => req(`bulk${i}`, i % 3 === 0 ? 'RSA_2048' : 'SYMMETRIC_DEFAULT'));
      for (const p of present) await hsm.prepareKey(p);
      await hsm.prepareKey({ ...req('twin', 'SYMMETRIC_DEFAULT'), name: `twin-a-${run}` });
      await hsm.prepareKey({ ...req('twin', 'SYMMETRIC_DEFAULT'), name: `twin-b-${run}`, ref: { label: `contract-twin-${run}`, id: Buffer.from('01', 'hex') } });
      const asks = [
        ...present.map((p) => ({ ...p, name: `found-${p.name}`, createIfMissing: false })),
        req('nowhere1', 'SYMMETRIC_DEFAULT', false),
        req('nowhere2', 'RSA_3072', false),
        req('twin', 'SYMMETRIC_DEFAULT', false),
      ];
      const results = await hsm.findKeys(asks);
      expect(results.slice(0, 6)).to.deep.equal(present.map(() => ({ state: 'ready', created: false })));
      expect(results.slice(6, 8)).to.deep.equal([{ state: 'missing' }, { state: 'missing' }]);
      expect(results[8]?.state).to.equal('failed');
      const iv = await hsm.random(12);
      const ct = await hsm.aesGcmEncrypt(`found-bulk1-${run}`, iv, Buffer.from('bulk'), Buffer.alloc(0));
      expect((await hsm.aesGcmDecrypt(`bulk1-${run}`, iv, ct, Buffer.alloc(0))).toString()).to.equal('bulk');
      expect((await hsm.rsaPublicKey(`found-bulk0-${run}`)).modulusBytes).to.equal(256);
    });

    it('round-trips AES-256-GCM with a 16-byte tag appended', async () => {
      const iv = await hsm.random(12);
      const ct = await hsm.aesGcmEncrypt(`aes-${run}`, iv, Buffer.from('contract'), Buffer.from('aad'));
      expect(ct.length).to.equal(8 + 16);
      expect((await hsm.aesGcmDecrypt(`aes-${run}`, iv, ct, Buffer.from('aad'))).toString()).to.equal('contract');
    });

    it('seals with a fresh 12-byte IV of its own per call, which decrypts with that IV and AAD only', async () => {
      const a = await hsm.aesGcmSeal(`aes-${run}`, Buffer.from('sealed once'), Buffer.from('aad'));
      const b = await hsm.aesGcmSeal(`aes-${run}`, Buffer.from('sealed once'), Buffer.from('aad'));
      expect(a.iv.length).to.equal(12);
      expect(a.sealed.length).to.equal(11 + 16);
      expect(a.iv.equals(b.iv), 'two seals drew the same IV').to.equal(false);
      expect(a.sealed.equals(b.sealed)).to.equal(false);
      expect((await hsm.aesGcmDecrypt(`aes-${run}`, a.iv, a.sealed, Buffer.from('aad'))).toString()).to.equal('sealed once');
      await rejectsWith(hsm.aesGcmDecrypt(`aes-${run}`, b.iv, a.sealed, Buffer.from('aad')), InvalidCiphertextException);
      await rejectsWith(hsm.aesGcmDecrypt(`aes-${run}`, a.iv, a.sealed, Buffer.from('other')), InvalidCiphertextException);
      expect(await hsm.prepareKey(req('unsealed', 'SYMMETRIC_DEFAULT', false))).to.deep.equal({ state: 'missing' });
      await rejectsWith(hsm.aesGcmSeal(`unsealed-${run}`, Buffer.from('x'), Buffer.alloc(0)), KeyUnavailableException);
    });

    it('seals fresh random bytes (a data key) with its own IV in one call: they decrypt to the bytes it returned', async () => {
      const a = await hsm.aesGcmSealRandom(`aes-${run}`, 32, Buffer.from('dk'));
      const b = await hsm.aesGcmSealRandom(`aes-${run}`, 32, Buffer.from('dk'));
      expect(a.plaintext.length).to.equal(32);
      expect(a.iv.length).to.equal(12);
      expect(a.sealed.length).to.equal(32 + 16);
      expect(a.plaintext.equals(b.plaintext), 'two data keys were equal').to.equal(false);
      expect(a.iv.equals(b.iv)).to.equal(false);
      expect((await hsm.aesGcmDecrypt(`aes-${run}`, a.iv, a.sealed, Buffer.from('dk'))).equals(a.plaintext)).to.equal(true);
      expect((await hsm.aesGcmSealRandom(`aes-${run}`, 1, Buffer.alloc(0))).plaintext.length).to.equal(1);
      expect((await hsm.aesGcmSealRandom(`aes-${run}`, 1024, Buffer.alloc(0))).sealed.length).to.equal(1024 + 16);
    });

    it('answers InvalidCiphertextException for another AAD, a flipped bit, a short input', async () => {
      const iv = await hsm.random(12);
      const ct = await hsm.aesGcmEncrypt(`aes-${run}`, iv, Buffer.from('contract'), Buffer.from('aad'));
      await rejectsWith(hsm.aesGcmDecrypt(`aes-${run}`, iv, ct, Buffer.from('other')), InvalidCiphertextException);
      const flipped = Buffer.from(ct);
      flipped[0]! ^= 1;
      await rejectsWith(hsm.aesGcmDecrypt(`aes-${run}`, iv, flipped, Buffer.from('aad')), InvalidCiphertextException);
      await rejectsWith(hsm.aesGcmDecrypt(`aes-${run}`, iv, ct.subarray(0, 10), Buffer.from('aad')), InvalidCiphertextException);
    });

    for (const hash of ['sha1', 'sha256'] as const) {
      it(`does standard RSA-OAEP-${hash}: its ciphertext opens with the private key elsewhere, and offline ciphertext opens here`, async () => {
        const pub = await hsm.rsaPublicKey(`rsa-${run}`);
        expect(pub.modulusBytes).to.equal(256);
        expect(createPublicKey({ key: pub.spki, format: 'der', type: 'spki' }).asymmetricKeyDetails?.modulusLength).to.equal(2048);
        const ct = await hsm.rsaOaepEncrypt(`rsa-${run}`, hash, Buffer.from('oaep'));
        expect(ct.length).to.equal(256);
        expect((await hsm.rsaOaepDecrypt(`rsa-${run}`, hash, ct)).toString()).to.equal('oaep');
        const offline = publicEncrypt({ key: pub.keyObject, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, Buffer.from('offline'));
        expect((await hsm.rsaOaepDecrypt(`rsa-${run}`, hash, offline)).toString()).to.equal('offline');
      });
    }

    it('answers InvalidCiphertextException for RSA ciphertext of the other hash, of the wrong length, or random', async () => {
      const ct = await hsm.rsaOaepEncrypt(`rsa-${run}`, 'sha1', Buffer.from('oaep'));
      await rejectsWith(hsm.rsaOaepDecrypt(`rsa-${run}`, 'sha256', ct), InvalidCiphertextException);
      await rejectsWith(hsm.rsaOaepDecrypt(`rsa-${run}`, 'sha1', ct.subarray(1)), InvalidCiphertextException);
      const random = await hsm.random(256);
      random[0] = 0;
      await rejectsWith(hsm.rsaOaepDecrypt(`rsa-${run}`, 'sha1', random), InvalidCiphertextException);
    });

    it('generates a data key pair whose private and public halves match', async () => {
      const pair = await hsm.generateDataKeyPair('RSA_2048');
      const privateKey = createPrivateKey({ key: pair.privateKeyPkcs8, format: 'der', type: 'pkcs8' });
      const publicKey = createPublicKey({ key: pair.publicKeySpki, format: 'der', type: 'spki' });
      const ct = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, Buffer.from('pair'));
      expect(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, ct).toString()).to.equal('pair');
    });

    it('destroys key material: afterwards the key is unavailable and not found again', async () => {
      await hsm.prepareKey(req('doomed', 'SYMMETRIC_DEFAULT'));
      await hsm.destroyKey(`doomed-${run}`);
      await hsm.destroyKey(`doomed-${run}`);
      expect(await hsm.prepareKey(req('doomed', 'SYMMETRIC_DEFAULT', false))).to.deep.equal({ state: 'missing' });
    });

    it('forgets a key\'s cached handles (and session copies) without touching its token object: it works again, found afresh', async () => {
      const sealed = await hsm.aesGcmSeal(`aes-${run}`, Buffer.from('remembered'), Buffer.alloc(0));
      await hsm.forgetKey(`aes-${run}`);
      await hsm.forgetKey(`aes-${run}`);
      expect((await hsm.aesGcmDecrypt(`aes-${run}`, sealed.iv, sealed.sealed, Buffer.alloc(0))).toString()).to.equal('remembered');
      await hsm.forgetKey(`rsa-${run}`);
      expect((await hsm.rsaPublicKey(`rsa-${run}`)).modulusBytes).to.equal(256);
      expect(await hsm.prepareKey(req('aes', 'SYMMETRIC_DEFAULT', false))).to.deep.equal({ state: 'ready', created: false });
    });

    it('stores records: create, list, read, delete (twice is fine), read of a deleted one is undefined', async () => {
      const label = `kmsgw/v1/key/0/contract/${run}`;
      const ref = await hsm.createRecord(label, Buffer.from('{"v":1}'));
      expect((await hsm.listRecords()).filter((r) => r.label === label)).to.deep.equal([{ ref, label }]);
      expect((await hsm.readRecord(ref))?.toString()).to.equal('{"v":1}');
      await hsm.deleteRecord(ref);
      await hsm.deleteRecord(ref);
      expect(await hsm.readRecord(ref)).to.equal(undefined);
      expect((await hsm.listRecords()).filter((r) => r.label === label)).to.deep.equal([]);
    });

    it('keeps a state mark apart from the records: written, read back, changed in place, never listed', async () => {
      const first = Buffer.from(`mark-${run}-1`);
      const second = Buffer.from(`mark-${run}-2`);
      const records = (await hsm.listRecords()).length;
      await hsm.writeStateMark(first);
      expect((await hsm.readStateMark())?.toString()).to.equal(first.toString());
      await hsm.writeStateMark(second);
      expect((await hsm.readStateMark())?.toString()).to.equal(second.toString());
      expect((await hsm.listRecords()).length).to.equal(records);
    });

    it('gives random bytes of the asked length', async () => {
      expect((await hsm.random(1)).length).to.equal(1);
      expect((await hsm.random(1024)).length).to.equal(1024);
    });
  });
}
