import { expect } from 'chai';
import pkcs11js from 'pkcs11js';
import { AMBIGUOUS_FIND_TRIES, CREATE_TRIES, createWithRetry, findAtMostOne, FIND_TRIES, retryGeneralError } from '../../src/hsm/pkcs11/transient-retry.js';

const general = () => new pkcs11js.Pkcs11Error('CKR_GENERAL_ERROR', pkcs11js.CKR_GENERAL_ERROR, 'C_GenerateKey');

/** A creation that fails `failures` times with `error`, then answers handle 42. */
function flaky(failures: number, error: () => unknown = general) {
  let calls = 0;
  return {
    create: () => {
      calls++;
      if (calls <= failures) throw error();
      return 42;
    },
    calls: () => calls,
  };
}

describe('creating a token object when SoftHSM2 answers CKR_GENERAL_ERROR now and then (SoftHSMv2 #573)', function () {
  const hooks = (leftBehind = false) => {
    const seen = { pauses: 0, retries: [] as number[] };
    return { seen, hooks: { leftBehind: () => leftBehind, pause: () => void seen.pauses++, retrying: (a: number) => void seen.retries.push(a) } };
  };

  it('tries again, after a pause, when the failed call left nothing on the token', function () {
    const op = flaky(1);
    const { seen, hooks: h } = hooks(false);
    expect(createWithRetry(op.create, h)).to.equal(42);
    expect(op.calls()).to.equal(2);
    expect(seen).to.deep.equal({ pauses: 1, retries: [1] });
  });

  it('never tries again when an object of that label is on the token: it may be another gateway\'s key, and nothing is destroyed', function () {
    const op = flaky(1);
    const { seen, hooks: h } = hooks(true);
    expect(() => createWithRetry(op.create, h)).to.throw(pkcs11js.Pkcs11Error);
    expect(op.calls()).to.equal(1);
    expect(seen.retries).to.deep.equal([]);
  });

  it(`gives up after ${CREATE_TRIES} tries and throws the token's error as it was`, function () {
    const op = flaky(10);
    const { seen, hooks: h } = hooks(false);
    expect(() => createWithRetry(op.create, h)).to.throw('CKR_GENERAL_ERROR');
    expect(op.calls()).to.equal(CREATE_TRIES);
    expect(seen.retries).to.deep.equal(Array.from({ length: CREATE_TRIES - 1 }, (_, i) => i + 1));
  });

  it('does not try again for any other code, nor for an error that is not the token\'s', function () {
    for (const error of [
      () => new pkcs11js.Pkcs11Error('CKR_DEVICE_ERROR', pkcs11js.CKR_DEVICE_ERROR, 'C_GenerateKey'),
      () => new pkcs11js.Pkcs11Error('CKR_TEMPLATE_INCONSISTENT', pkcs11js.CKR_TEMPLATE_INCONSISTENT, 'C_CreateObject'),
      () => new Error('something else'),
    ]) {
      const op = flaky(1, error);
      expect(() => createWithRetry(op.create, hooks(false).hooks)).to.throw();
      expect(op.calls()).to.equal(1);
    }
  });

  it(`tries a find (which changes nothing) up to ${FIND_TRIES} times, with nothing to check in between`, function () {
    const op = flaky(FIND_TRIES - 1);
    let pauses = 0;
    expect(retryGeneralError(op.create, FIND_TRIES, { pause: () => void pauses++ })).to.equal(42);
    expect([op.calls(), pauses]).to.deep.equal([FIND_TRIES, FIND_TRIES - 1]);
    const never = flaky(FIND_TRIES);
    expect(() => retryGeneralError(never.create, FIND_TRIES, { pause: () => undefined })).to.throw('CKR_GENERAL_ERROR');
  });
});

describe('a key find that matches a session copy in the making (SoftHSM 2.6.1 C_CopyObject sets CKA_TOKEN false last)', function () {
  /** Finds answering each given hit list in turn, the last one from then on. */
  function finds(...answers: number[][]) {
    let calls = 0;
    return { find: () => answers[Math.min(calls++, answers.length - 1)]!, calls: () => calls };
  }
  const counting = () => {
    const seen = { pauses: 0, retries: [] as number[] };
    return { seen, hooks: { pause: () => void seen.pauses++, retrying: (a: number) => void seen.retries.push(a) } };
  };

  it('takes the one object found when the second match is gone on the next try', function () {
    const f = finds([7, 8], [7]);
    const { seen, hooks } = counting();
    expect(findAtMostOne(f.find, AMBIGUOUS_FIND_TRIES, hooks)).to.deep.equal([7]);
    expect([f.calls(), seen.pauses, seen.retries]).to.deep.equal([2, 1, [1]]);
  });

  it('answers at once, without a pause, when the first find matches one object or none', function () {
    for (const hits of [[7], []]) {
      const f = finds(hits);
      const { seen, hooks } = counting();
      expect(findAtMostOne(f.find, AMBIGUOUS_FIND_TRIES, hooks)).to.deep.equal(hits);
      expect([f.calls(), seen.pauses]).to.deep.equal([1, 0]);
    }
  });

  it(`returns both matches after ${AMBIGUOUS_FIND_TRIES} tries when two objects really carry the key's label/id`, function () {
    const f = finds([7, 9]);
    const { seen, hooks } = counting();
    expect(findAtMostOne(f.find, AMBIGUOUS_FIND_TRIES, hooks)).to.deep.equal([7, 9]);
    expect([f.calls(), seen.pauses]).to.deep.equal([AMBIGUOUS_FIND_TRIES, AMBIGUOUS_FIND_TRIES - 1]);
  });

  it('never looks again when the caller makes no session copies: a second match is then a second object', function () {
    const f = finds([7, 8], [7]);
    const { seen, hooks } = counting();
    expect(findAtMostOne(f.find, AMBIGUOUS_FIND_TRIES, hooks, () => false)).to.deep.equal([7, 8]);
    expect([f.calls(), seen.pauses]).to.deep.equal([1, 0]);
  });
});
