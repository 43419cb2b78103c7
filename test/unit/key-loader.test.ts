/**
 * The key state's initial load, retried in the background while the token
 * is unreachable (fake HSM with injected faults): the gateway's KeyStore
 * becomes usable by itself once the token answers, the config's keys are
 * seeded then, and the log says so once per change of cause, not per retry.
 */
import { expect } from 'chai';
import { KeyUnavailableException, KMSInternalException } from '../../src/errors.js';
import { startKeyLoader } from '../../src/keys/key-loader.js';
import { KeyStore } from '../../src/keys/key-store.js';
import { FakeHsm } from '../support/fake-hsm.js';

const CONFIG = { region: 'us-east-1', accountId: '111122223333' };
const KEY_ID = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const TABLE = {
  keys: [
    {
      keyId: KEY_ID,
      aliases: ['alias/demo-aes'],
      keySpec: 'SYMMETRIC_DEFAULT' as const,
      keyUsage: 'ENCRYPT_DECRYPT' as const,
      description: '',
      enabled: true,
      pkcs11: { label: 'kmsgw-demo-aes' },
      createIfMissing: true,
    },
  ],
};

function recorder() {
  const lines: { level: 'info' | 'warn'; msg: string; obj: object }[] = [];
  return {
    lines,
    log: {
      info: (obj: object, msg: string) => void lines.push({ level: 'info', msg, obj }),
      warn: (obj: object, msg: string) => void lines.push({ level: 'warn', msg, obj }),
    },
  };
}

/** Polls until cond() holds; fails after `ms` (a bound, not a speed claim). */
async function eventually(cond: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the key state loader (fake HSM)', () => {
  it('when the token answers at start, the key state is loaded before start-up continues and the gauge is 1', async () => {
    const hsm = new FakeHsm();
    const keys = new KeyStore(CONFIG, hsm);
    const gauge = { value: -1, set(v: number) { this.value = v; } };
    const { log, lines } = recorder();
    const loader = await startKeyLoader({ keys, config: TABLE, log, retryMs: 20, gauge });
    expect(keys.loaded).to.equal(true);
    expect(keys.resolve('alias/demo-aes').keyId).to.equal(KEY_ID);
    expect(gauge.value).to.equal(1);
    expect(lines.map((l) => l.level)).to.deep.equal(['info']);
    await loader.stop();
    await keys.stop();
  });

  it('when the token is unreachable, requests are refused until a retry loads the state and seeds the config keys; one warning per cause', async () => {
    const hsm = new FakeHsm();
    const keys = new KeyStore(CONFIG, hsm);
    const gauge = { value: -1, set(v: number) { this.value = v; } };
    const { log, lines } = recorder();
    hsm.failOn('listRecords', () => new KeyUnavailableException('The HSM is unavailable.', { tokenFault: true }), Infinity);
    const loader = await startKeyLoader({ keys, config: TABLE, log, retryMs: 20, gauge });
    expect(keys.loaded).to.equal(false);
    expect(gauge.value).to.equal(0);
    expect(() => keys.assertLoaded()).to.throw(KeyUnavailableException, 'The key state is not loaded from the HSM yet.');
    // Several retries with the same cause: still one warning.
    await eventually(() => hsm.calls.filter((c) => c === 'listRecords').length >= 4);
    expect(lines.filter((l) => l.level === 'warn')).to.have.length(1);
    // The cause changes: one more warning.
    hsm.failOn('listRecords', () => new KMSInternalException('something else'), Infinity);
    const calls = hsm.calls.length;
    await eventually(() => hsm.calls.length >= calls + 3);
    expect(lines.filter((l) => l.level === 'warn')).to.have.length(2);
    // The token comes back.
    hsm.clearFaults();
    await loader.loaded;
    expect(keys.loaded).to.equal(true);
    expect(gauge.value).to.equal(1);
    expect(keys.resolve('alias/demo-aes').keyId).to.equal(KEY_ID);
    expect(lines.at(-1)?.msg).to.equal('key state loaded from the HSM');
    await loader.stop();
    await keys.stop();
  });

  it('stopping a loader that never loaded ends its retries and never starts the refresh', async () => {
    const hsm = new FakeHsm();
    const keys = new KeyStore(CONFIG, hsm);
    hsm.failOn('listRecords', () => new KeyUnavailableException('The HSM is unavailable.'), Infinity);
    const loader = await startKeyLoader({ keys, config: TABLE, log: recorder().log, retryMs: 20 });
    await loader.stop();
    await keys.stop();
    const calls = hsm.calls.length;
    hsm.clearFaults();
    await new Promise((r) => setTimeout(r, 100));
    expect(hsm.calls.length).to.equal(calls);
    expect(keys.loaded).to.equal(false);
  });
});
