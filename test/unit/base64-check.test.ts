import { expect } from 'chai';
import fc from 'fast-check';
import { decodePaddedBase64, isPaddedBase64 } from '../../src/operations/schema.js';

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

  it('decodes exactly the strings the reference regex accepts, to the bytes Buffer decodes them to', function () {
    // '\u0141' has the low byte of 'A'; 'é' and '\u00c1' are one-byte but above 127; '.' and '%' are ASCII outside the alphabet.
    const near = fc.string({ unit: fc.constantFrom('A', 'Q', 'z', '0', '+', '/', '=', '=', '-', '_', ' ', '\n', '.', '%', 'é', '\u0141', '\u00c1', '\u0000'), maxLength: 24 });
    fc.assert(
      fc.property(near, (s) => {
        const decoded = decodePaddedBase64(s);
        expect(decoded !== undefined, s).to.equal(REFERENCE.test(s));
        if (decoded !== undefined) expect(decoded.equals(Buffer.from(s, 'base64'))).to.equal(true);
      }),
      { numRuns: 20_000 },
    );
  });

  it('refuses an encoding Buffer produces with any one character replaced by any other UTF-16 code unit outside the alphabet', function () {
    const outside = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)).filter((c) => !/[A-Za-z0-9+/]/.test(c));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 48 }), fc.nat(), outside, (bytes, at, bad) => {
        const s = Buffer.from(bytes).toString('base64');
        const i = at % s.length;
        const t = s.slice(0, i) + bad + s.slice(i + 1);
        expect(decodePaddedBase64(t) !== undefined, JSON.stringify(t)).to.equal(REFERENCE.test(t));
      }),
      { numRuns: 20_000 },
    );
  });

  it('decodes every encoding Buffer produces back to its bytes, and a non-canonical one (pad bits set) too', function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(decodePaddedBase64(Buffer.from(bytes).toString('base64'))?.equals(Buffer.from(bytes))).to.equal(true);
      }),
    );
    // 'QR==' is in the language (the regex accepts it) but re-encodes as 'QQ==': the exact check decides.
    expect(decodePaddedBase64('QR==')?.equals(Buffer.from([0x41]))).to.equal(true);
    expect(decodePaddedBase64('QQ=')).to.equal(undefined);
  });
});
