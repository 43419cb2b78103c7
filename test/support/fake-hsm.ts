/**
 * An in-memory Hsm for unit tests and fault injection: node:crypto does the
 * AES-GCM and RSA-OAEP, records live in a Map. `failOn` makes a named method
 * throw (once or always) the KMS error a real token fault would give, to
 * play crashes and outages at exact points.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  constants,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import type { RsaKeySpec } from '../../src/config/config.js';
import { InvalidCiphertextException, KeyUnavailableException } from '../../src/errors.js';
import type {
  FindKeyResult,
  Hsm,
  HsmDescription,
  HsmRecordRef,
  OaepHash,
  PrepareKeyRequest,
  PrepareKeyResult,
  RsaPublicKeyInfo,
} from '../../src/hsm/hsm.js';

type Material = { kind: 'aes'; key: Buffer } | { kind: 'rsa'; privateKey: KeyObject; publicKey: KeyObject };

interface TokenObject {
  label?: string | undefined;
  id?: string | undefined;
  material: Material;
}

const BITS = { RSA_2048: 2048, RSA_3072: 3072, RSA_4096: 4096 } as const;

export type FakeHsmMethod = keyof Hsm;

export class FakeHsm implements Hsm {
  /** The "token": key objects and records. Shared between FakeHsm instances made with `sharing`. */
  readonly objects: TokenObject[];
  readonly records: Map<string, { label: string; value: Buffer }>;
  private readonly prepared = new Map<string, { req: PrepareKeyRequest; object?: TokenObject }>();
  private readonly faults = new Map<FakeHsmMethod, { error: () => Error; times: number }>();
  private nextRef = 1;
  calls: FakeHsmMethod[] = [];

  constructor(sharing?: FakeHsm) {
    this.objects = sharing?.objects ?? [];
    this.records = sharing?.records ?? new Map();
  }

  /** Makes `method` throw `error()` for the next `times` calls (Infinity: until cleared). */
  failOn(method: FakeHsmMethod, error: () => Error = () => new KeyUnavailableException('The HSM is unavailable.'), times = 1): void {
    this.faults.set(method, { error, times });
  }

  clearFaults(): void {
    this.faults.clear();
  }

  private enter(method: FakeHsmMethod): void {
    this.calls.push(method);
    const f = this.faults.get(method);
    if (f === undefined) return;
    if (--f.times <= 0) this.faults.delete(method);
    throw f.error();
  }

  private match(req: PrepareKeyRequest): TokenObject[] {
    const id = req.ref.id?.toString('hex');
    return this.objects.filter(
      (o) => (req.ref.label === undefined || o.label === req.ref.label) && (id === undefined || o.id === id),
    );
  }

  async prepareKey(req: PrepareKeyRequest): Promise<PrepareKeyResult> {
    this.enter('prepareKey');
    const found = this.match(req);
    if (found.length > 0) {
      this.prepared.set(req.name, { req, object: found[0] });
      return { state: 'ready', created: false };
    }
    if (!req.createIfMissing) {
      this.prepared.set(req.name, { req });
      return { state: 'missing' };
    }
    let material: Material;
    if (req.keySpec === 'SYMMETRIC_DEFAULT') material = { kind: 'aes', key: randomBytes(32) };
    else {
      const pair = generateKeyPairSync('rsa', { modulusLength: BITS[req.keySpec] });
      material = { kind: 'rsa', privateKey: pair.privateKey, publicKey: pair.publicKey };
    }
    const object: TokenObject = { label: req.ref.label, id: req.ref.id?.toString('hex'), material };
    this.objects.push(object);
    this.prepared.set(req.name, { req, object });
    return { state: 'ready', created: true };
  }

  async findKeys(reqs: PrepareKeyRequest[]): Promise<FindKeyResult[]> {
    this.enter('findKeys');
    const out: FindKeyResult[] = [];
    for (const req of reqs) {
      const found = this.match(req);
      if (found.length > 1) out.push({ state: 'failed', reason: 'more than one object matches' });
      else {
        this.prepared.set(req.name, { req, object: found[0] });
        out.push(found.length === 1 ? { state: 'ready', created: false } : { state: 'missing' });
      }
    }
    return out;
  }

  /** The material behind a name, as the token would find it now (a destroyed object is unavailable). */
  private material(name: string): Material {
    const p = this.prepared.get(name);
    const object = p?.object !== undefined && this.objects.includes(p.object) ? p.object : p && this.match(p.req)[0];
    if (p === undefined || object === undefined) throw new KeyUnavailableException(`${p?.req.displayName ?? name} is unavailable.`);
    p.object = object;
    return object.material;
  }

  async random(length: number): Promise<Buffer> {
    this.enter('random');
    return randomBytes(length);
  }

  async aesGcmEncrypt(name: string, iv: Buffer, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    this.enter('aesGcmEncrypt');
    const m = this.material(name);
    if (m.kind !== 'aes') throw new KeyUnavailableException(`${name} is unavailable.`);
    const c = createCipheriv('aes-256-gcm', m.key, iv);
    c.setAAD(aad);
    return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  }

  async aesGcmDecrypt(name: string, iv: Buffer, ciphertextAndTag: Buffer, aad: Buffer): Promise<Buffer> {
    this.enter('aesGcmDecrypt');
    const m = this.material(name);
    if (m.kind !== 'aes') throw new KeyUnavailableException(`${name} is unavailable.`);
    if (ciphertextAndTag.length < 16) throw new InvalidCiphertextException();
    try {
      const d = createDecipheriv('aes-256-gcm', m.key, iv);
      d.setAAD(aad);
      d.setAuthTag(ciphertextAndTag.subarray(ciphertextAndTag.length - 16));
      return Buffer.concat([d.update(ciphertextAndTag.subarray(0, ciphertextAndTag.length - 16)), d.final()]);
    } catch {
      throw new InvalidCiphertextException();
    }
  }

  async rsaOaepEncrypt(name: string, hash: OaepHash, plaintext: Buffer): Promise<Buffer> {
    this.enter('rsaOaepEncrypt');
    const m = this.material(name);
    if (m.kind !== 'rsa') throw new KeyUnavailableException(`${name} is unavailable.`);
    return publicEncrypt({ key: m.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
  }

  async rsaOaepDecrypt(name: string, hash: OaepHash, ciphertext: Buffer): Promise<Buffer> {
    this.enter('rsaOaepDecrypt');
    const m = this.material(name);
    if (m.kind !== 'rsa') throw new KeyUnavailableException(`${name} is unavailable.`);
    const k = (m.privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8;
    if (ciphertext.length !== k) throw new InvalidCiphertextException();
    try {
      return privateDecrypt({ key: m.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, ciphertext);
    } catch {
      throw new InvalidCiphertextException();
    }
  }

  async rsaPublicKey(name: string): Promise<RsaPublicKeyInfo> {
    this.enter('rsaPublicKey');
    const m = this.material(name);
    if (m.kind !== 'rsa') throw new KeyUnavailableException(`${name} is unavailable.`);
    return {
      spki: m.publicKey.export({ type: 'spki', format: 'der' }),
      modulusBytes: (m.publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8,
      keyObject: m.publicKey,
    };
  }

  async generateDataKeyPair(keySpec: RsaKeySpec): Promise<{ privateKeyPkcs8: Buffer; publicKeySpki: Buffer }> {
    this.enter('generateDataKeyPair');
    const pair = generateKeyPairSync('rsa', { modulusLength: BITS[keySpec] });
    return {
      privateKeyPkcs8: pair.privateKey.export({ type: 'pkcs8', format: 'der' }),
      publicKeySpki: createPublicKey(pair.privateKey).export({ type: 'spki', format: 'der' }),
    };
  }

  async destroyKey(name: string): Promise<void> {
    this.enter('destroyKey');
    const p = this.prepared.get(name);
    if (p === undefined) return;
    for (const o of this.match(p.req)) this.objects.splice(this.objects.indexOf(o), 1);
    this.prepared.delete(name);
  }

  async listRecords(): Promise<HsmRecordRef[]> {
    this.enter('listRecords');
    return [...this.records].map(([ref, r]) => ({ ref, label: r.label }));
  }

  async readRecord(ref: string): Promise<Buffer | undefined> {
    this.enter('readRecord');
    return this.records.get(ref)?.value;
  }

  async createRecord(label: string, value: Buffer): Promise<string> {
    this.enter('createRecord');
    const ref = `r${this.nextRef++}-${randomBytes(2).toString('hex')}`;
    this.records.set(ref, { label, value: Buffer.from(value) });
    return ref;
  }

  async deleteRecord(ref: string): Promise<void> {
    this.enter('deleteRecord');
    this.records.delete(ref);
  }

  describe(): HsmDescription {
    return { module: 'fake', tokenLabel: 'fake', oaep: { sha1: 'native', sha256: 'native' }, sessionPoolSize: 1 };
  }

  async close(): Promise<void> {}
}
