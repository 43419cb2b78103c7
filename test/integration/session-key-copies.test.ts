/**
 * hsm.sessionKeyCopies on a real SoftHSM2 token: every lane encrypts with
 * its own in-token session copy of a key (C_CopyObject, CKA_TOKEN false).
 * What that changes, told on GuardedHsm over worker lanes as the gateway
 * runs it: a key destroyed through the gateway stops at once on every lane;
 * a token object deleted behind the gateway's back (pkcs11-tool, another
 * process) goes on working from the copies until forgetKey(), which is why
 * the option is off by default. scripts/test.sh provides the token.
 */
import { randomUUID } from 'node:crypto';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { expect } from 'chai';
import { KeyUnavailableException, type KmsError } from '../../src/errors.js';
import type { GuardedHsm } from '../../src/hsm/guarded-hsm.js';
import type { PrepareKeyRequest } from '../../src/hsm/hsm.js';
import { openPkcs11Hsm } from '../../src/hsm/pkcs11/open.js';
import type { CopyLoopData } from '../support/copy-loop.js';
import type { TokenDir } from '../support/gateway.js';
import { deleteKeyObject } from '../support/ops.js';

const LANES = 3;

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set: run the tests through scripts/test.sh`);
  return v;
}

async function failure(p: Promise<unknown>): Promise<KmsError> {
  try {
    await p;
  } catch (e) {
    return e as KmsError;
  }
  throw new Error('expected the call to fail');
}

describe('session copies of keys in the lanes, on a real SoftHSM2 token', function () {
  this.timeout(60_000);
  const run = randomUUID().slice(0, 8);
  const token: TokenDir = {
    dir: dirname(env('KMSGW_TEST_PIN_FILE')),
    conf: env('SOFTHSM2_CONF'),
    pinFile: env('KMSGW_TEST_PIN_FILE'),
    label: env('KMSGW_TEST_TOKEN_LABEL'),
  };
  let hsm: GuardedHsm;
  const key = (n: string): PrepareKeyRequest => ({
    name: `${n}-${run}`,
    displayName: `key ${n}`,
    keySpec: 'SYMMETRIC_DEFAULT',
    createIfMissing: true,
    ref: { label: `copies-${n}-${run}` },
  });
  /** One seal per lane at once: each lane makes (or uses) its own copy. */
  const onEveryLane = (n: string) =>
    Promise.all(Array.from({ length: LANES }, () => hsm.aesGcmSeal(`${n}-${run}`, Buffer.from('copied'), Buffer.alloc(0)).then(() => undefined, (e: unknown) => e)));

  /**
   * Runs fn while a worker thread copies the token key labelled `label` into
   * session objects, one every half millisecond or so, and destroys them a
   * few copies later (test/support/copy-loop.ts). SoftHSM 2.6.1's
   * C_CopyObject makes the session object with every attribute of the
   * original, CKA_TOKEN true included, and applies the template's CKA_TOKEN
   * false only afterwards: a find in another session at that moment matches
   * the copy as well. The loop makes the lanes' finds meet that moment now
   * and then.
   */
  async function whileCopying<T>(label: string, fn: () => Promise<T>): Promise<T> {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const data: CopyLoopData = { label, pinFile: token.pinFile, tokenLabel: token.label, stop };
    const copier = new Worker(new URL('../support/copy-loop.js', import.meta.url), { workerData: data });
    await once(copier, 'message'); // started (or the worker's error, thrown here)
    const done = new Promise<number>((resolve, reject) => {
      copier.on('message', (m: { copies?: number }) => m.copies !== undefined && resolve(m.copies));
      copier.on('error', reject);
    });
    try {
      return await fn();
    } finally {
      Atomics.store(stop, 0, 1);
      Atomics.notify(stop, 0);
      expect(await done, 'copies made meanwhile').to.be.greaterThan(0);
    }
  }

  before(async () => {
    hsm = await openPkcs11Hsm(
      {
        module: '/usr/lib/softhsm/libsofthsm2.so',
        token: { label: token.label },
        pin: { file: token.pinFile },
        sessionPoolSize: LANES,
        sessionKeyCopies: true,
        deadlineMs: 5000,
        circuitFailureThreshold: 5,
        probeIntervalMs: 200,
        readyCacheMs: 1000,
      },
      readFileSync(token.pinFile, 'utf8').trim(),
      { info() {}, warn() {}, error() {} },
    );
    for (const n of ['behind', 'destroyed', 'other']) await hsm.prepareKey(key(n));
  });
  after(() => hsm?.close());

  it('a token object deleted behind the gateway\'s back keeps working from the copies until forgetKey; then KeyUnavailableException on every lane', async () => {
    expect(await onEveryLane('behind')).to.deep.equal([undefined, undefined, undefined]);
    deleteKeyObject(token, key('behind').ref.label!);
    expect(await onEveryLane('behind'), 'the copies outlive the token object').to.deep.equal([undefined, undefined, undefined]);

    await hsm.forgetKey(`behind-${run}`);
    for (const e of await onEveryLane('behind')) {
      expect(e).to.be.instanceOf(KeyUnavailableException);
      expect((e as KeyUnavailableException).tokenFault).to.equal(false);
    }
    expect(await onEveryLane('other')).to.deep.equal([undefined, undefined, undefined]);
    expect(hsm.stats().circuitOpen).to.equal(false);
  });

  it('while another session copies a key (as a lane meeting it does), every lane that looks the key up again finds its one token object', async () => {
    const failures = await whileCopying(key('other').ref.label!, async () => {
      const out: string[] = [];
      for (let i = 0; i < 300; i++) {
        await hsm.forgetKey(`other-${run}`);
        for (const e of await onEveryLane('other')) if (e !== undefined) out.push(String(e));
      }
      return out;
    });
    expect(failures).to.deep.equal([]);
  });

  it('while another session copies a key, a pass over every key object on the token (findKeys) finds that key ready', async () => {
    // Eight keys: findKeys passes over the token from eight on, and looks up fewer one by one.
    const names = ['other', ...Array.from({ length: 7 }, (_, i) => `pass-${i}`)];
    for (const n of names.slice(1)) await hsm.prepareKey(key(n));
    const reqs = names.map((n) => ({ ...key(n), createIfMissing: false }));
    const states = await whileCopying(key('other').ref.label!, async () => {
      const out = new Set<string>();
      for (let i = 0; i < 300; i++) {
        // The other lanes make their copies again meanwhile.
        await hsm.forgetKey(`other-${run}`);
        const [found] = await Promise.all([hsm.findKeys(reqs), onEveryLane('other')]);
        for (const r of found) out.add(r.state === 'failed' ? r.reason : r.state);
      }
      return [...out];
    });
    expect(states).to.deep.equal(['ready']);
  });

  it('a key destroyed through the gateway stops at once on every lane that held a copy, and is gone from the token', async () => {
    expect(await onEveryLane('destroyed')).to.deep.equal([undefined, undefined, undefined]);
    await hsm.destroyKey(`destroyed-${run}`);
    for (const e of await onEveryLane('destroyed')) expect(e, 'no lane encrypts with a destroyed key').to.be.instanceOf(Error);
    expect(await hsm.prepareKey({ ...key('destroyed'), createIfMissing: false })).to.deep.equal({ state: 'missing' });
    const err = await failure(hsm.aesGcmSeal(`destroyed-${run}`, Buffer.from('x'), Buffer.alloc(0)));
    expect(err).to.be.instanceOf(KeyUnavailableException);
    expect(await onEveryLane('other')).to.deep.equal([undefined, undefined, undefined]);
  });
});
