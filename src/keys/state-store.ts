/**
 * Key and alias records on the token (see records.ts for the layout and the
 * atomicity argument). The store remembers which records it has read, so a
 * refresh lists the token's records (one C_FindObjects pass plus a label
 * read each) but reads only the values it has not seen.
 *
 * Every write and removal is followed by a change of the token's state mark
 * (Hsm.readStateMark; made in the background, touchMarkSoon), so a reader
 * that read the mark before it last listed the records, and reads the same
 * mark now, knows nothing changed since without listing them again: a
 * writer changes the mark only after its records are committed, so a
 * listing that missed a change was made before the mark that announces it.
 */
import { randomBytes } from 'node:crypto';
import type { Hsm } from '../hsm/hsm.js';
import { formatLabel, newer, parseLabel, type AliasRecord, type KeyRecord, type RecordKind, type RecordLabel } from './records.js';

export interface Stored<T> {
  ref: string;
  label: RecordLabel;
  value: T;
}

export interface Snapshot {
  keys: Map<string, Stored<KeyRecord>>;
  aliases: Map<string, Stored<AliasRecord>>;
}

export interface StateLogger {
  warn(obj: object, msg: string): void;
}

/**
 * One committed change of one record, as the writer knows it: the record
 * as written, or the removal of every generation of a record up to
 * `generation`. Another worker of the same gateway applies it
 * (learn/forget) instead of listing the token's records again (cluster/).
 * The record keeps the writer's `ref`, which names it on every instance
 * (Hsm.listRecords).
 */
export type StateChange =
  | { written: Stored<unknown> }
  | { removed: { kind: RecordKind; name: string; generation: number } };

export class StateStore {
  /** Every record on the token as of the last load, by ref. */
  private readonly known = new Map<string, Stored<unknown>>();
  /** This process's writer id: breaks generation ties between gateways. */
  readonly writer = randomBytes(4).toString('hex');

  constructor(
    private readonly hsm: Hsm,
    private readonly log: StateLogger,
    /** Told of every committed write and removal, in commit order. */
    private readonly onChange: (change: StateChange) => void = () => undefined,
  ) {}

  /** The token's state mark (hex), written first when the token has none; read it before load(). */
  async mark(): Promise<string> {
    const mark = await this.hsm.readStateMark();
    if (mark !== undefined) return mark.toString('hex');
    await this.touchMark();
    return ((await this.hsm.readStateMark()) ?? Buffer.alloc(0)).toString('hex');
  }

  /** The mark write under way, if any, and whether a change committed since it started needs one more. */
  private markWrite: Promise<void> | undefined;
  private markAgain = false;

  /**
   * Changes the mark after a change is committed, without holding up the
   * change's caller: the mark only tells other gateways on the token that
   * something changed (the workers of this gateway are told directly), and
   * replacing it is a find, a create and a destroy, ~100 ms at 1,000 keys on
   * SoftHSM2 2.6.1. Changes committed while a write runs share the one
   * write after it, which starts after they are committed, so the mark
   * still moves only after the records it announces (see load()).
   */
  private touchMarkSoon(): void {
    if (this.markWrite !== undefined) {
      this.markAgain = true;
      return;
    }
    const run = async (): Promise<void> => {
      do {
        this.markAgain = false;
        await this.touchMark();
      } while (this.markAgain);
      // Cleared in the same turn as the last check: a change committed after it starts a new write
      // (cleared in a .finally() instead, a change in between would set markAgain for nobody).
      this.markWrite = undefined;
    };
    this.markWrite = run();
  }

  /** Resolves once no mark write is pending (a stopping gateway waits for it). */
  async settled(): Promise<void> {
    while (this.markWrite !== undefined) await this.markWrite;
  }

  /**
   * Changes the mark. A failure here does not undo or fail the change:
   * other instances then see it at their next full refresh
   * (state.fullRefreshMs) instead of their next tick.
   */
  private async touchMark(): Promise<void> {
    try {
      await this.hsm.writeStateMark(randomBytes(16));
    } catch (e) {
      this.log.warn({ err: (e as Error).name }, 'could not change the state mark; other gateways see this change at their next full refresh');
    }
  }

  /** Reads the token's records; returns the newest generation of each, and deletes superseded ones. */
  async load(): Promise<Snapshot> {
    const listed = await this.hsm.listRecords();
    const seen = new Set<string>();
    for (const { ref, label } of listed) {
      const parsed = parseLabel(label);
      if (parsed === undefined) continue;
      seen.add(ref);
      const prior = this.known.get(ref);
      if (prior !== undefined && formatLabel(prior.label) === label) continue;
      const raw = await this.hsm.readRecord(ref);
      if (raw === undefined) {
        seen.delete(ref);
        continue;
      }
      try {
        this.known.set(ref, { ref, label: parsed, value: JSON.parse(raw.toString('utf8')) as unknown });
      } catch {
        // A record cut short by a crash during C_CreateObject: it never committed.
        this.log.warn({ label }, 'ignoring an unreadable state record');
        seen.delete(ref);
      }
    }
    for (const ref of [...this.known.keys()]) if (!seen.has(ref)) this.known.delete(ref);

    const winners = new Map<string, Stored<unknown>>();
    const losers: Stored<unknown>[] = [];
    for (const s of this.known.values()) {
      const id = `${s.label.kind}:${s.label.name}`;
      const w = winners.get(id);
      if (w === undefined) winners.set(id, s);
      else if (newer(s.label, w.label)) {
        losers.push(w);
        winners.set(id, s);
      } else losers.push(s);
    }
    for (const l of losers) await this.delete(l.ref);

    const snapshot: Snapshot = { keys: new Map(), aliases: new Map() };
    for (const s of winners.values()) {
      if (s.label.kind === 'key') snapshot.keys.set(s.label.name, s as Stored<KeyRecord>);
      else snapshot.aliases.set(s.label.name, s as Stored<AliasRecord>);
    }
    return snapshot;
  }

  /**
   * Writes the next generation of a record: creating it is the commit point;
   * the generations before it are deleted afterwards (a crash in between
   * leaves them to the next load, which deletes them).
   */
  async write<T>(kind: RecordKind, name: string, value: T): Promise<Stored<T>> {
    const older = [...this.known.values()].filter((s) => s.label.kind === kind && s.label.name === name);
    const generation = older.reduce((g, s) => Math.max(g, s.label.generation + 1), 0);
    const label: RecordLabel = { kind, generation, writer: this.writer, name };
    const ref = await this.hsm.createRecord(formatLabel(label), Buffer.from(JSON.stringify(value), 'utf8'));
    const stored: Stored<T> = { ref, label, value };
    this.known.set(ref, stored);
    this.onChange({ written: stored });
    for (const o of older) await this.delete(o.ref);
    this.touchMarkSoon();
    return stored;
  }

  /** Deletes every generation of a record. */
  async remove(kind: RecordKind, name: string): Promise<void> {
    let generation = -1;
    for (const s of [...this.known.values()])
      if (s.label.kind === kind && s.label.name === name) {
        await this.hsm.deleteRecord(s.ref);
        this.known.delete(s.ref);
        generation = Math.max(generation, s.label.generation);
      }
    this.onChange({ removed: { kind, name, generation } });
    this.touchMarkSoon();
  }

  /**
   * Takes in a record another worker wrote (StateChange), without reading
   * the token: false when this store already knows that generation or a
   * later one. The generations before it are forgotten, as their writer
   * deletes them; one it failed to delete is found again by the next load.
   */
  learn(stored: Stored<unknown>): boolean {
    const { kind, name } = stored.label;
    const same = [...this.known.values()].filter((s) => s.label.kind === kind && s.label.name === name);
    if (same.some((s) => !newer(stored.label, s.label))) return false;
    for (const s of same) this.known.delete(s.ref);
    this.known.set(stored.ref, stored);
    return true;
  }

  /** Forgets the generations of a record another worker removed (StateChange). */
  forget(kind: RecordKind, name: string, generation: number): void {
    for (const s of [...this.known.values()])
      if (s.label.kind === kind && s.label.name === name && s.label.generation <= generation) this.known.delete(s.ref);
  }

  private async delete(ref: string): Promise<void> {
    this.known.delete(ref);
    try {
      await this.hsm.deleteRecord(ref);
    } catch (e) {
      // Left for a later load to delete; the newer generation already wins.
      this.log.warn({ err: (e as Error).name }, 'could not delete a superseded state record');
    }
  }
}
