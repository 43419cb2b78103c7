/**
 * An in-memory Hsm for unit tests and fault injection: node:crypto does the
 * AES-GCM and RSA-OAEP, records live in a Map. `failOn` makes a named method
 * throw (once or always) the KMS error a real token fault would give, to
 * play crashes and outages at exact points.
 *
 * A FakeHsm is also a GuardedHsm lane (`recover()`), and every FakeHsm made
 * with `new FakeHsm(other)` shares one FakeToken with `other`: its key
 * objects, its records, and its faults as a whole:
 * - `token.down()` / `token.up()`: while down, every call and every
 *   recover() rejects with KeyUnavailableException (tokenFault). A down()
 *   also loses every open session, as a real token does: afterwards each
 *   FakeHsm answers tokenFault until its recover() succeeds with the token
 *   up again (so a lane that is never recovered stays broken).
 * - `token.freeze()` / `token.thaw()`: while frozen, every call and every
 *   recover() on any FakeHsm of the token hangs, and goes on only after
 *   thaw(): a SIGSTOPped network HSM. `freeze()` / `thaw()` on one FakeHsm
 *   hang that instance (one session) only.
 * - `deleteKeyObject(label)`: a key object removed behind the gateway's
 *   back; that key's calls then answer KeyUnavailableException with
 *   tokenFault false, other keys are untouched.
 *
 * `{ sessionKeyCopies: true }` plays a PKCS#11 instance with
 * hsm.sessionKeyCopies: the first use of a key in an instance keeps a copy
 * of its material there, which outlives the token object until
 * forgetKey(), destroyKey(), prepareKey() of that name or a recover().
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
import type { HsmLane } from '../../src/hsm/guarded-hsm.js';
import type {
  AesGcmSealed,
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

export type FakeHsmMethod = keyof Hsm | 'recover';

/** What a real token's error says while it is unreachable. */
const tokenUnavailable = (why = ''): KeyUnavailableException =>
  new KeyUnavailableException(`The HSM is unavailable${why === '' ? '' : ` (${why})`}.`, { tokenFault: true });

/** Calls that enter while frozen wait here until thaw(). */
class Gate {
  private thawed: Promise<void> | undefined;
  private open: (() => void) | undefined;

  get frozen(): boolean {
    return this.thawed !== undefined;
  }

  freeze(): void {
    this.thawed ??= new Promise<void>((resolve) => (this.open = resolve));
  }

  thaw(): void {
    const open = this.open;
    this.thawed = undefined;
    this.open = undefined;
    open?.();
  }

  /** Settles at once when not frozen, else after the thaw. */
  async pass(): Promise<void> {
    while (this.thawed !== undefined) await this.thawed;
  }
}

/** The "token" every FakeHsm made from one another shares. */
export class FakeToken {
  readonly objects: TokenObject[] = [];
  readonly records = new Map<string, { label: string; value: Buffer }>();
  /** The state mark (Hsm.readStateMark): one per token, undefined until written. */
  stateMark: Buffer | undefined;
  nextRef = 1;
  /** Bumped by every down(): sessions opened before it are lost. */
  epoch = 0;
  private isDown = false;
  private readonly gate = new Gate();

  /** The token becomes unreachable: every call rejects with a token fault, and every open session is lost. */
  down(): void {
    if (!this.isDown) this.epoch++;
    this.isDown = true;
  }

  /** The token answers again; sessions lost while it was down need a recover(). */
  up(): void {
    this.isDown = false;
  }

  /** false between down() and up(). */
  get isUp(): boolean {
    return !this.isDown;
  }

  get frozen(): boolean {
    return this.gate.frozen;
  }

  /** Every call on every FakeHsm of this token hangs until thaw() (a SIGSTOPped network HSM). */
  freeze(): void {
    this.gate.freeze();
  }

  thaw(): void {
    this.gate.thaw();
  }

  /** Settles at once when not frozen, else after the thaw. */
  whenThawed(): Promise<void> {
    return this.gate.pass();
  }

  /** Removes every key object labelled `label` behind the gateway's back; returns how many. */
  deleteKeyObject(label: string): number {
    let n = 0;
    for (let i = this.objects.length - 1; i >= 0; i--) {
      if (this.objects[i]!.label === label) {
        this.objects.splice(i, 1);
        n++;
      }
    }
    return n;
  }
}

export class FakeHsm implements HsmLane {
  /** Shared by every FakeHsm made with `new FakeHsm(this)` (or from one of those). */
  readonly token: FakeToken;
  /** The token's key objects and records (shared). */
  readonly objects: TokenObject[];
  readonly records: Map<string, { label: string; value: Buffer }>;
  private readonly prepared = new Map<string, { req: PrepareKeyRequest; object?: TokenObject; copy?: Material }>();
  private readonly sessionKeyCopies: boolean;
  private readonly faults = new Map<FakeHsmMethod, { error: () => Error; times: number }>();
  /** This instance's own session: frozen by freeze(), lost by a token down(). */
  private readonly gate = new Gate();
  private sessionEpoch: number;
  /** Every method called on this instance, in order, including recover (a frozen call is logged when it enters). */
  calls: FakeHsmMethod[] = [];

  /** HsmLane.group: fakes given the same group play lanes on one thread (GuardedHsm holds them up together). */
  readonly group?: unknown;

  constructor(sharing?: FakeHsm, opts: { sessionKeyCopies?: boolean; group?: unknown } = {}) {
    this.sessionKeyCopies = opts.sessionKeyCopies ?? false;
    if (opts.group !== undefined) this.group = opts.group;
    this.token = sharing?.token ?? new FakeToken();
    this.objects = this.token.objects;
    this.records = this.token.records;
    this.sessionEpoch = this.token.epoch;
  }

  /** Makes `method` throw `error()` for the next `times` calls (Infinity: until cleared). */
  failOn(method: FakeHsmMethod, error: () => Error = () => new KeyUnavailableException('The HSM is unavailable.'), times = 1): void {
    this.faults.set(method, { error, times });
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /** This instance's calls (and recover) hang until thaw(); other FakeHsm of the token are unaffected. */
  freeze(): void {
    this.gate.freeze();
  }

  thaw(): void {
    this.gate.thaw();
  }

  /** See FakeToken.deleteKeyObject. */
  deleteKeyObject(label: string): number {
    return this.token.deleteKeyObject(label);
  }

  /** Opens a new "session": succeeds when the token is up, rejects with a token fault while it is down. */
  async recover(): Promise<void> {
    await this.enter('recover');
    this.sessionEpoch = this.token.epoch;
    // New sessions: the copies lived in the old ones.
    for (const p of this.prepared.values()) delete p.copy;
  }

  /**
   * Every call starts here: logged, held while frozen, then refused while
   * the token is down or this instance's session was lost, then `failOn`.
   */
  private async enter(method: FakeHsmMethod): Promise<void> {
    this.calls.push(method);
    while (this.token.frozen || this.gate.frozen) {
      await this.token.whenThawed();
      await this.gate.pass();
    }
    if (!this.token.isUp) throw tokenUnavailable();
    if (method !== 'recover' && this.sessionEpoch !== this.token.epoch) throw tokenUnavailable('session lost');
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
    await this.enter('prepareKey');
    const found = req.createIfMissing && req.newLabel === true ? [] : this.match(req);
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
    await this.enter('findKeys');
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
    if (p?.copy !== undefined) return p.copy;
    const object = p?.object !== undefined && this.objects.includes(p.object) ? p.object : p && this.match(p.req)[0];
    if (p === undefined || object === undefined) throw new KeyUnavailableException(`${p?.req.displayName ?? name} is unavailable.`);
    p.object = object;
    if (this.sessionKeyCopies) p.copy = object.material;
    return object.material;
  }

  async random(length: number): Promise<Buffer> {
    await this.enter('random');
    return randomBytes(length);
  }

  async aesGcmSeal(name: string, plaintext: Buffer, aad: Buffer): Promise<AesGcmSealed> {
    await this.enter('aesGcmSeal');
    const iv = randomBytes(12);
    return { iv, sealed: this.gcmEncrypt(name, iv, plaintext, aad) };
  }

  async aesGcmSealRandom(name: string, length: number, aad: Buffer): Promise<AesGcmSealed & { plaintext: Buffer }> {
    await this.enter('aesGcmSealRandom');
    const plaintext = randomBytes(length);
    const iv = randomBytes(12);
    return { plaintext, iv, sealed: this.gcmEncrypt(name, iv, plaintext, aad) };
  }

  async aesGcmEncrypt(name: string, iv: Buffer, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    await this.enter('aesGcmEncrypt');
    return this.gcmEncrypt(name, iv, plaintext, aad);
  }

  private gcmEncrypt(name: string, iv: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
    const m = this.material(name);
    if (m.kind !== 'aes') throw new KeyUnavailableException(`${name} is unavailable.`);
    const c = createCipheriv('aes-256-gcm', m.key, iv);
    c.setAAD(aad);
    return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  }

  async aesGcmDecrypt(name: string, iv: Buffer, ciphertextAndTag: Buffer, aad: Buffer): Promise<Buffer> {
    await this.enter('aesGcmDecrypt');
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
    await this.enter('rsaOaepEncrypt');
    const m = this.material(name);
    if (m.kind !== 'rsa') throw new KeyUnavailableException(`${name} is unavailable.`);
    return publicEncrypt({ key: m.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
  }

  async rsaOaepDecrypt(name: string, hash: OaepHash, ciphertext: Buffer): Promise<Buffer> {
    await this.enter('rsaOaepDecrypt');
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
    await this.enter('rsaPublicKey');
    const m = this.material(name);
    if (m.kind !== 'rsa') throw new KeyUnavailableException(`${name} is unavailable.`);
    return {
      spki: m.publicKey.export({ type: 'spki', format: 'der' }),
      modulusBytes: (m.publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8,
      keyObject: m.publicKey,
    };
  }

  async generateDataKeyPair(keySpec: RsaKeySpec): Promise<{ privateKeyPkcs8: Buffer; publicKeySpki: Buffer }> {
    await this.enter('generateDataKeyPair');
    const pair = generateKeyPairSync('rsa', { modulusLength: BITS[keySpec] });
    return {
      privateKeyPkcs8: pair.privateKey.export({ type: 'pkcs8', format: 'der' }),
      publicKeySpki: createPublicKey(pair.privateKey).export({ type: 'spki', format: 'der' }),
    };
  }

  async destroyKey(name: string): Promise<void> {
    await this.enter('destroyKey');
    const p = this.prepared.get(name);
    if (p === undefined) return;
    for (const o of this.match(p.req)) this.objects.splice(this.objects.indexOf(o), 1);
    this.prepared.delete(name);
  }

  /** Drops the object this instance found for `name`: the next call matches the token's objects again. */
  async forgetKey(name: string): Promise<void> {
    await this.enter('forgetKey');
    const p = this.prepared.get(name);
    if (p === undefined) return;
    delete p.object;
    delete p.copy;
  }

  async listRecords(): Promise<HsmRecordRef[]> {
    await this.enter('listRecords');
    return [...this.records].map(([ref, r]) => ({ ref, label: r.label }));
  }

  async readRecord(ref: string): Promise<Buffer | undefined> {
    await this.enter('readRecord');
    return this.records.get(ref)?.value;
  }

  async createRecord(label: string, value: Buffer): Promise<string> {
    await this.enter('createRecord');
    const ref = `r${this.token.nextRef++}-${randomBytes(2).toString('hex')}`;
    this.records.set(ref, { label, value: Buffer.from(value) });
    return ref;
  }

  async deleteRecord(ref: string): Promise<void> {
    await this.enter('deleteRecord');
    this.records.delete(ref);
  }

  async readStateMark(): Promise<Buffer | undefined> {
    await this.enter('readStateMark');
    return this.token.stateMark === undefined ? undefined : Buffer.from(this.token.stateMark);
  }

  async writeStateMark(value: Buffer): Promise<void> {
    await this.enter('writeStateMark');
    this.token.stateMark = Buffer.from(value);
  }

  describe(): HsmDescription {
    return { module: 'fake', tokenLabel: 'fake', oaep: { sha1: 'native', sha256: 'native' }, sessionPoolSize: 1 };
  }

  async close(): Promise<void> {}
}
