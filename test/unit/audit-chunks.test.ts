import { expect } from 'chai';
import fc from 'fast-check';
import { ATOMIC_WRITE_BYTES, wholeLineChunks } from '../../src/api/audit.js';

/** Audit text as the sink queues it: whole lines, each ending in a newline (JSON escapes any newline inside a line). */
const lines = fc.array(fc.string({ unit: fc.constantFrom('a', '"', '{', 'é', '€', '😀'), maxLength: 3000 }), { maxLength: 12 }).map((ls) => ls.map((l) => l + '\n').join(''));

describe('the audit sink\'s stdout writes, which several cluster workers share', function () {
  it('cut the queued lines into writes that end on a line boundary and keep every line and its order', function () {
    fc.assert(
      fc.property(lines, (text) => {
        const pieces = wholeLineChunks(text);
        expect(pieces.join('')).to.equal(text);
        for (const p of pieces) expect(p.endsWith('\n') || p === '').to.equal(true);
      }),
      { numRuns: 500 },
    );
  });

  it('never put more than PIPE_BUF bytes in one write, unless that write is a single longer line', function () {
    fc.assert(
      fc.property(lines, (text) => {
        for (const p of wholeLineChunks(text)) {
          const bytes = Buffer.byteLength(p);
          if (bytes > ATOMIC_WRITE_BYTES) expect(p.indexOf('\n')).to.equal(p.length - 1);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('write what fits in one PIPE_BUF write as one write', function () {
    const line = JSON.stringify({ operation: 'Encrypt', keyArn: 'arn:aws:kms:us-east-1:111122223333:key/x' }) + '\n';
    const text = line.repeat(Math.floor(ATOMIC_WRITE_BYTES / Buffer.byteLength(line)));
    expect(wholeLineChunks(text)).to.deep.equal([text]);
    expect(wholeLineChunks(text + line)).to.have.length(2);
  });
});
