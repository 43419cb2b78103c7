import { GuardedHsm } from '../../src/hsm/guarded-hsm.js';
import { hsmContract } from '../contract/hsm-contract.js';
import { FakeHsm } from '../support/fake-hsm.js';

// Three lanes on one fake token: every call may land on a lane that has not
// seen the key yet, so the contract also covers GuardedHsm's per-lane learning.
// Once more with lanes that keep session copies of keys (hsm.sessionKeyCopies).
for (const sessionKeyCopies of [false, true]) {
  hsmContract(`GuardedHsm over 3 in-memory fake lanes${sessionKeyCopies ? ' keeping session copies of keys' : ''}`, async () => {
    const first = new FakeHsm(undefined, { sessionKeyCopies });
    const hsm = new GuardedHsm({
      lanes: [first, new FakeHsm(first, { sessionKeyCopies }), new FakeHsm(first, { sessionKeyCopies })],
      deadlineMs: 2000,
      failureThreshold: 5,
      probeIntervalMs: 1000,
      readyCacheMs: 1000,
      log: { info() {}, warn() {} },
      fallbackDescription: first.describe(),
    });
    await hsm.start();
    return hsm;
  });
}
