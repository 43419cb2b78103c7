/**
 * GuardedHsm's fault handling, told as stories over lanes of the in-memory
 * fake HSM that share one fake token: a frozen token (a SIGSTOPped network
 * HSM), a token that is down, a key object deleted behind the gateway's
 * back, bad ciphertext, a lane that throws something that is not a KMS
 * error. Deadlines are small and real (no fake timers); timing assertions
 * are deadline bounds only, with generous slack above them.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { expect } from 'chai';
import { DependencyTimeoutException, InvalidCiphertextException, KeyUnavailableException, KMSInternalException } from '../../src/errors.js';
import { GuardedHsm } from '../../src/hsm/guarded-hsm.js';
import type { PrepareKeyRequest } from '../../src/hsm/hsm.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { FakeHsm, type FakeToken } from '../support/fake-hsm.js';

/** How late past its deadline a call may settle and still count as "at the deadline": generous, for a busy CI machine. */
const SLACK_MS = 1000;
/**
 * A deadline timer counts from libuv's cached loop clock in whole
 * milliseconds, which can lag the moment the call started: it may fire a
 * little before `deadlineMs` of performance.now() have passed.
 */
const EARLY_MS = 10;

interface Rig {
  hsm: GuardedHsm;
  lanes: FakeHsm[];
  token: FakeToken;
  metrics: Metrics;
  /** Every log message GuardedHsm wrote, in order. */
  logs: string[];
  opts: { deadlineMs: number; failureThreshold: number; probeIntervalMs: number; readyCacheMs: number };
}

const rigs: Rig[] = [];
const run = randomUUID().slice(0, 8);

function keyReq(n: string): PrepareKeyRequest {
  return { name: n, displayName: `key ${n}`, keySpec: 'SYMMETRIC_DEFAULT', createIfMissing: true, ref: { label: `label-${n}-${run}` } };
}

/**
 * A GuardedHsm over `lanes` fake lanes on one token. Unless `start` is
 * false it is started, knows the AES keys `aes` and `aes2`, and every lane
 * has used `aes` once (so each lane knows it, and with `sessionKeyCopies`
 * holds a copy of it); the lanes' call logs are then cleared, so a story
 * counts only its own calls.
 */
async function rig(o: Partial<Rig['opts']> & { lanes?: number; start?: boolean; sessionKeyCopies?: boolean; groups?: string[] } = {}): Promise<Rig> {
  const laneOpts = (i: number) => ({ sessionKeyCopies: o.sessionKeyCopies ?? false, group: o.groups?.[i] });
  const first = new FakeHsm(undefined, laneOpts(0));
  const lanes = [first, ...Array.from({ length: (o.groups?.length ?? o.lanes ?? 3) - 1 }, (_, i) => new FakeHsm(first, laneOpts(i + 1)))];
  const metrics = createMetrics({ defaultMetrics: false });
  const logs: string[] = [];
  const opts = { deadlineMs: o.deadlineMs ?? 100, failureThreshold: o.failureThreshold ?? 5, probeIntervalMs: o.probeIntervalMs ?? 50, readyCacheMs: o.readyCacheMs ?? 1000 };
  const hsm = new GuardedHsm({
    lanes,
    ...opts,
    metrics,
    log: { info: (_o, m) => logs.push(m), warn: (_o, m) => logs.push(m) },
    fallbackDescription: first.describe(),
  });
  const r: Rig = { hsm, lanes, token: first.token, metrics, logs, opts };
  rigs.push(r);
  if (o.start !== false) {
    await hsm.start();
    await warm(r);
  }
  return r;
}

async function warm(r: Rig): Promise<void> {
  await r.hsm.prepareKey(keyReq('aes'));
  await r.hsm.prepareKey(keyReq('aes2'));
  // Concurrent, so each call takes a lane of its own.
  await Promise.all(r.lanes.map(() => encrypt(r.hsm)));
  for (const l of r.lanes) l.calls = [];
}

function encrypt(hsm: GuardedHsm, key = 'aes', plaintext = 'x', iv = Buffer.alloc(12)): Promise<Buffer> {
  return hsm.aesGcmEncrypt(key, iv, Buffer.from(plaintext), Buffer.alloc(0));
}

/** How a call settled and how long it took. */
async function settle<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> {
  const started = performance.now();
  try {
    const value = await p;
    return { value, ms: performance.now() - started };
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
}

/** Polls until cond() holds; fails after `ms` (a bound, not a speed claim). */
async function eventually(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`${what}: not reached within ${ms} ms`);
    await sleep(10);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One series of a metric, read back from the registry (0 when absent). */
async function metric(m: Metrics, name: string, labels: Record<string, string> = {}, series = name): Promise<number> {
  const data = await m.registry.getSingleMetric(name)!.get();
  const found = data.values.find((v) => ((v as { metricName?: string }).metricName ?? name) === series && Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return found?.value ?? 0;
}

/** Every call the lanes entered since their logs were cleared. */
const calls = (r: Rig) => r.lanes.flatMap((l) => l.calls);

describe('GuardedHsm fault handling (fake HSM lanes)', function () {
  this.timeout(20_000);

  // Every story closes its GuardedHsm, with the token thawed and up so no call is left hanging.
  afterEach(async () => {
    for (const r of rigs.splice(0)) {
      r.token.thaw();
      r.token.up();
      for (const l of r.lanes) l.thaw();
      await r.hsm.close();
    }
  });

  describe('a refused PIN', () => {
    it('when the token refuses the PIN, no lane tries to log in again (each try counts toward locking the user): calls answer KeyUnavailableException and readiness says why', async () => {
      const r = await rig({ start: false, probeIntervalMs: 20 });
      for (const l of r.lanes) l.failOn('recover', () => new KeyUnavailableException('The HSM refused the PIN (CKR_PIN_INCORRECT).', { permanent: true }), Infinity);
      await r.hsm.start();
      await sleep(10 * r.opts.probeIntervalMs);
      const err = (await settle(r.hsm.random(4))).error;
      expect(err).to.be.instanceOf(KeyUnavailableException);
      expect((err as KeyUnavailableException).tokenFault).to.equal(true);
      expect(calls(r).filter((c) => c === 'recover'), 'login attempts').to.have.length(1);
      expect(await r.hsm.readiness()).to.deep.equal({ ready: false, reason: 'HSM refused the PIN (fix hsm.pin and restart)' });
      expect(r.logs.filter((m) => m.includes('refused the PIN'))).to.have.length(1);
    });
  });

  describe('a frozen token', () => {
    it('when one lane is frozen, Encrypt answers DependencyTimeoutException at the deadline, the lane is counted quarantined, and another lane still works', async () => {
      const r = await rig({ deadlineMs: 100 });
      r.lanes[0]!.freeze();

      const stuck = await settle(encrypt(r.hsm));
      expect(stuck.error).to.be.instanceOf(DependencyTimeoutException);
      expect(stuck.ms).to.be.within(r.opts.deadlineMs - EARLY_MS, r.opts.deadlineMs + SLACK_MS);

      expect(r.hsm.stats()).to.include({ quarantined: 1, inUse: 0, idle: 2, circuitOpen: false });
      expect(await metric(r.metrics, 'kmsgw_hsm_sessions', { state: 'quarantined' })).to.equal(1);
      expect(await metric(r.metrics, 'kmsgw_hsm_sessions', { state: 'idle' })).to.equal(2);
      expect(await metric(r.metrics, 'kmsgw_hsm_call_duration_seconds', { mechanism: 'CKM_AES_GCM', outcome: 'timeout' }, 'kmsgw_hsm_call_duration_seconds_count')).to.equal(1);
      expect(r.logs).to.include('HSM call passed its deadline; session quarantined until the token returns it');

      const ok = await settle(encrypt(r.hsm));
      expect(ok.error).to.equal(undefined);
      expect(ok.value).to.have.length(1 + 16);
      expect(r.lanes[1]!.calls).to.deep.equal(['aesGcmEncrypt']);
      expect(r.lanes[0]!.calls, 'the quarantined lane is given no other call').to.deep.equal(['aesGcmEncrypt']);
    });

    it('lanes on one thread are held up together: while one is quarantined its group-mate gets no new call, the other thread\'s lanes take them, until the frozen call returns', async () => {
      const r = await rig({ groups: ['thread A', 'thread A', 'thread B', 'thread B'], deadlineMs: 100 });
      r.lanes[0]!.freeze();
      expect((await settle(encrypt(r.hsm))).error).to.be.instanceOf(DependencyTimeoutException);
      expect(r.hsm.stats()).to.include({ quarantined: 1 });

      const meanwhile = await Promise.all([settle(encrypt(r.hsm)), settle(encrypt(r.hsm))]);
      for (const m of meanwhile) expect(m.error).to.equal(undefined);
      expect(r.lanes[1]!.calls, 'the frozen lane\'s group-mate was given nothing').to.deep.equal([]);
      expect([...r.lanes[2]!.calls, ...r.lanes[3]!.calls]).to.deep.equal(['aesGcmEncrypt', 'aesGcmEncrypt']);

      r.lanes[0]!.thaw();
      await eventually('the lane is back', () => r.hsm.stats().quarantined === 0);
      await Promise.all(r.lanes.map(() => encrypt(r.hsm)));
      expect(r.lanes[1]!.calls, 'thread A serves again').to.deep.equal(['aesGcmEncrypt']);
    });

    it('with every thread held up by a stuck call, calls that time out waiting for a lane count toward the breaker: the circuit opens and then fails fast', async () => {
      const r = await rig({ groups: ['thread A', 'thread A', 'thread B', 'thread B'], deadlineMs: 80, failureThreshold: 3 });
      r.token.freeze();
      try {
        for (let i = 0; i < 3; i++) expect((await settle(encrypt(r.hsm))).error).to.be.instanceOf(DependencyTimeoutException);
        expect(calls(r), 'one stuck call per thread; the third never reached a lane').to.deep.equal(['aesGcmEncrypt', 'aesGcmEncrypt']);
        expect(r.hsm.stats().circuitOpen).to.equal(true);
        const fast = await settle(encrypt(r.hsm));
        expect(fast.error).to.be.instanceOf(DependencyTimeoutException);
        expect(fast.ms, 'failed fast').to.be.below(r.opts.deadlineMs);
      } finally {
        r.token.thaw();
      }
      await eventually('the probe closes the circuit', () => !r.hsm.stats().circuitOpen);
    });

    it('calls go to the least busy thread, and not behind a slow call (key generation) while another thread has room', async () => {
      const r = await rig({ groups: ['thread A', 'thread A', 'thread B', 'thread B'], deadlineMs: 1000 });
      r.lanes[0]!.freeze();
      const generating = r.hsm.prepareKey({ ...keyReq('fresh'), createIfMissing: true });
      await eventually('the key generation holds lane A0', () => r.lanes[0]!.calls.length > 0);
      const quick = await Promise.all([settle(encrypt(r.hsm)), settle(encrypt(r.hsm))]);
      for (const q of quick) expect(q.error).to.equal(undefined);
      expect(r.lanes[1]!.calls, 'nothing queued behind the key generation').to.deep.equal([]);
      expect(r.lanes[2]!.calls.length + r.lanes[3]!.calls.length).to.equal(2);
      r.lanes[0]!.thaw();
      expect(await generating).to.deep.equal({ state: 'ready', created: true });
    });

    it('waiting for a free lane counts against the deadline: with every lane frozen, a queued call times out at its own deadline without reaching a lane', async () => {
      const r = await rig({ lanes: 2, deadlineMs: 150, failureThreshold: 10 });
      for (const l of r.lanes) l.freeze();
      const holders = [settle(encrypt(r.hsm)), settle(encrypt(r.hsm))];
      await sleep(50);

      const queued = await settle(encrypt(r.hsm));
      expect(queued.error).to.be.instanceOf(DependencyTimeoutException);
      expect(queued.ms).to.be.within(r.opts.deadlineMs - EARLY_MS, r.opts.deadlineMs + SLACK_MS);
      for (const h of await Promise.all(holders)) expect(h.error).to.be.instanceOf(DependencyTimeoutException);
      expect(calls(r), 'only the two calls that held a lane reached the token').to.deep.equal(['aesGcmEncrypt', 'aesGcmEncrypt']);
      expect(r.hsm.stats()).to.include({ quarantined: 2, inUse: 0, idle: 0 });
    });

    it('a quarantined lane returns to idle when the frozen call finally returns, and its caller, long gone, is not answered twice', async () => {
      const r = await rig({ deadlineMs: 100 });
      r.lanes[0]!.freeze();
      const answers: string[] = [];
      const first = encrypt(r.hsm, 'aes', 'first');
      first.then(
        () => answers.push('value'),
        (e: Error) => answers.push(e.name),
      );
      expect((await settle(first)).error).to.be.instanceOf(DependencyTimeoutException);
      expect(r.hsm.stats().quarantined).to.equal(1);

      r.lanes[0]!.thaw();
      await eventually('the lane is back', () => r.hsm.stats().quarantined === 0);
      expect(r.hsm.stats()).to.include({ quarantined: 0, inUse: 0, idle: 3 });
      expect(await metric(r.metrics, 'kmsgw_hsm_sessions', { state: 'quarantined' })).to.equal(0);
      expect(await metric(r.metrics, 'kmsgw_hsm_sessions', { state: 'idle' })).to.equal(3);
      expect(r.logs).to.include('quarantined HSM session returned');
      await sleep(20);
      expect(answers, 'the late result went to no one').to.deep.equal(['DependencyTimeoutException']);

      // The returned lane serves again (it is the first idle one).
      await encrypt(r.hsm);
      expect(r.lanes[0]!.calls).to.deep.equal(['aesGcmEncrypt', 'aesGcmEncrypt']);
    });

    it('a call queued behind a quarantined lane gets the lane when the frozen call returns, and its own answer, not the late one', async () => {
      const r = await rig({ lanes: 1, deadlineMs: 100 });
      r.lanes[0]!.freeze();
      expect((await settle(encrypt(r.hsm, 'aes', 'first', Buffer.alloc(12, 1)))).error).to.be.instanceOf(DependencyTimeoutException);

      const ivB = Buffer.alloc(12, 2);
      const second = settle(encrypt(r.hsm, 'aes', 'second', ivB));
      r.lanes[0]!.thaw();
      const b = await second;
      expect(b.error).to.equal(undefined);
      expect((await r.hsm.aesGcmDecrypt('aes', ivB, b.value!, Buffer.alloc(0))).toString()).to.equal('second');
    });

    it('after repeated timeouts the circuit opens and DependencyTimeoutException is the fast answer; once thawed, the probe closes it', async () => {
      const r = await rig({ deadlineMs: 100, failureThreshold: 2, probeIntervalMs: 50 });
      r.token.freeze();
      for (let i = 0; i < 2; i++) expect((await settle(encrypt(r.hsm))).error).to.be.instanceOf(DependencyTimeoutException);
      expect(r.hsm.stats()).to.include({ circuitOpen: true, tokenUp: false });
      expect(await metric(r.metrics, 'kmsgw_hsm_circuit_open')).to.equal(1);

      const before = calls(r).filter((c) => c === 'aesGcmEncrypt').length;
      const fast = await settle(encrypt(r.hsm));
      expect(fast.error).to.be.instanceOf(DependencyTimeoutException);
      expect(fast.ms, 'fails fast, well before the deadline').to.be.below(r.opts.deadlineMs);
      expect(calls(r).filter((c) => c === 'aesGcmEncrypt').length, 'the fast answer never reached a lane').to.equal(before);

      r.token.thaw();
      await eventually('the circuit closes', () => !r.hsm.stats().circuitOpen);
      expect((await settle(encrypt(r.hsm))).error).to.equal(undefined);
      expect(await metric(r.metrics, 'kmsgw_hsm_circuit_open')).to.equal(0);
    });
  });

  describe('a token that is down', () => {
    it('answers KeyUnavailableException (tokenFault), opens the circuit after failureThreshold in a row, fails fast, and closes it by the probe once the token is up: no restart', async () => {
      const r = await rig({ deadlineMs: 100, failureThreshold: 3, probeIntervalMs: 50 });
      r.token.down();
      for (let i = 0; i < r.opts.failureThreshold; i++) {
        expect(r.hsm.stats().circuitOpen, `still closed before fault ${i + 1}`).to.equal(false);
        const e = (await settle(encrypt(r.hsm))).error;
        expect(e).to.be.instanceOf(KeyUnavailableException);
        expect((e as KeyUnavailableException).tokenFault).to.equal(true);
      }
      expect(r.hsm.stats()).to.include({ circuitOpen: true, tokenUp: false });
      expect(await metric(r.metrics, 'kmsgw_hsm_circuit_open')).to.equal(1);
      expect(await metric(r.metrics, 'kmsgw_hsm_token_up')).to.equal(0);

      const before = calls(r).filter((c) => c === 'aesGcmEncrypt').length;
      const fast = await settle(encrypt(r.hsm));
      expect(fast.error).to.be.instanceOf(KeyUnavailableException);
      expect(fast.ms, 'fails fast, well before the deadline').to.be.below(r.opts.deadlineMs);
      expect(calls(r).filter((c) => c === 'aesGcmEncrypt').length, 'the fast answer never reached a lane').to.equal(before);
      expect(await metric(r.metrics, 'kmsgw_hsm_call_duration_seconds', { outcome: 'circuit_open' }, 'kmsgw_hsm_call_duration_seconds_count')).to.equal(1);

      const recovered = await metric(r.metrics, 'kmsgw_hsm_recoveries_total', { result: 'ok' });
      r.token.up();
      await eventually('the probe closes the circuit', () => !r.hsm.stats().circuitOpen);
      expect(await metric(r.metrics, 'kmsgw_hsm_circuit_open')).to.equal(0);
      expect(await metric(r.metrics, 'kmsgw_hsm_token_up')).to.equal(1);
      // Every lane lost its session while the token was down; each recovers before its next call.
      const results = await Promise.all(r.lanes.map(() => settle(encrypt(r.hsm))));
      for (const res of results) expect(res.error).to.equal(undefined);
      for (const l of r.lanes) expect(l.calls).to.include('aesGcmEncrypt');
      expect(await metric(r.metrics, 'kmsgw_hsm_recoveries_total', { result: 'ok' })).to.be.above(recovered);
      expect(await metric(r.metrics, 'kmsgw_hsm_recoveries_total', { result: 'failed' })).to.be.above(0);
    });

    it('start() with the token down does not throw; readiness is not ready, and becomes ready once the token is up', async () => {
      const r = await rig({ start: false, probeIntervalMs: 50 });
      r.token.down();
      await r.hsm.start();
      expect(r.hsm.stats()).to.include({ circuitOpen: true, tokenUp: false });
      const notReady = await r.hsm.readiness();
      expect(notReady.ready).to.equal(false);
      expect(notReady.reason).to.match(/unavailable/i);
      expect(await metric(r.metrics, 'kmsgw_hsm_token_up')).to.equal(0);
      expect((await settle(r.hsm.random(1))).error).to.be.instanceOf(KeyUnavailableException);

      r.token.up();
      await eventually('ready', async () => (await r.hsm.readiness()).ready);
      expect(r.hsm.stats()).to.include({ circuitOpen: false, tokenUp: true });
      await warm(r);
      expect((await settle(encrypt(r.hsm))).error).to.equal(undefined);
    });
  });

  describe('faults that say nothing about the token', () => {
    it('a missing key object answers KeyUnavailableException for that key only; other keys keep working and the circuit never opens', async () => {
      const r = await rig({ failureThreshold: 2 });
      expect(r.lanes[0]!.deleteKeyObject(keyReq('aes').ref.label!)).to.equal(1);
      for (let i = 0; i < 3; i++) {
        // Concurrent: every lane, including one that learns the key afresh, finds it missing.
        const gone = await Promise.all(r.lanes.map(() => settle(encrypt(r.hsm, 'aes'))));
        for (const g of gone) {
          expect(g.error).to.be.instanceOf(KeyUnavailableException);
          expect((g.error as KeyUnavailableException).tokenFault).to.equal(false);
        }
        expect((await settle(encrypt(r.hsm, 'aes2'))).error).to.equal(undefined);
      }
      expect(r.hsm.stats()).to.include({ circuitOpen: false, tokenUp: true });
      expect(await metric(r.metrics, 'kmsgw_hsm_circuit_open')).to.equal(0);
      expect(await metric(r.metrics, 'kmsgw_hsm_call_duration_seconds', { outcome: 'key_unavailable' }, 'kmsgw_hsm_call_duration_seconds_count')).to.equal(9);
    });

    it('bad ciphertext (InvalidCiphertextException) never counts toward the breaker', async () => {
      const r = await rig({ failureThreshold: 2 });
      const iv = Buffer.alloc(12);
      const ct = await encrypt(r.hsm, 'aes', 'secret', iv);
      const flipped = Buffer.from(ct);
      flipped[0]! ^= 1;
      // One token fault: one more fault of any kind that counted would open the circuit.
      r.lanes[0]!.failOn('aesGcmDecrypt', () => new KeyUnavailableException('The HSM is unavailable.', { tokenFault: true }));
      expect((await settle(r.hsm.aesGcmDecrypt('aes', iv, ct, Buffer.alloc(0)))).error).to.be.instanceOf(KeyUnavailableException);
      for (let i = 0; i < 5; i++) {
        expect((await settle(r.hsm.aesGcmDecrypt('aes', iv, flipped, Buffer.alloc(0)))).error).to.be.instanceOf(InvalidCiphertextException);
      }
      expect(r.hsm.stats().circuitOpen).to.equal(false);
      expect(await metric(r.metrics, 'kmsgw_hsm_circuit_open')).to.equal(0);
      expect((await r.hsm.aesGcmDecrypt('aes', iv, ct, Buffer.alloc(0))).toString()).to.equal('secret');
    });

    it('a non-KMS error thrown inside a lane becomes KMSInternalException (its text not passed on), and the lane recovers before its next call', async () => {
      const r = await rig();
      r.lanes[0]!.failOn('aesGcmEncrypt', () => new TypeError('boom: lane internals'));
      const failed = await settle(encrypt(r.hsm));
      expect(failed.error).to.be.instanceOf(KMSInternalException);
      expect((failed.error as Error).message).to.not.contain('boom');
      expect(r.logs).to.include('HSM lane failed unexpectedly; recovering it before its next call');
      expect(r.hsm.stats().circuitOpen).to.equal(false);

      r.lanes[0]!.calls = [];
      expect((await settle(encrypt(r.hsm))).error).to.equal(undefined);
      expect(r.lanes[0]!.calls[0], 'recovered first').to.equal('recover');
      expect(r.lanes[0]!.calls).to.include('aesGcmEncrypt');
    });
  });

  describe('learning keys per lane', () => {
    it('a lane that lacks many keys learns only the one a request needs (one find), never a pass over every key on the request\'s deadline', async () => {
      const r = await rig({ lanes: 2 });
      for (let i = 0; i < 10; i++) await r.hsm.prepareKey(keyReq(`many${i}`));
      expect(r.lanes[1]!.calls, 'the keys were made on the first lane').to.deep.equal([]);
      r.lanes[0]!.freeze();
      const held = settle(encrypt(r.hsm, 'aes2'));
      expect((await settle(encrypt(r.hsm, 'many3'))).error).to.equal(undefined);
      expect(r.lanes[1]!.calls, 'one key found, then used').to.deep.equal(['prepareKey', 'aesGcmEncrypt']);
      expect((await settle(encrypt(r.hsm, 'many3'))).error).to.equal(undefined);
      expect(r.lanes[1]!.calls, 'known from then on').to.deep.equal(['prepareKey', 'aesGcmEncrypt', 'aesGcmEncrypt']);
      r.lanes[0]!.thaw();
      await held;
    });
  });

  describe('session copies of keys in the lanes (hsm.sessionKeyCopies)', () => {
    it('a key destroyed through the gateway stops working on every lane at once, though each lane held a copy of it', async () => {
      const r = await rig({ sessionKeyCopies: true });
      await r.hsm.destroyKey('aes');
      expect(r.lanes.filter((l) => l.calls.includes('destroyKey')), 'destroyed on one lane').to.have.length(1);
      for (const l of r.lanes.filter((x) => !x.calls.includes('destroyKey')))
        expect(l.calls, 'every other (idle) lane dropped its copy before destroyKey returned').to.deep.equal(['forgetKey']);
      const after = await Promise.all(r.lanes.map(() => settle(encrypt(r.hsm, 'aes'))));
      for (const a of after) expect(a.error, 'no lane encrypts with a destroyed key').to.not.equal(undefined);
      expect(calls(r), 'no copy was used').to.not.include('aesGcmEncrypt');
      expect((await settle(encrypt(r.hsm, 'aes2'))).error).to.equal(undefined);
    });

    it('a key object deleted behind the gateway\'s back keeps working from the lanes\' copies until forgetKey; then every lane answers KeyUnavailableException and other keys work', async () => {
      const r = await rig({ sessionKeyCopies: true, failureThreshold: 2 });
      expect(r.token.deleteKeyObject(keyReq('aes').ref.label!)).to.equal(1);
      const copied = await Promise.all(r.lanes.map(() => settle(encrypt(r.hsm, 'aes'))));
      for (const c of copied) expect(c.error, 'each lane still has its copy').to.equal(undefined);

      await r.hsm.forgetKey('aes');
      for (const l of r.lanes) expect(l.calls).to.include('forgetKey');
      for (let i = 0; i < 2; i++) {
        const gone = await Promise.all(r.lanes.map(() => settle(encrypt(r.hsm, 'aes'))));
        for (const g of gone) {
          expect(g.error).to.be.instanceOf(KeyUnavailableException);
          expect((g.error as KeyUnavailableException).tokenFault).to.equal(false);
        }
      }
      expect((await settle(encrypt(r.hsm, 'aes2'))).error).to.equal(undefined);
      expect(r.hsm.stats().circuitOpen).to.equal(false);
    });

    it('forgetKey leaves the token object alone: the key works again on every lane, found afresh', async () => {
      const r = await rig({ sessionKeyCopies: true });
      await r.hsm.forgetKey('aes');
      const again = await Promise.all(r.lanes.map(() => settle(encrypt(r.hsm, 'aes'))));
      for (const a of again) expect(a.error).to.equal(undefined);
      for (const l of r.lanes) expect(l.calls, 'forgot, learned again, encrypted').to.deep.equal(['forgetKey', 'prepareKey', 'aesGcmEncrypt']);
    });

    it('a lane busy in the token when the key is destroyed drops its copy before its next call', async () => {
      const r = await rig({ sessionKeyCopies: true, lanes: 2, deadlineMs: 1000 });
      r.lanes[0]!.freeze();
      const stuck = encrypt(r.hsm, 'aes2');
      await eventually('the frozen lane holds a call', () => r.lanes[0]!.calls.length > 0);
      await r.hsm.destroyKey('aes');
      expect(r.lanes[0]!.calls, 'the busy lane was not interrupted').to.deep.equal(['aesGcmEncrypt']);
      r.lanes[0]!.thaw();
      await stuck;
      r.lanes[1]!.freeze();
      expect((await settle(encrypt(r.hsm, 'aes2'))).error).to.equal(undefined);
      expect(r.lanes[0]!.calls).to.deep.equal(['aesGcmEncrypt', 'forgetKey', 'aesGcmEncrypt']);
      r.lanes[1]!.thaw();
    });
  });

  describe('readiness', () => {
    it('caches its token probe for readyCacheMs; concurrent checks share one probe', async () => {
      const r = await rig({ readyCacheMs: 300 });
      const probes = () => calls(r).filter((c) => c === 'random').length;
      await sleep(r.opts.readyCacheMs + 50); // the token last answered during warm-up: let that go stale

      const results = await Promise.all([r.hsm.readiness(), r.hsm.readiness(), r.hsm.readiness()]);
      for (const res of results) expect(res).to.deep.equal({ ready: true });
      expect(probes(), 'one probe for three concurrent checks').to.equal(1);

      expect(await r.hsm.readiness()).to.deep.equal({ ready: true });
      expect(await r.hsm.readiness()).to.deep.equal({ ready: true });
      expect(probes(), 'answered from the cache').to.equal(1);

      await sleep(r.opts.readyCacheMs + 50);
      expect(await r.hsm.readiness()).to.deep.equal({ ready: true });
      expect(probes(), 'probed again once the cache is stale').to.equal(2);
    });
  });
});
