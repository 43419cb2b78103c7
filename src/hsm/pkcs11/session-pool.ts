/**
 * A fixed-size pool of PKCS#11 sessions. A session runs one operation at a
 * time (SoftHSM 2.6.1 answers CKR_OPERATION_ACTIVE to an Init while another
 * operation runs on it), so every crypto call borrows one and gives it back.
 * Sessions are opened lazily, up to `size`; a caller finding none free waits
 * in FIFO order. A session that saw a session or device fault is discarded
 * (closed, and its place freed for a fresh one), never handed out again.
 */
export interface SessionFactory<S> {
  open(): S;
  close(session: S): void;
}

interface Waiter<S> {
  resolve(s: S): void;
  reject(e: unknown): void;
}

export class SessionPool<S> {
  private readonly idle: S[] = [];
  private readonly waiters: Waiter<S>[] = [];
  private open = 0;

  constructor(
    private readonly factory: SessionFactory<S>,
    readonly size: number,
  ) {}

  get stats(): { open: number; idle: number; inUse: number; waiting: number } {
    return { open: this.open, idle: this.idle.length, inUse: this.open - this.idle.length, waiting: this.waiters.length };
  }

  acquire(): Promise<S> {
    const s = this.idle.pop();
    if (s !== undefined) return Promise.resolve(s);
    if (this.open < this.size) {
      try {
        return Promise.resolve(this.openOne());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  release(session: S, discard = false): void {
    if (discard) {
      this.open--;
      try {
        this.factory.close(session);
      } catch {
        // The session is already gone on the token; nothing more to do.
      }
      const w = this.waiters.shift();
      if (w !== undefined) {
        try {
          w.resolve(this.openOne());
        } catch (e) {
          w.reject(e);
        }
      }
      return;
    }
    const w = this.waiters.shift();
    if (w !== undefined) w.resolve(session);
    else this.idle.push(session);
  }

  async use<T>(fn: (session: S) => Promise<T> | T, shouldDiscard: (err: unknown) => boolean): Promise<T> {
    const s = await this.acquire();
    try {
      const out = await fn(s);
      this.release(s);
      return out;
    } catch (e) {
      this.release(s, shouldDiscard(e));
      throw e;
    }
  }

  /** Closes every idle session; sessions in use are closed when released with discard. */
  drain(): void {
    for (const s of this.idle.splice(0)) {
      this.open--;
      try {
        this.factory.close(s);
      } catch {
        // ignore: closing at shutdown
      }
    }
    for (const w of this.waiters.splice(0)) w.reject(new Error('session pool closed'));
  }

  private openOne(): S {
    const s = this.factory.open();
    this.open++;
    return s;
  }
}
