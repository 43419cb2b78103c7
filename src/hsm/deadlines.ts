/**
 * Deadlines of many HSM calls on one timer. Every call in flight (and
 * every call waiting for a lane) has a deadline; a setTimeout each would
 * cost a timer object, and, because the remaining time differs by a few
 * milliseconds from call to call, a new Node timer list almost every time
 * (Node keeps one list per duration). Here the deadlines sit in one list
 * ordered by time, with a single timer armed for the earliest: adding is
 * O(1) when deadlines come in order (they do: most calls have the same
 * duration), cancelling is O(1), and the timer is re-armed only when the
 * earliest deadline actually passes or a new earliest one arrives.
 *
 * Contract: `onExpire` runs once, no earlier than `at` by Date.now() (a
 * timer that fires early is re-armed), and never after `cancel`.
 */
export interface Deadline {
  readonly at: number;
}

interface Entry extends Deadline {
  onExpire: (() => void) | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

export class Deadlines {
  private head: Entry | undefined;
  private tail: Entry | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (Date.now() time). */
  private armedFor = Infinity;

  /** Calls `onExpire` at `at` (Date.now() time) unless cancelled first. */
  add(at: number, onExpire: () => void): Deadline {
    const e: Entry = { at, onExpire, prev: undefined, next: undefined };
    // From the tail: deadlines mostly arrive in order.
    let after = this.tail;
    while (after !== undefined && after.at > at) after = after.prev;
    e.prev = after;
    e.next = after === undefined ? this.head : after.next;
    if (e.next !== undefined) e.next.prev = e;
    else this.tail = e;
    if (after !== undefined) after.next = e;
    else this.head = e;
    if (at < this.armedFor) this.arm(at);
    return e;
  }

  /** Forgets a deadline; harmless when it already fired or was cancelled. */
  cancel(d: Deadline): void {
    const e = d as Entry;
    if (e.onExpire === undefined) return;
    e.onExpire = undefined;
    if (e.prev !== undefined) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next !== undefined) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = undefined;
    // The timer stays armed: when it fires for a cancelled head it re-arms for the next one.
    if (this.head === undefined) this.disarm();
  }

  /** Deadlines not yet fired or cancelled (for tests). */
  get size(): number {
    let n = 0;
    for (let e = this.head; e !== undefined; e = e.next) n++;
    return n;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - Date.now()));
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = Date.now();
    for (let e = this.head; e !== undefined && e.at <= now; e = this.head) {
      const onExpire = e.onExpire;
      this.cancel(e);
      onExpire?.();
    }
    if (this.head !== undefined && this.head.at < this.armedFor) this.arm(this.head.at);
  }
}
