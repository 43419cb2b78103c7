/**
 * The key store's state on the token, on an in-memory fake HSM whose calls
 * can be made to fail at exact points: the crash-atomicity claims of the
 * README, and agreement between two gateways sharing one token.
 */
import { expect } from 'chai';
import { KeyUnavailableException } from '../../src/errors.js';
import { KeyStore, type Clock } from '../../src/keys/key-store.js';
import { parseLabel } from '../../src/keys/records.js';
import { FakeHsm } from '../support/fake-hsm.js';

const CONFIG = { region: 'us-east-1', accountId: '111122223333' };
const quiet = { info() {}, warn() {} };

function recordsOf(hsm: FakeHsm, kind: 'key' | 'alias', name: string): number {
  return [...hsm.records.values()].filter((r) => {
    const l = parseLabel(r.label);
    return l?.kind === kind && l.name === name;
  }).length;
}

/** How often this instance listed the token's records. */
const listings = (hsm: FakeHsm) => hsm.calls.filter((c) => c === 'listRecords').length;

async function store(hsm: FakeHsm, clock?: Clock): Promise<KeyStore> {
  const s = new KeyStore(CONFIG, hsm, { log: quiet, ...(clock ? { clock } : {}) });
  await s.init({ keys: [] });
  return s;
}

async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('the key store on the token (fake HSM)', () => {
  it('when the gateway dies after writing the next generation but before deleting the old, a restart takes the new state and removes the old', async () => {
    const token = new FakeHsm();
    const a = await store(token);
    const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: 'v1', tags: [] });
    token.failOn('deleteRecord');
    await a.updateKey(key.keyId, (r) => ({ ...r, description: 'v2' }));
    expect(recordsOf(token, 'key', key.keyId)).to.equal(2);
    const b = await store(new FakeHsm(token));
    expect(b.resolve(key.keyId).description).to.equal('v2');
    expect(recordsOf(token, 'key', key.keyId)).to.equal(1);
  });

  it('when the write of the next generation fails, the change is refused and the old state stays, here and after a restart', async () => {
    const token = new FakeHsm();
    const a = await store(token);
    const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: 'old', tags: [] });
    token.failOn('createRecord');
    expect(await rejects(a.updateKey(key.keyId, (r) => ({ ...r, keyState: 'Disabled' })))).to.be.instanceOf(KeyUnavailableException);
    expect(a.resolve(key.keyId).state).to.equal('Enabled');
    expect((await store(new FakeHsm(token))).resolve(key.keyId).state).to.equal('Enabled');
  });

  it('when CreateKey fails after the material is made but before its record, no key appears (the material is an unused orphan)', async () => {
    const token = new FakeHsm();
    const a = await store(token);
    token.failOn('createRecord');
    await rejects(a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] }));
    expect(a.list()).to.have.length(0);
    expect((await store(new FakeHsm(token))).list()).to.have.length(0);
    expect(token.objects).to.have.length(1);
  });

  it('when a rotation fails to commit, new ciphertexts keep using the old material', async () => {
    const token = new FakeHsm();
    const a = await store(token);
    const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    token.failOn('createRecord');
    await rejects(a.rotate(key.keyId, 'ON_DEMAND'));
    expect(a.resolve(key.keyId).currentMaterial.version).to.equal(0);
    expect((await store(new FakeHsm(token))).resolve(key.keyId).materials).to.have.length(1);
  });

  it('when a deletion is cut short after the material is destroyed, the next round finishes it', async () => {
    let now = 1_000_000;
    const clock: Clock = { now: () => now, dayMs: 1000 };
    const token = new FakeHsm();
    const a = await store(token, clock);
    const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    await a.createAlias('alias/doomed', key.keyId, () => new Error('exists'));
    await a.updateKey(key.keyId, (r) => ({ ...r, keyState: 'PendingDeletion', deletionDate: new Date(now + 7000).toISOString() }));
    now += 7001;
    token.failOn('deleteRecord');
    await rejects(a.destroyDueKeys());
    expect(token.objects).to.have.length(0);
    const b = await store(new FakeHsm(token), clock); // a restart: init finishes due deletions
    expect(b.findById(key.keyId)).to.equal(undefined);
    expect(b.findAlias('alias/doomed')).to.equal(undefined);
    expect(token.records.size).to.equal(0);
  });

  it('two gateways on one token agree after a refresh: a disable, a new alias, a rotation', async () => {
    const token = new FakeHsm();
    const a = await store(token);
    const b = await store(new FakeHsm(token));
    const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    expect(b.findById(key.keyId)).to.equal(undefined);
    await b.refresh();
    expect(b.resolve(key.keyId).state).to.equal('Enabled');
    await a.updateKey(key.keyId, (r) => ({ ...r, keyState: 'Disabled' }));
    await a.createAlias('alias/shared', key.keyId, () => new Error('exists'));
    await a.rotate(key.keyId, 'ON_DEMAND');
    await b.refresh();
    const seen = b.resolve('alias/shared');
    expect(seen.keyId).to.equal(key.keyId);
    expect(seen.state).to.equal('Disabled');
    expect(seen.currentMaterial.version).to.equal(1);
  });

  it('when two gateways change one key in the same generation, both settle on the same single winner', async () => {
    const token = new FakeHsm();
    const a = await store(token);
    const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: 'start', tags: [] });
    const b = await store(new FakeHsm(token));
    await a.updateKey(key.keyId, (r) => ({ ...r, description: 'from a' }));
    await b.updateKey(key.keyId, (r) => ({ ...r, description: 'from b' }));
    await a.refresh();
    await b.refresh();
    expect(a.resolve(key.keyId).description).to.equal(b.resolve(key.keyId).description);
    expect(recordsOf(token, 'key', key.keyId)).to.equal(1);
  });

  it('rotates a key automatically once its rotation date has come, and only then', async () => {
    let now = 5_000_000;
    const clock: Clock = { now: () => now, dayMs: 10 };
    const a = await store(new FakeHsm(), clock);
    const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    await a.updateKey(key.keyId, (r) => ({ ...r, rotation: { enabled: true, periodDays: 90, nextRotationDate: new Date(now + 900).toISOString() } }));
    expect(await a.rotateDueKeys()).to.deep.equal([]);
    now += 900;
    expect(await a.rotateDueKeys()).to.deep.equal([key.keyId]);
    const rotated = a.resolve(key.keyId);
    expect(rotated.materials.map((m) => m.rotationType)).to.deep.equal([undefined, 'AUTOMATIC']);
    expect(rotated.rotation.nextRotationDate).to.equal(new Date(now + 900).toISOString());
  });

  it('on start, finds every key\'s material in one pass over the token, not one search per key', async () => {
    const token = new FakeHsm();
    const a = await store(token);
    for (let i = 0; i < 20; i++) await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    const fresh = new FakeHsm(token);
    await store(fresh);
    expect(fresh.calls.filter((c) => c === 'findKeys')).to.have.length(1);
    expect(fresh.calls.filter((c) => c === 'prepareKey')).to.have.length(0);
  });

  describe('rounds of the background refresh and the state mark', () => {
    async function watcher(token: FakeHsm, fullRefreshMs = 60_000): Promise<{ hsm: FakeHsm; store: KeyStore }> {
      const hsm = new FakeHsm(token);
      const s = new KeyStore(CONFIG, hsm, { log: quiet, fullRefreshMs });
      await s.init({ keys: [] });
      return { hsm, store: s };
    }

    it('when nothing changed, a round reads the state mark and lists no records', async () => {
      const token = new FakeHsm();
      await store(token);
      const b = await watcher(token);
      const before = listings(b.hsm);
      for (let i = 0; i < 5; i++) await b.store.tick();
      expect(listings(b.hsm)).to.equal(before);
      expect(b.hsm.calls.filter((c) => c === 'readStateMark').length).to.be.at.least(5);
    });

    it('a change another gateway commits moves the mark: the next round lists the records and sees it, and the round after lists nothing', async () => {
      const token = new FakeHsm();
      const a = await store(token);
      const b = await watcher(token);
      const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
      await a.updateKey(key.keyId, (r) => ({ ...r, keyState: 'Disabled' }));
      // The mark is replaced just after the change's caller has its answer.
      await a.settled();
      const before = listings(b.hsm);
      await b.store.tick();
      expect(b.store.resolve(key.keyId).state).to.equal('Disabled');
      expect(listings(b.hsm)).to.equal(before + 1);
      await b.store.tick();
      expect(listings(b.hsm)).to.equal(before + 1);
    });

    it('a record written by other software (the mark untouched) is seen at the first round after state.fullRefreshMs', async () => {
      const token = new FakeHsm();
      const a = await store(token);
      const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
      await a.settled();
      const b = await watcher(token, 1_000);
      const mark = token.token.stateMark;
      await a.updateKey(key.keyId, (r) => ({ ...r, description: 'behind the mark' }));
      await a.settled();
      token.token.stateMark = mark;
      await b.store.tick();
      expect(b.store.resolve(key.keyId).description).to.equal('');
      await new Promise((r) => setTimeout(r, 1_050));
      await b.store.tick();
      expect(b.store.resolve(key.keyId).description).to.equal('behind the mark');
    });

    it('a burst of changes replaces the mark a few times, not once per change, and the last replacement follows the last change', async () => {
      const token = new FakeHsm();
      const aHsm = new FakeHsm(token);
      const a = new KeyStore(CONFIG, aHsm, { log: quiet });
      await a.init({ keys: [] });
      await a.settled();
      const b = await watcher(token);
      const writes = () => aHsm.calls.filter((c) => c === 'writeStateMark').length;
      const before = writes();
      const keys = await Promise.all(Array.from({ length: 12 }, (_, i) => a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: `burst ${i}`, tags: [] })));
      await a.settled();
      expect(writes() - before).to.be.within(1, 3);
      await b.store.tick();
      for (const k of keys) expect(b.store.resolve(k.keyId).description).to.match(/^burst /);
    });

    it('a token without a mark (state written before marks existed) gets one at start, so rounds stop listing', async () => {
      const token = new FakeHsm();
      await store(token);
      token.token.stateMark = undefined;
      const b = await watcher(token);
      expect(token.token.stateMark).not.to.equal(undefined);
      const before = listings(b.hsm);
      await b.store.tick();
      expect(listings(b.hsm)).to.equal(before);
    });
  });

  describe('workers of one gateway: a committed change is handed to the others, which apply it without listing the token', () => {
    const view = (s: KeyStore) => ({
      keys: s.list().map((k) => ({ id: k.keyId, state: k.state, description: k.description, aliases: k.aliases, version: k.currentMaterial.version, present: k.materialPresent })),
      aliases: s.listAliases().map((a) => [a.aliasName, a.targetKeyId]),
    });
    /** Two stores on one token, wired as the cluster wires its workers: `a`'s changes go to `b` before `a`'s caller is answered. */
    async function pair(clock?: Clock): Promise<{ token: FakeHsm; a: KeyStore; b: KeyStore; bHsm: FakeHsm; sent: unknown[][] }> {
      const token = new FakeHsm();
      const bHsm = new FakeHsm(token);
      const b = new KeyStore(CONFIG, bHsm, { log: quiet, ...(clock ? { clock } : {}) });
      const sent: unknown[][] = [];
      const a = new KeyStore(CONFIG, token, { log: quiet, ...(clock ? { clock } : {}), onCommitted: (changes) => (sent.push(changes), b.applyChanges(changes)) });
      await a.init({ keys: [] });
      await b.init({ keys: [] });
      return { token, a, b, bHsm, sent };
    }

    it('a new key, a disable, an alias, a rotation and an alias moved and deleted are seen at once, as a full re-read would see them', async () => {
      const { token, a, b, bHsm } = await pair();
      const before = listings(bHsm);
      const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: 'made on a', tags: [] });
      expect(b.resolve(key.keyId).description).to.equal('made on a');
      const other = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
      await a.createAlias('alias/moving', key.keyId, () => new Error('exists'));
      await a.createAlias('alias/doomed', key.keyId, () => new Error('exists'));
      expect(b.resolve('alias/moving').keyId).to.equal(key.keyId);
      await a.rotate(key.keyId, 'ON_DEMAND');
      await a.updateAlias('alias/moving', other.keyId, () => new Error('missing'));
      await a.deleteAlias('alias/doomed', () => new Error('missing'));
      await a.updateKey(other.keyId, (r) => ({ ...r, keyState: 'Disabled' }));
      expect(listings(bHsm)).to.equal(before);
      expect(b.resolve('alias/moving').state).to.equal('Disabled');
      expect(b.resolve(key.keyId).currentMaterial.version).to.equal(1);
      expect(view(b)).to.deep.equal(view(a));
      expect(view(b)).to.deep.equal(view(await store(new FakeHsm(token))));
    });

    it('the other worker can use the new key at once and can change it next: its write supersedes the generation it was handed', async () => {
      const { token, a, b } = await pair();
      const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: 'v0', tags: [] });
      await b.updateKey(key.keyId, (r) => ({ ...r, description: 'v1 from b' }));
      await a.refresh();
      expect(a.resolve(key.keyId).description).to.equal('v1 from b');
      expect(recordsOf(token, 'key', key.keyId)).to.equal(1);
    });

    it('a key destroyed when its deletion window has passed is gone on the other worker at once, with its aliases', async () => {
      let now = 1_000_000;
      const clock: Clock = { now: () => now, dayMs: 1_000 };
      const { a, b } = await pair(clock);
      const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
      await a.createAlias('alias/going', key.keyId, () => new Error('exists'));
      await a.updateKey(key.keyId, (r) => ({ ...r, keyState: 'PendingDeletion', deletionDate: new Date(now + 7_000).toISOString() }));
      now += 8_000;
      expect(await a.destroyDueKeys()).to.deep.equal([key.keyId]);
      expect(b.findById(key.keyId)).to.equal(undefined);
      expect(b.findAlias('alias/going')).to.equal(undefined);
    });

    it('a worker still loading keeps the changes handed to it meanwhile and applies them once loaded, without another listing', async () => {
      const token = new FakeHsm();
      const a = await store(token);
      const seeded = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: 'before', tags: [] });
      // b's load is held after its listing, where it finds the key objects of the records it listed.
      const bHsm = new FakeHsm(token);
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let reached!: () => void;
      const atFind = new Promise<void>((r) => (reached = r));
      const slow = new Proxy(bHsm, {
        get(target, prop) {
          if (prop === 'findKeys')
            return async (...args: Parameters<FakeHsm['findKeys']>) => {
              reached();
              await held;
              return target.findKeys(...args);
            };
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
        },
      });
      const b = new KeyStore(CONFIG, slow, { log: quiet });
      const loading = b.init({ keys: [] });
      await atFind;
      const handed: Parameters<KeyStore['applyChanges']>[0][] = [];
      const a2 = new KeyStore(CONFIG, new FakeHsm(token), { log: quiet, onCommitted: async (c) => void handed.push(c) });
      await a2.init({ keys: [] });
      const made = await a2.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: 'during the load', tags: [] });
      await a2.updateKey(seeded.keyId, (r) => ({ ...r, description: 'after' }));
      for (const c of handed) await b.applyChanges(c);
      expect(b.loaded).to.equal(false);
      release();
      await loading;
      expect(b.resolve(made.keyId).description).to.equal('during the load');
      expect(b.resolve(seeded.keyId).description).to.equal('after');
      expect(bHsm.calls.filter((c) => c === 'listRecords').length).to.equal(1);
    });

    it('a change handed over after a later one of the same record changes nothing', async () => {
      const { a, b, sent } = await pair();
      const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: 'first', tags: [] });
      const first = sent.at(-1) as Parameters<KeyStore['applyChanges']>[0];
      await a.updateKey(key.keyId, (r) => ({ ...r, description: 'second' }));
      await b.applyChanges(first);
      expect(b.resolve(key.keyId).description).to.equal('second');
    });

    it('when a change cannot be applied (the token fails the find of the new key), the worker re-reads the whole state and still sees the key', async () => {
      const { a, b, bHsm } = await pair();
      const before = listings(bHsm);
      bHsm.failOn('findKeys');
      const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
      expect(listings(bHsm)).to.equal(before + 1);
      expect(b.resolve(key.keyId).materialPresent).to.equal(true);
    });
  });

  it('serialises concurrent changes to one key inside a gateway (no lost update)', async () => {
    const a = await store(new FakeHsm());
    const key = await a.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => a.updateKey(key.keyId, (r) => ({ ...r, tags: [...r.tags, { TagKey: `k${i}`, TagValue: '' }] }))),
    );
    expect(a.resolve(key.keyId).tags).to.have.length(20);
  });
});
