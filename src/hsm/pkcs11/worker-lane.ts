/**
 * A GuardedHsm lane on a worker thread (pkcs11-worker.ts) with its own
 * PKCS#11 instance. Each lane loads the module and logs in by itself:
 * SoftHSM2 shares one library state between them (a second C_Initialize
 * answers CKR_CRYPTOKI_ALREADY_INITIALIZED, which is benign), while
 * p11-kit-client.so opens one connection, and so one remote session set,
 * per instance, so object handles are per lane.
 */
import { Worker } from 'node:worker_threads';
import type { RsaKeySpec } from '../../config/config.js';
import { KeyUnavailableException } from '../../errors.js';
import type { HsmLane } from '../guarded-hsm.js';
import type { FindKeyResult, HsmDescription, HsmRecordRef, OaepHash, PrepareKeyRequest, PrepareKeyResult, RsaPublicKeyInfo } from '../hsm.js';
import { fromWireError, pack, revive, type LaneLog, type LaneMethod, type LaneReply, type LaneRequest } from '../lane-protocol.js';
import type { HsmLogger } from './pkcs11-hsm.js';
import type { WorkerOptions } from './pkcs11-worker.js';

const WORKER_URL = new URL('./pkcs11-worker.js', import.meta.url);

export class WorkerLane implements HsmLane {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  private description: HsmDescription | undefined;

  constructor(
    private readonly opts: WorkerOptions,
    private readonly log: HsmLogger,
    private readonly fallback: HsmDescription,
  ) {}

  private spawn(): Worker {
    const w = new Worker(WORKER_URL, { workerData: this.opts });
    w.on('message', (m: LaneReply | LaneLog) => {
      if ('log' in m) {
        this.log[m.log.level](m.log.obj, m.log.msg);
        return;
      }
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(revive(m.value));
      else p.reject(fromWireError(m.error));
    });
    const gone = (why: string) => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(new KeyUnavailableException(`The HSM is unavailable (${why}).`, { tokenFault: true }));
      this.pending.clear();
    };
    w.on('error', (e) => {
      this.log.error({ err: String(e) }, 'PKCS#11 worker thread failed');
      gone('worker failed');
    });
    w.on('exit', () => gone('worker exited'));
    // A lane stuck in the token must not keep the process alive at exit.
    w.unref();
    return w;
  }

  private call<T>(method: LaneMethod, args: unknown[]): Promise<T> {
    const w = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const transfer: ArrayBuffer[] = [];
      w.postMessage({ id, method, args: pack(args, transfer) as unknown[] } satisfies LaneRequest, transfer);
    });
  }

  async recover(): Promise<void> {
    await this.call('recover', []);
    this.description = await this.call<HsmDescription>('describe', []);
  }

  describe(): HsmDescription {
    return this.description ?? this.fallback;
  }

  async close(): Promise<void> {
    const w = this.worker;
    if (w === undefined) return;
    try {
      await this.call('close', []);
    } finally {
      this.worker = undefined;
      await w.terminate();
    }
  }

  prepareKey(req: PrepareKeyRequest): Promise<PrepareKeyResult> {
    return this.call('prepareKey', [req]);
  }
  findKeys(reqs: PrepareKeyRequest[]): Promise<FindKeyResult[]> {
    return this.call('findKeys', [reqs]);
  }
  random(length: number): Promise<Buffer> {
    return this.call('random', [length]);
  }
  aesGcmEncrypt(name: string, iv: Buffer, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    return this.call('aesGcmEncrypt', [name, iv, plaintext, aad]);
  }
  aesGcmDecrypt(name: string, iv: Buffer, ciphertextAndTag: Buffer, aad: Buffer): Promise<Buffer> {
    return this.call('aesGcmDecrypt', [name, iv, ciphertextAndTag, aad]);
  }
  rsaOaepEncrypt(name: string, hash: OaepHash, plaintext: Buffer): Promise<Buffer> {
    return this.call('rsaOaepEncrypt', [name, hash, plaintext]);
  }
  rsaOaepDecrypt(name: string, hash: OaepHash, ciphertext: Buffer): Promise<Buffer> {
    return this.call('rsaOaepDecrypt', [name, hash, ciphertext]);
  }
  rsaPublicKey(name: string): Promise<RsaPublicKeyInfo> {
    return this.call('rsaPublicKey', [name]);
  }
  generateDataKeyPair(keySpec: RsaKeySpec): Promise<{ privateKeyPkcs8: Buffer; publicKeySpki: Buffer }> {
    return this.call('generateDataKeyPair', [keySpec]);
  }
  destroyKey(name: string): Promise<void> {
    return this.call('destroyKey', [name]);
  }
  listRecords(): Promise<HsmRecordRef[]> {
    return this.call('listRecords', []);
  }
  readRecord(ref: string): Promise<Buffer | undefined> {
    return this.call('readRecord', [ref]);
  }
  createRecord(label: string, value: Buffer): Promise<string> {
    return this.call('createRecord', [label, value]);
  }
  deleteRecord(ref: string): Promise<void> {
    return this.call('deleteRecord', [ref]);
  }
}
