import { expect } from 'chai';
import { encodeEncryptionContext } from '../../src/keys/encryption-context.js';

describe('the canonical encryption-context encoding', () => {
  it('keeps {"ab":"c"} and {"a":"bc"} apart (concatenating emulators let them collide)', () => {
    expect(encodeEncryptionContext({ ab: 'c' }).equals(encodeEncryptionContext({ a: 'bc' }))).to.equal(false);
  });

  it('keeps a key/value boundary shift apart across pairs', () => {
    const one = encodeEncryptionContext({ a: 'b', c: 'd' });
    const two = encodeEncryptionContext({ a: 'bc', '': 'd' });
    expect(one.equals(two)).to.equal(false);
  });

  it('does not depend on the order the client sent the pairs in', () => {
    expect(encodeEncryptionContext({ b: '2', a: '1' }).equals(encodeEncryptionContext({ a: '1', b: '2' }))).to.equal(true);
  });

  it('encodes no context and an empty context the same way, as a zero pair count', () => {
    expect(encodeEncryptionContext(undefined).toString('hex')).to.equal('00000000');
    expect(encodeEncryptionContext({}).toString('hex')).to.equal('00000000');
  });

  it('is pinned byte for byte: count, then length-prefixed UTF-8 key and value, keys sorted by bytes', () => {
    // A change here breaks every existing ciphertext that carries a context.
    expect(encodeEncryptionContext({ purpose: 'golden', b: 'é∑' }).toString('hex')).to.equal(
      '00000002' + '00000001' + '62' + '00000005' + 'c3a9e28891' + '00000007' + '707572706f7365' + '00000006' + '676f6c64656e',
    );
  });

  it('sorts by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF61 (UTF-8 ef bd a1) sorts before U+1F600 (f0 9f 98 80) by bytes, after it by UTF-16 units.
    const enc = encodeEncryptionContext({ '\u{1F600}': 'x', '\uFF61': 'y' }).toString('hex');
    expect(enc.indexOf('efbda1')).to.be.lessThan(enc.indexOf('f09f9880'));
  });

  it('distinguishes every pair of small random contexts that differ', () => {
    const alphabet = ['a', 'b', 'ab', '', 'ba', 'é'];
    const seen = new Map<string, string>();
    for (const k1 of alphabet)
      for (const v1 of alphabet)
        for (const k2 of alphabet)
          for (const v2 of alphabet) {
            const ctx: Record<string, string> = { [k1]: v1, [k2]: v2 };
            const canonical = JSON.stringify(Object.entries(ctx).sort());
            const enc = encodeEncryptionContext(ctx).toString('hex');
            const prior = seen.get(enc);
            if (prior !== undefined) expect(prior).to.equal(canonical);
            seen.set(enc, canonical);
          }
  });
});
