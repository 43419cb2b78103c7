/**
 * The HSM as the rest of the gateway sees it: every call runs on one of N
 * lanes (a PKCS#11 session on a thread of its own, see
 * pkcs11/worker-lane.ts), under a deadline, behind a circuit breaker.
 *
 * Contract:
 * - Deadline. A call, including its wait for a free lane, either settles
 *   within `deadlineMs` or rejects with DependencyTimeoutException at the
 *   deadline. The lane it ran on is quarantined (never given to another
 *   call) until the token returns the native call; only then is it idle
 *   again, and re-opened first if the late answer was a token fault. The
 *   event loop never waits on the token, so other keys, /metrics and the
 *   health endpoints keep answering. Lanes that run on one thread
 *   (HsmLane.group) are held up together: while one of them is
 *   quarantined, none of them is given a new call.
 * - Deadlines sit on one timer (deadlines.ts), not a setTimeout per call.
 * - Faults. A lane answers KMS errors only. KeyUnavailableException with
 *   `tokenFault` (session, login, device or module lost) marks the lane for
 *   recovery before its next call and counts toward the circuit breaker, as
 *   a timeout does. A missing key object, a bad ciphertext or any other
 *   client error says nothing about the token and resets nothing.
 * - Circuit breaker. After `failureThreshold` token faults or timeouts in a
 *   row (a call that timed out waiting for a lane counts when every lane
 *   was held up by a call stuck in the token) the circuit opens: calls fail
 *   at once with the kind of the last fault (DependencyTimeoutException or
 *   KeyUnavailableException, both retryable) instead of piling onto a dead
 *   HSM. Every `probeIntervalMs` a background probe takes an idle lane,
 *   recovers it (new session, login, module re-initialised where needed)
 *   and asks the token for one random byte; success closes the circuit and
 *   marks every other lane for recovery before its next call.
 * - PIN refused (KeyUnavailableException with `permanent`): no lane logs
 *   in again until a restart, because every try with the same PIN counts
 *   toward locking the HSM user. Calls answer KeyUnavailableException and
 *   /readyz says why.
 * - Start-up never needs the token: lanes that cannot reach it start
 *   marked for recovery, the circuit starts open, and the probe closes it
 *   when the token appears.
 */
import { DependencyTimeoutException, KeyUnavailableException, KmsError, KMSInternalException } from '../errors.js';
import type { HsmCallOutcome, HsmMechanism, Metrics } from '../metrics/metrics.js';
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
} from './hsm.js';
import type { RsaKeySpec } from '../config/config.js';
import { Deadlines, type Deadline } from './deadlines.js';

/**
 * One session's worth of HSM: the Hsm methods, run one at a time, plus
 * recovery. A lane only ever sees one call at a time from GuardedHsm.
 */
export interface HsmLane extends Hsm {
  /**
   * Lanes with the same group share what runs their calls (worker-lane.ts:
   * one thread runs several lanes, in turn): a call stuck in the token holds
   * up the whole group, so while one lane of a group is quarantined none of
   * the group gets a new call. Undefined: the lane stands alone.
   */
  readonly group?: unknown;
  /**
   * (Re-)opens what the lane needs to reach the token: a session, a login,
   * the module initialised. Resolves once the token answered a call;
   * rejects with KeyUnavailableException (tokenFault) while it cannot.
   */
  recover(): Promise<void>;
}

export interface GuardedHsmLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error?(obj: object, msg: string): void;
}

export interface GuardedHsmOptions {
  lanes: HsmLane[];
  deadlineMs: number;
  failureThreshold: number;
  probeIntervalMs: number;
  readyCacheMs: number;
  metrics?: Metrics | undefined;
  log: GuardedHsmLogger;
  /** What describe() answers before any lane reached the token. */
  fallbackDescription: HsmDescription;
}

interface LaneState {
  lane: HsmLane;
  index: number;
  busy: boolean;
  quarantined: boolean;
  needsRecovery: boolean;
  /** Key names this lane has prepared (a lane learns a key before its first use of it). */
  known: Set<string>;
  /** Key names whose cached handles and session copies this lane drops before its next call (destroyKey, forgetKey). */
  forget: Set<string>;
  /** The lanes run by the same thread (HsmLane.group); a lane without one is a group of its own. */
  group: LaneGroup;
  /** Holds a slow call (key generation, a scan of the token). */
  slow: boolean;
}

interface LaneGroup {
  /** Lanes of the group holding a call. */
  busy: number;
  /** Lanes of the group holding a slow call: a new call would queue behind it on the group's thread. */
  slow: number;
  /** Quarantined lanes of the group: while any, the group gets no new call. */
  stuck: number;
}

interface Waiter {
  resolve(l: LaneState): void;
  reject(e: unknown): void;
  deadline: number;
  timer: Deadline;
  slow: boolean;
}

type FaultKind = 'timeout' | 'unavailable';

const TOKEN_UNAVAILABLE = 'The HSM is unavailable.';
const TOKEN_TIMEOUT = 'The HSM did not answer in time.';
/** Calls that hold the token for many milliseconds (key generation, a scan of the token's objects). */
const SLOW = new Set<HsmMechanism>(['CKM_AES_KEY_GEN', 'CKM_RSA_PKCS_KEY_PAIR_GEN', 'C_FindObjects']);

export class GuardedHsm implements Hsm {
  private readonly lanes: LaneState[];
  private readonly waiters: Waiter[] = [];
  /** The deadline of every call in flight or waiting for a lane, on one timer. */
  private readonly deadlines = new Deadlines();
  private readonly keys = new Map<string, PrepareKeyRequest>();
  private consecutiveFailures = 0;
  private lastFault: FaultKind = 'unavailable';
  private circuitOpen = false;
  private tokenUp = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;
  private lastReadyAt = 0;
  private readyProbe: Promise<boolean> | undefined;
  private description: HsmDescription | undefined;
  /** Set when the token refused the PIN: no lane logs in again until a restart (each try counts toward locking the user). */
  private refused: string | undefined;

  constructor(private readonly opts: GuardedHsmOptions) {
    if (opts.lanes.length === 0) throw new Error('GuardedHsm needs at least one lane');
    const groups = new Map<unknown, LaneGroup>();
    this.lanes = opts.lanes.map((lane, index) => {
      const key = lane.group ?? lane;
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = { busy: 0, slow: 0, stuck: 0 }));
      return { lane, index, busy: false, quarantined: false, needsRecovery: true, known: new Set<string>(), forget: new Set<string>(), group, slow: false };
    });
    // The session, circuit and token gauges are read from stats() when Prometheus scrapes.
    opts.metrics?.watchHsm(() => this.stats());
  }

  /**
   * Brings every lane up once. Never rejects for an unreachable token: the
   * gateway starts anyway, the circuit stays open and the probe keeps trying.
   */
  async start(): Promise<void> {
    // Opening the module, logging in and probing OAEP take longer than one call.
    const deadline = Date.now() + Math.max(this.opts.deadlineMs, 10_000);
    const results = await Promise.allSettled(this.lanes.map((l) => this.runOnLane(this.take(l), deadline, () => this.recoverLane(l, deadline))));
    const up = results.filter((r) => r.status === 'fulfilled').length;
    if (up > 0) {
      this.tokenUp = true;
      this.closeCircuit();
    } else {
      const first = results[0];
      const reason = first?.status === 'rejected' ? (first.reason as Error).message : 'unknown';
      this.opts.log.warn({ reason }, 'HSM unreachable at start; serving anyway, probing in the background');
      this.tokenUp = false;
      if (!this.circuitOpen) this.openCircuit('unavailable');
    }
  }

  // ---- the Hsm, every method through `invoke` ---------------------------

  async prepareKey(req: PrepareKeyRequest): Promise<PrepareKeyResult> {
    const mech: HsmMechanism = req.createIfMissing ? (req.keySpec === 'SYMMETRIC_DEFAULT' ? 'CKM_AES_KEY_GEN' : 'CKM_RSA_PKCS_KEY_PAIR_GEN') : 'C_FindObjects';
    // Key generation (RSA-4096 takes about a second on SoftHSM2) gets a longer deadline.
    const result = await this.invoke(mech, (l) => l.lane.prepareKey(req), { deadlineMs: req.createIfMissing ? Math.max(this.opts.deadlineMs, 30_000) : undefined, onLane: (l, r) => r.state === 'ready' && l.known.add(req.name) });
    this.keys.set(req.name, req);
    return result;
  }

  /**
   * Every lane scans once (one pass over the token's key objects each), so
   * no lane pays a per-key find on its first request for a key.
   */
  async findKeys(reqs: PrepareKeyRequest[]): Promise<FindKeyResult[]> {
    for (const r of reqs) this.keys.set(r.name, r);
    const deadlineMs = Math.max(this.opts.deadlineMs, 60_000);
    const first = await this.invoke('C_FindObjects', (l) => l.lane.findKeys(reqs), {
      deadlineMs,
      onLane: (l, out) => out.forEach((r, i) => r.state === 'ready' && l.known.add(reqs[i]!.name)),
    });
    // Every other idle lane that knows nothing yet (at start, after a recovery) learns them too, before this
    // resolves: the first requests then find every lane warm. A lane busy now learns on first use (see learn).
    await Promise.all(this.lanes.filter((l) => l.known.size === 0 && !l.busy && !l.needsRecovery).map((l) => this.teach(l, reqs)));
    return first;
  }

  random(length: number): Promise<Buffer> {
    return this.invoke('C_GenerateRandom', (l) => l.lane.random(length));
  }

  aesGcmSeal(name: string, plaintext: Buffer, aad: Buffer): Promise<AesGcmSealed> {
    return this.invoke('CKM_AES_GCM', (l) => l.lane.aesGcmSeal(name, plaintext, aad), { key: name });
  }

  aesGcmSealRandom(name: string, length: number, aad: Buffer): Promise<AesGcmSealed & { plaintext: Buffer }> {
    return this.invoke('CKM_AES_GCM', (l) => l.lane.aesGcmSealRandom(name, length, aad), { key: name });
  }

  aesGcmEncrypt(name: string, iv: Buffer, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    return this.invoke('CKM_AES_GCM', (l) => l.lane.aesGcmEncrypt(name, iv, plaintext, aad), { key: name });
  }

  aesGcmDecrypt(name: string, iv: Buffer, ciphertextAndTag: Buffer, aad: Buffer): Promise<Buffer> {
    return this.invoke('CKM_AES_GCM', (l) => l.lane.aesGcmDecrypt(name, iv, ciphertextAndTag, aad), { key: name });
  }

  rsaOaepEncrypt(name: string, hash: OaepHash, plaintext: Buffer): Promise<Buffer> {
    return this.invoke(this.oaepMechanism(hash), (l) => l.lane.rsaOaepEncrypt(name, hash, plaintext), { key: name });
  }

  rsaOaepDecrypt(name: string, hash: OaepHash, ciphertext: Buffer): Promise<Buffer> {
    return this.invoke(this.oaepMechanism(hash), (l) => l.lane.rsaOaepDecrypt(name, hash, ciphertext), { key: name });
  }

  private readonly publicKeys = new Map<string, RsaPublicKeyInfo>();

  /** Public keys never change for a key name: cached here, so GetPublicKey and RSA Encrypt's size checks cost no token call. */
  async rsaPublicKey(name: string): Promise<RsaPublicKeyInfo> {
    const cached = this.publicKeys.get(name);
    if (cached !== undefined) return cached;
    const info = await this.invoke('C_GetAttributeValue', (l) => l.lane.rsaPublicKey(name), { key: name });
    this.publicKeys.set(name, info);
    return info;
  }

  generateDataKeyPair(keySpec: RsaKeySpec): Promise<{ privateKeyPkcs8: Buffer; publicKeySpki: Buffer }> {
    return this.invoke('CKM_RSA_PKCS_KEY_PAIR_GEN', (l) => l.lane.generateDataKeyPair(keySpec), { deadlineMs: Math.max(this.opts.deadlineMs, 30_000) });
  }

  /**
   * Destroys the token objects on one lane (which drops its own copy); every
   * other lane forgets the key at once: none routes a call for it any more
   * (a lane that does not know a key must learn it first, and the token no
   * longer has it), and each drops its handles and session copy before its
   * next call, idle lanes right now.
   */
  async destroyKey(name: string): Promise<void> {
    if (!this.keys.has(name)) return;
    let destroyedOn: LaneState | undefined;
    await this.invoke(
      'C_DestroyObject',
      (l) => {
        destroyedOn = l;
        return l.lane.destroyKey(name);
      },
      { key: name },
    );
    this.keys.delete(name);
    this.publicKeys.delete(name);
    await this.forgetEverywhere(name, destroyedOn);
  }

  /** Drops the key's handles and session copies in every lane; the token objects stay (see Hsm.forgetKey). */
  async forgetKey(name: string): Promise<void> {
    this.publicKeys.delete(name);
    await this.forgetEverywhere(name, undefined);
  }

  private async forgetEverywhere(name: string, except: LaneState | undefined): Promise<void> {
    for (const l of this.lanes) {
      l.known.delete(name);
      if (l !== except) l.forget.add(name);
    }
    // Idle lanes drop their copies now; busy, quarantined and unrecovered ones before their next call (a recovery drops all).
    await Promise.all(
      this.lanes
        .filter((l) => l.forget.size > 0 && this.isFree(l) && !l.needsRecovery)
        .map((l) =>
          this.runOnLane(this.take(l), Date.now() + this.opts.deadlineMs, () => this.forgetOnLane(l)).catch(() => {
            // A fault marks the lane for recovery, which drops every copy.
          }),
        ),
    );
  }

  private async forgetOnLane(l: LaneState): Promise<void> {
    for (const name of l.forget) {
      await l.lane.forgetKey(name);
      l.forget.delete(name);
    }
  }

  listRecords(): Promise<HsmRecordRef[]> {
    return this.invoke('C_FindObjects', (l) => l.lane.listRecords(), { deadlineMs: Math.max(this.opts.deadlineMs, 10_000) });
  }

  readRecord(ref: string): Promise<Buffer | undefined> {
    return this.invoke('C_GetAttributeValue', (l) => l.lane.readRecord(ref));
  }

  createRecord(label: string, value: Buffer): Promise<string> {
    return this.invoke('C_CreateObject', (l) => l.lane.createRecord(label, value));
  }

  deleteRecord(ref: string): Promise<void> {
    return this.invoke('C_DestroyObject', (l) => l.lane.deleteRecord(ref));
  }

  // A read finds the marks again when one is gone, a write always does (a C_FindObjects pass each): the records' longer deadline.
  readStateMark(): Promise<Buffer | undefined> {
    return this.invoke('C_GetAttributeValue', (l) => l.lane.readStateMark(), { deadlineMs: Math.max(this.opts.deadlineMs, 10_000) });
  }

  writeStateMark(value: Buffer): Promise<void> {
    return this.invoke('C_CreateObject', (l) => l.lane.writeStateMark(value), { deadlineMs: Math.max(this.opts.deadlineMs, 10_000) });
  }

  describe(): HsmDescription {
    return { ...(this.description ?? this.opts.fallbackDescription), sessionPoolSize: this.lanes.length };
  }

  // ---- health --------------------------------------------------------------

  /** The token refused the PIN: no lane logs in again until a restart. */
  get pinRefused(): boolean {
    return this.refused !== undefined;
  }

  stats(): { inUse: number; idle: number; quarantined: number; circuitOpen: boolean; tokenUp: boolean } {
    let inUse = 0;
    let quarantined = 0;
    for (const l of this.lanes) {
      if (l.quarantined) quarantined++;
      else if (l.busy) inUse++;
    }
    return { inUse, idle: this.lanes.length - inUse - quarantined, quarantined, circuitOpen: this.circuitOpen, tokenUp: this.tokenUp };
  }

  /**
   * Ready when the circuit is closed and the token answered within
   * `readyCacheMs` (a call or a probe of one random byte); concurrent
   * readiness checks share one probe.
   */
  async readiness(): Promise<{ ready: boolean; reason?: string }> {
    if (this.closed) return { ready: false, reason: 'closing' };
    if (this.refused !== undefined) return { ready: false, reason: 'HSM refused the PIN (fix hsm.pin and restart)' };
    if (this.circuitOpen) return { ready: false, reason: this.lastFault === 'timeout' ? 'HSM not answering (circuit open)' : 'HSM unavailable (circuit open)' };
    if (Date.now() - this.lastReadyAt <= this.opts.readyCacheMs) return { ready: true };
    this.readyProbe ??= this.invoke('probe', (l) => l.lane.random(1)).then(
      () => true,
      () => false,
    ).finally(() => (this.readyProbe = undefined));
    return (await this.readyProbe) ? { ready: true } : { ready: false, reason: 'HSM probe failed' };
  }

  /**
   * Stops the probe, lets calls in flight finish (they end by their
   * deadline at the latest; up to `graceMs`), then closes the lanes one at
   * a time. If a call is still running in the token by then (a quarantined
   * lane), nothing is finalised and the token is left to the process exit.
   */
  async close(graceMs = 10_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.probeTimer !== undefined) clearInterval(this.probeTimer);
    for (const w of this.waiters.splice(0)) {
      this.deadlines.cancel(w.timer);
      w.reject(new KeyUnavailableException(TOKEN_UNAVAILABLE, { tokenFault: true }));
    }
    // Calls in flight end by their deadline (then their lane is quarantined): no need to wait for quarantined lanes.
    const until = Date.now() + graceMs;
    while (this.lanes.some((l) => l.busy && !l.quarantined) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    const stuck = this.lanes.filter((l) => l.busy).map((l) => l.index);
    if (stuck.length > 0) {
      // Closing a lane ends in C_Finalize, and SoftHSM2 shares one library
      // state between the lanes of a process: finalising under a call still
      // running on another lane crashes the process. Leave it all to the exit.
      this.opts.log.warn({ lanes: stuck }, 'closing with HSM calls still running; leaving the token to the process exit');
      return;
    }
    // One lane at a time, like recovery: two lanes finalising SoftHSM2 at once corrupt its heap.
    for (const l of this.lanes) {
      // Closing talks to the token too (C_CloseSession, C_Finalize): a token that hangs now does not hold the stop.
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<void>((r) => (timer = setTimeout(r, this.opts.deadlineMs)));
      await Promise.race([l.lane.close().catch(() => undefined), gaveUp]);
      clearTimeout(timer);
    }
  }

  // ---- the engine -----------------------------------------------------------

  private oaepMechanism(hash: OaepHash): HsmMechanism {
    return this.describe().oaep[hash] === 'native' ? 'CKM_RSA_PKCS_OAEP' : 'CKM_RSA_X_509';
  }

  private async invoke<T>(
    mechanism: HsmMechanism,
    fn: (l: LaneState) => Promise<T>,
    opts: { key?: string; deadlineMs?: number | undefined; onLane?: (l: LaneState, result: T) => unknown } = {},
  ): Promise<T> {
    const started = performance.now();
    const deadline = Date.now() + (opts.deadlineMs ?? this.opts.deadlineMs);
    let outcome: HsmCallOutcome = 'internal';
    try {
      if (this.closed) throw new KeyUnavailableException(TOKEN_UNAVAILABLE, { tokenFault: true });
      if (this.circuitOpen) {
        outcome = 'circuit_open';
        throw this.faultError(this.lastFault);
      }
      const lane = await this.acquire(deadline, SLOW.has(mechanism));
      const result = await this.runOnLane(lane, deadline, async () => {
        if (lane.needsRecovery) await this.recoverLane(lane, deadline);
        if (lane.forget.size > 0) await this.forgetOnLane(lane);
        if (opts.key !== undefined && !lane.known.has(opts.key)) await this.learn(lane, opts.key);
        const out = await fn(lane);
        opts.onLane?.(lane, out);
        return out;
      });
      outcome = 'ok';
      return result;
    } catch (e) {
      if (outcome !== 'circuit_open') outcome = this.outcomeOf(e);
      throw e instanceof KmsError ? e : new KMSInternalException();
    } finally {
      this.opts.metrics?.hsmCallDuration.observe({ mechanism, outcome }, (performance.now() - started) / 1000);
    }
  }

  private outcomeOf(e: unknown): HsmCallOutcome {
    if (e instanceof DependencyTimeoutException) return 'timeout';
    if (e instanceof KeyUnavailableException) return e.tokenFault ? 'token_fault' : 'key_unavailable';
    if (e instanceof KmsError) return e.status < 500 ? 'client_error' : 'internal';
    return 'internal';
  }

  /**
   * Runs `work` on a lane it holds, racing the deadline. On success or a
   * non-token error the lane goes back to the pool; on a token fault it is
   * marked for recovery first; past the deadline it stays quarantined until
   * `work` settles.
   */
  private runOnLane<T>(lane: LaneState, deadline: number, work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timedOut = false;
      const timer = this.deadlines.add(deadline, () => {
        timedOut = true;
        this.quarantine(lane);
        this.opts.log.warn({ lane: lane.index }, 'HSM call passed its deadline; session quarantined until the token returns it');
        this.recordFailure('timeout');
        reject(new DependencyTimeoutException(TOKEN_TIMEOUT));
      });
      work().then(
        (value) => {
          this.deadlines.cancel(timer);
          this.recordSuccess();
          // Logged on both paths: the warning at the deadline needs its pair, and a late success is the usual end of a stall.
          if (timedOut) this.opts.log.info({ lane: lane.index }, 'quarantined HSM session returned');
          this.release(lane);
          if (!timedOut) resolve(value);
        },
        (err: unknown) => {
          this.deadlines.cancel(timer);
          const tokenFault = err instanceof KeyUnavailableException && err.tokenFault;
          const timeout = err instanceof DependencyTimeoutException;
          if (tokenFault || timeout) {
            lane.needsRecovery = true;
            // A late fault was already counted as the timeout the caller saw.
            if (!timedOut) this.recordFailure(timeout ? 'timeout' : 'unavailable');
          } else if (!(err instanceof KmsError)) {
            this.opts.log.warn({ lane: lane.index, err: String(err) }, 'HSM lane failed unexpectedly; recovering it before its next call');
            lane.needsRecovery = true;
          } else if (!timedOut) {
            // The token answered (a data or key error): it is up.
            this.recordSuccess();
          }
          if (timedOut) {
            this.opts.log.info({ lane: lane.index }, 'quarantined HSM session returned');
          }
          this.release(lane);
          if (!timedOut) reject(err);
        },
      );
    });
  }

  /**
   * One recovery at a time across lanes: recovering may C_Finalize and
   * C_Initialize the module, and SoftHSM2 shares one library state between
   * the lanes of a process.
   */
  private recovery: Promise<unknown> = Promise.resolve();

  private async recoverLane(lane: LaneState, deadline: number): Promise<void> {
    const turn = this.recovery.then(async () => {
      if (this.refused !== undefined) throw new KeyUnavailableException(this.refused, { permanent: true });
      if (deadline - Date.now() <= 0) throw new DependencyTimeoutException(TOKEN_TIMEOUT);
      try {
        await lane.lane.recover();
      } catch (e) {
        if (e instanceof KeyUnavailableException && e.permanent && this.refused === undefined) {
          this.refused = e.message;
          (this.opts.log.error ?? this.opts.log.warn).call(this.opts.log, { reason: e.message }, 'the HSM refused the PIN; not logging in again (that could lock the user): fix hsm.pin and restart the gateway');
        }
        throw e;
      }
    });
    this.recovery = turn.catch(() => undefined);
    try {
      await turn;
    } catch (e) {
      this.opts.metrics?.hsmRecoveries.inc({ result: 'failed' });
      throw e instanceof KmsError ? e : new KeyUnavailableException(TOKEN_UNAVAILABLE, { tokenFault: true });
    }
    this.opts.metrics?.hsmRecoveries.inc({ result: 'ok' });
    lane.needsRecovery = false;
    // A recovery opened new sessions: every handle and session copy of the old ones is gone.
    lane.known.clear();
    lane.forget.clear();
    this.description ??= lane.lane.describe();
  }

  /**
   * Tells a lane about a key it has not used yet: one find of that key, on
   * the request's deadline. Linear in the token's objects (~65 ms at 1,000
   * keys on SoftHSM2 2.6.1), but never more: a lane thread carries several
   * lanes, and a burst of requests for a key that its lanes do not know
   * yet makes each of them learn it, one after the other on that thread.
   * Learning every unknown key in one pass instead (a scan of every key
   * object, ~500 ms at 1,000 keys) made such a burst after 300 CreateKey
   * wait 580-712 ms per lane (by hand, 8 lanes on one thread); with 32
   * connections the later calls passed the deadline, their lanes were
   * quarantined and recovered (which forgets what they learned), the
   * circuit opened, and a third of the Encrypt answers were
   * DependencyTimeoutException. Whole passes happen only where no request
   * waits for them: findKeys (loading and refreshing the key state) teaches
   * the idle lanes that know nothing yet.
   */
  private async learn(lane: LaneState, name: string): Promise<void> {
    const req = this.keys.get(name);
    if (req === undefined) throw new KMSInternalException(`key material '${name}' was never prepared`);
    const r = await lane.lane.prepareKey({ ...req, createIfMissing: false });
    if (r.state !== 'ready') throw new KeyUnavailableException(`${req.displayName} is unavailable.`);
    lane.known.add(name);
  }

  private async teach(l: LaneState, reqs: PrepareKeyRequest[]): Promise<void> {
    try {
      await this.runOnLane(this.take(l, true), Date.now() + Math.max(this.opts.deadlineMs, 60_000), async () => {
        const out = await l.lane.findKeys(reqs);
        out.forEach((r, i) => r.state === 'ready' && l.known.add(reqs[i]!.name));
      });
    } catch {
      // The lane learns per key on first use instead.
    }
  }

  // ---- lanes: acquire / release ---------------------------------------------

  private take(l: LaneState, slow = false): LaneState {
    l.busy = true;
    l.group.busy++;
    if (slow) {
      l.slow = true;
      l.group.slow++;
    }
    return l;
  }

  private isFree(l: LaneState): boolean {
    return !l.busy && !l.quarantined && l.group.stuck === 0;
  }

  /**
   * A free lane of the least loaded group: a group running a slow call
   * last (a call given to it would wait behind that one), then the group
   * with the fewest calls. Lanes standing alone are all equally loaded when
   * free, so this is the first free lane.
   */
  private freeLane(): LaneState | undefined {
    let best: LaneState | undefined;
    let bestLoad = Infinity;
    for (const l of this.lanes) {
      if (!this.isFree(l)) continue;
      const load = l.group.slow * 1_000_000 + l.group.busy;
      if (load === 0) return l;
      if (load < bestLoad) {
        best = l;
        bestLoad = load;
      }
    }
    return best;
  }

  private quarantine(lane: LaneState): void {
    lane.quarantined = true;
    lane.group.stuck++;
  }

  private acquire(deadline: number, slow: boolean): Promise<LaneState> {
    const free = this.freeLane();
    if (free !== undefined && this.waiters.length === 0) return Promise.resolve(this.take(free, slow));
    return new Promise<LaneState>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        deadline,
        slow,
        timer: this.deadlines.add(deadline, () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          // Lanes busy with calls that progress say the gateway is overloaded,
          // not that the token failed: not a breaker failure. But when every
          // lane is held up by a call stuck in the token (quarantined, or on a
          // thread with a quarantined lane), the token is what failed this call:
          // with a few threads, only a few calls can be stuck in it themselves.
          if (this.lanes.every((l) => l.group.stuck > 0)) this.recordFailure('timeout');
          reject(new DependencyTimeoutException(TOKEN_TIMEOUT));
        }),
      };
      this.waiters.push(w);
    });
  }

  /** The lane is idle again; waiting calls get it (or, when its group is no longer held up, any lane of the group). */
  private release(lane: LaneState): void {
    lane.busy = false;
    lane.group.busy--;
    if (lane.slow) {
      lane.slow = false;
      lane.group.slow--;
    }
    if (lane.quarantined) {
      lane.quarantined = false;
      lane.group.stuck--;
    }
    while (this.waiters.length > 0) {
      const free = this.freeLane();
      if (free === undefined) return;
      const w = this.waiters.shift()!;
      this.deadlines.cancel(w.timer);
      w.resolve(this.take(free, w.slow));
    }
  }

  // ---- circuit breaker ------------------------------------------------------

  private faultError(kind: FaultKind): KmsError {
    return kind === 'timeout' ? new DependencyTimeoutException(TOKEN_TIMEOUT) : new KeyUnavailableException(TOKEN_UNAVAILABLE, { tokenFault: true });
  }

  private recordSuccess(): void {
    this.consecutiveFailures = 0;
    this.lastReadyAt = Date.now();
    this.tokenUp = true;
  }

  private recordFailure(kind: FaultKind): void {
    this.lastFault = kind;
    this.tokenUp = false;
    if (++this.consecutiveFailures >= this.opts.failureThreshold && !this.circuitOpen) this.openCircuit(kind);
  }

  private openCircuit(kind: FaultKind): void {
    if (this.closed) return;
    this.circuitOpen = true;
    this.lastFault = kind;
    this.opts.log.warn({ fault: kind, failures: this.consecutiveFailures }, 'HSM circuit open: failing fast, probing the token in the background');
    this.probeTimer ??= setInterval(() => void this.probe(), this.opts.probeIntervalMs);
    this.probeTimer.unref();
  }

  private closeCircuit(): void {
    if (this.probeTimer !== undefined) clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    if (this.circuitOpen) this.opts.log.info({}, 'HSM circuit closed: the token answers again');
    this.circuitOpen = false;
    this.consecutiveFailures = 0;
  }

  /** One background probe: recover an idle lane and ask the token for a random byte. */
  private async probe(): Promise<void> {
    if (this.probing || this.closed || !this.circuitOpen || this.refused !== undefined) return;
    const free = this.freeLane();
    if (free === undefined) return; // every lane is stuck in the token: nothing to probe with
    this.probing = true;
    const started = performance.now();
    let outcome: HsmCallOutcome = 'ok';
    try {
      const lane = this.take(free);
      await this.runOnLane(lane, Date.now() + this.opts.deadlineMs, async () => {
        await this.recoverLane(lane, Date.now() + this.opts.deadlineMs);
        await lane.lane.random(1);
      });
      // Every other lane re-opens its session before its next call.
      for (const l of this.lanes) if (l !== lane) l.needsRecovery = true;
      this.closeCircuit();
    } catch (e) {
      outcome = this.outcomeOf(e);
    } finally {
      this.probing = false;
      this.opts.metrics?.hsmCallDuration.observe({ mechanism: 'probe', outcome }, (performance.now() - started) / 1000);
    }
  }
}
