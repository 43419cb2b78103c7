/**
 * The one-timer deadline list GuardedHsm puts every call's deadline on.
 * Real timers, short deadlines; the only timing claims are "not before its
 * deadline" (by Date.now(), which the deadlines use) and the order.
 */
import { expect } from 'chai';
import { Deadlines } from '../../src/hsm/deadlines.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('deadlines of HSM calls on one timer', () => {
  it('fires each deadline once, in time order, never before its time, whatever order they were added in', async () => {
    const d = new Deadlines();
    const start = Date.now();
    const fired: { name: string; late: number }[] = [];
    const at = (name: string, ms: number) => d.add(start + ms, () => fired.push({ name, late: Date.now() - (start + ms) }));
    at('c', 60);
    at('a', 20);
    at('d', 60);
    at('b', 40);
    await sleep(150);
    expect(fired.map((f) => f.name)).to.deep.equal(['a', 'b', 'c', 'd']);
    for (const f of fired) expect(f.late, `${f.name} fired before its deadline`).to.be.at.least(0);
    expect(d.size).to.equal(0);
  });

  it('never fires a cancelled deadline, and still fires the ones behind it', async () => {
    const d = new Deadlines();
    const start = Date.now();
    const fired: string[] = [];
    const first = d.add(start + 20, () => fired.push('first'));
    d.add(start + 40, () => fired.push('second'));
    const third = d.add(start + 40, () => fired.push('third'));
    d.cancel(first);
    d.cancel(third);
    d.cancel(third);
    await sleep(100);
    expect(fired).to.deep.equal(['second']);
  });

  it('keeps nothing armed once every deadline is cancelled (the process may exit)', () => {
    const d = new Deadlines();
    const x = d.add(Date.now() + 60_000, () => expect.fail('cancelled deadline fired'));
    expect(d.size).to.equal(1);
    d.cancel(x);
    expect(d.size).to.equal(0);
    expect((d as unknown as { timer: unknown }).timer).to.equal(undefined);
  });

  it('lets a deadline that fires add another one', async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    d.add(Date.now() + 10, () => {
      fired.push('first');
      d.add(Date.now() + 10, () => fired.push('added while firing'));
    });
    await sleep(80);
    expect(fired).to.deep.equal(['first', 'added while firing']);
  });
});
