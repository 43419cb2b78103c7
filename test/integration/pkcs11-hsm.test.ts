/**
 * The PKCS#11 Hsm on the real SoftHSM2 test token (in-process; scripts/test.sh
 * sets SOFTHSM2_CONF, KMSGW_TEST_PIN_FILE and KMSGW_TEST_TOKEN_LABEL).
 */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pkcs11js from 'pkcs11js';
import { KeyUnavailableException, InvalidCiphertextException, KmsError } from '../../src/errors.js';
import { Pkcs11Hsm } from '../../src/hsm/pkcs11/pkcs11-hsm.js';
import { parseBlob, blobAad } from '../../src/keys/ciphertext-blob.js';
import { decryptSymmetric, encryptSymmetric } from '../../src/keys/key-crypto.js';
import { KeyStore } from '../../src/keys/key-store.js';
import { GOLDEN, GOLDEN_KEY, GOLDEN_KEY_ID } from '../unit/ciphertext-blob.test.js';
import type { KeyConfig } from '../../src/config/config.js';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const quiet = { info() {}, warn() {}, error() {} };

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set: run the tests through make test (scripts/test.sh)`);
  return v;
}

/** A second, independent PKCS#11 client on the same token: "someone else" changing objects behind the gateway's back. */
class TokenAdmin {
  readonly lib = new pkcs11js.PKCS11();
  session!: Buffer;
  open(): void {
    this.lib.load(MODULE);
    try {
      this.lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      if ((e as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
    }
    const slot = this.lib.C_GetSlotList(true).find((s) => this.lib.C_GetTokenInfo(s).label.trim() === env('KMSGW_TEST_TOKEN_LABEL'));
    if (slot === undefined) throw new Error('test token not found');
    this.session = this.lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      this.lib.C_Login(this.session, pkcs11js.CKU_USER, readFileSync(env('KMSGW_TEST_PIN_FILE'), 'utf8').trim());
    } catch (e) {
      if ((e as { code?: number }).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw e;
    }
  }
  importAes(label: string, value: Buffer): void {
    this.lib.C_CreateObject(this.session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: true },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_VALUE, value },
    ]);
  }
  destroyByLabel(label: string): number {
    this.lib.C_FindObjectsInit(this.session, [{ type: pkcs11js.CKA_LABEL, value: label }]);
    const handles = this.lib.C_FindObjects(this.session, 10);
    this.lib.C_FindObjectsFinal(this.session);
    for (const h of handles) this.lib.C_DestroyObject(this.session, h);
    return handles.length;
  }
  close(): void {
    this.lib.C_CloseSession(this.session);
  }
}

function keyConfig(label: string, keyId = randomUUID(), createIfMissing = true): KeyConfig {
  return {
    keyId,
    aliases: [],
    keySpec: 'SYMMETRIC_DEFAULT',
    keyUsage: 'ENCRYPT_DECRYPT',
    enabled: true,
    description: '',
    pkcs11: { label },
    createIfMissing,
  };
}

async function expectKmsError(p: Promise<unknown>, type: new (...a: never[]) => KmsError): Promise<KmsError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(type);
    return e as KmsError;
  }
  throw new Error(`expected ${type.name}`);
}

describe('the PKCS#11 HSM on a real SoftHSM2 token', function () {
  this.timeout(60_000);
  let hsm: Pkcs11Hsm;
  const admin = new TokenAdmin();
  const goldenLabel = `golden-${randomUUID().slice(0, 8)}`;

  before(async () => {
    admin.open();
    admin.importAes(goldenLabel, GOLDEN_KEY);
    hsm = await Pkcs11Hsm.open({
      module: MODULE,
      token: { label: env('KMSGW_TEST_TOKEN_LABEL') },
      pin: readFileSync(env('KMSGW_TEST_PIN_FILE'), 'utf8').trim(),
      sessionPoolSize: 1,
      log: quiet,
    });
  });
  after(async () => {
    await hsm?.close();
  });

  it('probes OAEP: SoftHSM 2.6.1 does SHA-1 natively and SHA-256 through raw RSA plus gateway encoding', () => {
    const oaep = hsm.describe().oaep;
    expect(oaep.sha1).to.equal('native');
    expect(['native', 'raw-rsa+gateway-encoding']).to.include(oaep.sha256);
  });

  it('decrypts the golden blob with the golden key imported into the token', async () => {
    const g = GOLDEN[0];
    const keys = new KeyStore({ region: 'us-east-1', accountId: '111122223333' }, hsm);
    const cfg = { keys: [keyConfig(goldenLabel, GOLDEN_KEY_ID, false)] };
    await keys.init(cfg, quiet);
    const key = keys.resolve(GOLDEN_KEY_ID);
    const pt = await decryptSymmetric(hsm, key, Buffer.from(g.blob, 'hex'), g.context);
    expect(pt.toString('utf8')).to.equal(g.plaintext);
  });

  it('encrypts with a fresh IV every time, so the same plaintext never gives the same blob', async () => {
    const label = `fresh-iv-${randomUUID().slice(0, 8)}`;
    const cfg = { region: 'us-east-1', accountId: '111122223333', keys: [keyConfig(label)] };
    const keys = new KeyStore(cfg, hsm);
    await keys.init(cfg, quiet);
    const key = keys.resolve(cfg.keys[0]!.keyId);
    const a = await encryptSymmetric(hsm, key, Buffer.from('same'), { k: 'v' });
    const b = await encryptSymmetric(hsm, key, Buffer.from('same'), { k: 'v' });
    expect(parseBlob(a)?.iv.equals(parseBlob(b)!.iv)).to.equal(false);
    expect((await decryptSymmetric(hsm, key, a, { k: 'v' })).toString()).to.equal('same');
  });

  it('answers a failed GCM tag with InvalidCiphertextException and keeps the session usable (pool of one)', async () => {
    const label = `tag-${randomUUID().slice(0, 8)}`;
    const cfg = { region: 'us-east-1', accountId: '111122223333', keys: [keyConfig(label)] };
    const keys = new KeyStore(cfg, hsm);
    await keys.init(cfg, quiet);
    const key = keys.resolve(cfg.keys[0]!.keyId);
    const blob = await encryptSymmetric(hsm, key, Buffer.from('tamper me'), undefined);
    const bad = Buffer.from(blob);
    bad[bad.length - 1]! ^= 1;
    for (let i = 0; i < 5; i++) {
      await expectKmsError(decryptSymmetric(hsm, key, bad, undefined), InvalidCiphertextException);
      expect((await decryptSymmetric(hsm, key, blob, undefined)).toString()).to.equal('tamper me');
    }
    const parsed = parseBlob(blob)!;
    await expectKmsError(hsm.aesGcmDecrypt(key.currentMaterial.name, parsed.iv, parsed.ciphertextAndTag, blobAad(parsed.header, { x: 'y' })), InvalidCiphertextException);
  });

  it('when a key object is destroyed behind its back, answers KeyUnavailableException for that key only', async () => {
    const goneLabel = `gone-${randomUUID().slice(0, 8)}`;
    const stayLabel = `stay-${randomUUID().slice(0, 8)}`;
    const cfg = { region: 'us-east-1', accountId: '111122223333', keys: [keyConfig(goneLabel), keyConfig(stayLabel)] };
    const keys = new KeyStore(cfg, hsm);
    await keys.init(cfg, quiet);
    const gone = keys.resolve(cfg.keys[0]!.keyId);
    const stay = keys.resolve(cfg.keys[1]!.keyId);
    await encryptSymmetric(hsm, gone, Buffer.from('a'), undefined); // handle cached
    expect(admin.destroyByLabel(goneLabel)).to.equal(1);
    const err = await expectKmsError(encryptSymmetric(hsm, gone, Buffer.from('a'), undefined), KeyUnavailableException);
    expect(err.message).to.equal(`${gone.arn} is unavailable.`);
    expect(err.status).to.be.greaterThanOrEqual(500);
    const blob = await encryptSymmetric(hsm, stay, Buffer.from('b'), undefined);
    expect((await decryptSymmetric(hsm, stay, blob, undefined)).toString()).to.equal('b');
  });

  it('finds a key object re-created under the same label (stale handle looked up again)', async () => {
    const label = `recreated-${randomUUID().slice(0, 8)}`;
    const value = Buffer.alloc(32, 7);
    admin.importAes(label, value);
    const cfg = { region: 'us-east-1', accountId: '111122223333', keys: [keyConfig(label, randomUUID(), false)] };
    const keys = new KeyStore(cfg, hsm);
    await keys.init(cfg, quiet);
    const key = keys.resolve(cfg.keys[0]!.keyId);
    const blob = await encryptSymmetric(hsm, key, Buffer.from('survives'), undefined);
    admin.destroyByLabel(label);
    admin.importAes(label, value);
    expect((await decryptSymmetric(hsm, key, blob, undefined)).toString()).to.equal('survives');
  });

  it('gives random bytes of the asked length from the token RNG', async () => {
    const a = await hsm.random(32);
    const b = await hsm.random(32);
    expect(a.length).to.equal(32);
    expect(a.equals(b)).to.equal(false);
  });
});
