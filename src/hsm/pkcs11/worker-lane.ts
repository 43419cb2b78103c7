/**
 * GuardedHsm lanes on worker threads (pkcs11-worker.ts). A lane is one
 * PKCS#11 instance with its own session; a LaneThread runs one or more
 * lanes, one call at a time, in the order the calls arrive.
 *
 * Why several lanes per thread: a call handed to an idle thread costs a
 * wake-up on each side (about as much CPU as the token's own AES-GCM on
 * SoftHSM2), while a thread that finds the next call already queued when
 * it answers one goes straight on. With more lanes than threads, GuardedHsm
 * keeps each thread's queue filled under load, and the threads (a V8
 * isolate each, ~10 MB) stay few. The price: a call stuck in the token
 * holds up the other lanes of its thread, so they share a `group` and
 * GuardedHsm gives none of them new calls while one is quarantined.
 *
 * Each lane loads the module and logs in by itself: SoftHSM2 shares one
 * library state between them (a second C_Initialize answers
 * CKR_CRYPTOKI_ALREADY_INITIALIZED, which is benign), while
 * p11-kit-client.so opens one connection, and so one remote session set,
 * per instance, so object handles are per lane.
 */
import { Worker } from 'node:worker_threads';
import type { RsaKeySpec } from '../../config/config.js';
import { KeyUnavailableException } from '../../errors.js';
import type { HsmLane } from '../guarded-hsm.js';
import type { AesGcmSealed, FindKeyResult, HsmDescription, HsmRecordRef, OaepHash, PrepareKeyRequest, PrepareKeyResult, RsaPublicKeyInfo } from '../hsm.js';
import { fromWireError, pack, revive, type LaneLog, type LaneMethod, type LaneReply, type LaneRequest } from '../lane-protocol.js';
import type { HsmLogger } from './pkcs11-hsm.js';
import type { WorkerOptions } from './pkcs11-worker.js';

const WORKER_URL = new URL('./pkcs11-worker.js', import.meta.url);

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** One worker thread and the lanes on it; the thread starts with the first call and again after it died. */
export class LaneThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Lanes of this thread not closed yet: the last close ends the thread. */
  private openLanes = 0;

  constructor(
    private readonly opts: WorkerOptions,
    private readonly log: HsmLogger,
  ) {}

  /** A lane on this thread (slot: its index among the thread's lanes). */
  lane(slot: number, fallback: HsmDescription): WorkerLane {
    this.openLanes++;
    return new WorkerLane(this, slot, fallback);
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_URL, {
      workerData: this.opts,
      // A lane thread keeps few objects alive past a call: V8's default young
      // generation (semi-spaces growing to 16 MB on 64-bit) would mostly be
      // RSS that never pays off (measured: bench/hsm-micro.ts).
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    const settle = (m: LaneReply) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(revive(m.value));
      else p.reject(fromWireError(m.error));
    };
    w.on('message', (m: LaneReply | LaneReply[] | LaneLog) => {
      if (Array.isArray(m)) for (const r of m) settle(r);
      else if ('log' in m) this.log[m.log.level](m.log.obj, m.log.msg);
      else settle(m);
    });
    const gone = (why: string) => {
      if (this.worker === w) {
        this.worker = undefined;
        this.outbox = [];
        this.outboxTransfer = [];
      }
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

  /**
   * Requests wait here until the event loop's poll phase is over
   * (setImmediate), then go to the thread in one message: every request
   * read from the sockets in one turn of the loop, and every call that a
   * batch of replies starts, share one postMessage and one wake-up of the
   * thread. Flushing after each macrotask instead (process.nextTick) sent
   * about one message per HTTP request, since each request's body arrives
   * in a macrotask of its own; measured with bench/reference-server.ts
   * (hsm-layer, 2 processes, 32 connections, 2-core bench machine):
   * ~8,400 against ~9,000 Encrypt 4 KB/s.
   */
  private outbox: LaneRequest[] = [];
  private outboxTransfer: ArrayBuffer[] = [];
  private readonly flush = (): void => {
    const batch = this.outbox;
    const transfer = this.outboxTransfer;
    this.outbox = [];
    this.outboxTransfer = [];
    // Empty when the thread died meanwhile: its callers were answered then.
    if (batch.length > 0) this.worker?.postMessage(batch.length === 1 ? batch[0] : batch, transfer);
  };

  call<T>(lane: number, method: LaneMethod, args: unknown[]): Promise<T> {
    this.worker ??= this.spawn();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.outbox.push({ id, lane, method, args: pack(args, this.outboxTransfer) as unknown[] });
      // After this turn's poll phase: the calls started meanwhile join the batch.
      if (this.outbox.length === 1) setImmediate(this.flush);
    });
  }

  /** Closes one lane's PKCS#11 instance; after the last one, ends the thread. */
  async closeLane(lane: number): Promise<void> {
    const w = this.worker;
    try {
      if (w !== undefined) await this.call(lane, 'close', []);
    } finally {
      if (--this.openLanes <= 0 && this.worker !== undefined) {
        const last = this.worker;
        this.worker = undefined;
        await last.terminate();
      }
    }
  }
}

export class WorkerLane implements HsmLane {
  private description: HsmDescription | undefined;

  constructor(
    private readonly thread: LaneThread,
    private readonly slot: number,
    private readonly fallback: HsmDescription,
  ) {}

  /** The lanes of one thread: a call stuck in the token holds up all of them. */
  get group(): LaneThread {
    return this.thread;
  }

  private call<T>(method: LaneMethod, args: unknown[]): Promise<T> {
    return this.thread.call(this.slot, method, args);
  }

  async recover(): Promise<void> {
    await this.call('recover', []);
    this.description = await this.call<HsmDescription>('describe', []);
  }

  describe(): HsmDescription {
    return this.description ?? this.fallback;
  }

  close(): Promise<void> {
    return this.thread.closeLane(this.slot);
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
  aesGcmSeal(name: string, plaintext: Buffer, aad: Buffer): Promise<AesGcmSealed> {
    return this.call('aesGcmSeal', [name, plaintext, aad]);
  }
  aesGcmSealRandom(name: string, length: number, aad: Buffer): Promise<AesGcmSealed & { plaintext: Buffer }> {
    return this.call('aesGcmSealRandom', [name, length, aad]);
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
  forgetKey(name: string): Promise<void> {
    return this.call('forgetKey', [name]);
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
  readStateMark(): Promise<Buffer | undefined> {
    return this.call('readStateMark', []);
  }
  writeStateMark(value: Buffer): Promise<void> {
    return this.call('writeStateMark', [value]);
  }
}
