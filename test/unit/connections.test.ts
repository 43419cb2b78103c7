/**
 * The cluster primary's hand-out of client connections (src/cluster/
 * connections.ts), with workers that only record what they were sent: a
 * connection is the primary's until a worker says it took it, so a worker
 * that dies first loses nothing.
 */
import type { Socket } from 'node:net';
import { expect } from 'chai';
import { ConnectionDispatcher, type ConnectionTarget } from '../../src/cluster/connections.js';

/** A socket as the dispatcher uses it: destroyed or not. */
function socket(name: string): Socket & { name: string } {
  const s = { name, destroyed: false, destroy: () => (s.destroyed = true) };
  return s as unknown as Socket & { name: string };
}

interface Sent {
  id: number;
  socket: Socket;
  done: (err: Error | null) => void;
}

function worker(id: number): ConnectionTarget & { sent: Sent[] } {
  const sent: Sent[] = [];
  return { id, sent, sendConnection: (cid, s, done) => sent.push({ id: cid, socket: s, done }) };
}

const names = (w: { sent: Sent[] }) => w.sent.map((x) => (x.socket as Socket & { name: string }).name);

describe('the cluster primary handing connections to workers (cluster/connections.ts)', () => {
  it('hands new connections to the serving workers in turn, and closes its copy only once the worker took it', () => {
    const d = new ConnectionDispatcher();
    const [a, b] = [worker(1), worker(2)];
    d.serve(a);
    d.serve(b);
    const conns = ['c1', 'c2', 'c3', 'c4'].map(socket);
    for (const c of conns) d.dispatch(c);
    expect(names(a)).to.deep.equal(['c1', 'c3']);
    expect(names(b)).to.deep.equal(['c2', 'c4']);
    expect(conns.every((c) => !c.destroyed), 'the primary keeps its copies until they are taken').to.equal(true);
    d.taken(a.sent[0]?.id as number);
    expect(conns[0]?.destroyed).to.equal(true);
    expect(d.stats()).to.deep.equal({ handed: 3, waiting: 0 });
  });

  it('when a worker dies before it took its connections, they go to another worker, and those it took stay its own', () => {
    const d = new ConnectionDispatcher();
    const [a, b] = [worker(1), worker(2)];
    d.serve(a);
    d.serve(b);
    const conns = ['c1', 'c2', 'c3'].map(socket);
    for (const c of conns) d.dispatch(c);
    d.taken(a.sent[0]?.id as number); // c1 is worker 1's, as its process is
    d.withdraw(1); // worker 1 dies; c3 was sent to it and never taken
    expect(names(b)).to.deep.equal(['c2', 'c3']);
    expect(conns[2]?.destroyed).to.equal(false);
    // From now on only worker 2 gets connections.
    d.dispatch(socket('c4'));
    expect(names(a)).to.deep.equal(['c1', 'c3']);
    expect(names(b)).to.deep.equal(['c2', 'c3', 'c4']);
    // A late word from the dead worker about c3 changes nothing: worker 2 has it now.
    d.taken(a.sent[1]?.id as number);
    expect(conns[2]?.destroyed).to.equal(false);
  });

  it('holds connections while no worker serves, and hands them out when one does', () => {
    const d = new ConnectionDispatcher();
    const a = worker(1);
    d.serve(a);
    d.dispatch(socket('c1'));
    d.withdraw(1); // the only worker died: c1 waits
    d.dispatch(socket('c2'));
    expect(d.stats()).to.deep.equal({ handed: 0, waiting: 2 });
    const b = worker(2);
    d.serve(b);
    expect(names(b)).to.deep.equal(['c1', 'c2']);
  });

  it('when a socket cannot be sent to a worker (its channel closed), stops sending to it and hands the socket to another', () => {
    const d = new ConnectionDispatcher();
    const [a, b] = [worker(1), worker(2)];
    d.serve(a);
    d.serve(b);
    const c1 = socket('c1');
    d.dispatch(c1);
    a.sent[0]?.done(new Error('channel closed'));
    expect(names(b)).to.deep.equal(['c1']);
    d.dispatch(socket('c2'));
    d.dispatch(socket('c3'));
    expect(names(b)).to.deep.equal(['c1', 'c2', 'c3']);
    expect(c1.destroyed).to.equal(false);
  });

  it('on stopping, closes what no worker took and hands out nothing more', () => {
    const d = new ConnectionDispatcher();
    const a = worker(1);
    d.serve(a);
    const sent = socket('sent');
    d.dispatch(sent);
    d.withdraw(1);
    const waiting = socket('waiting');
    d.dispatch(waiting);
    d.close();
    expect([sent.destroyed, waiting.destroyed]).to.deep.equal([true, true]);
    const late = socket('late');
    d.serve(worker(2));
    d.dispatch(late);
    expect(late.destroyed).to.equal(true);
  });
});
