import { expect } from 'chai';
import fc from 'fast-check';
import { isPaddedBase64 } from '../../src/operations/schema.js';

/** The regex the blob members were checked with before; the one-pass check must accept exactly its language. */
const REFERENCE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

describe('the base64 check of blob members', function () {
  it('accepts exactly what the reference regex accepts, for strings near the edge of the language', function () {
    const near = fc.string({ unit: fc.constantFrom('A', 'z', '0', '+', '/', '=', '-', '_', ' ', '\n', 'é', '\u0000'), maxLength: 24 });
    fc.assert(fc.property(near, (s) => isPaddedBase64(s) === REFERENCE.test(s)), { numRuns: 20_000 });
  });

  it('accepts every encoding Buffer produces, and refuses it with any one character replaced by one outside the alphabet', function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), fc.constantFrom('-', '_', '.', ' ', '%'), (bytes, at, bad) => {
        const s = Buffer.from(bytes).toString('base64');
        expect(isPaddedBase64(s)).to.equal(true);
        if (s.length === 0) return;
        const i = at % s.length;
        expect(isPaddedBase64(s.slice(0, i) + bad + s.slice(i + 1))).to.equal(false);
      }),
    );
  });
});
