/**
 * What the gateway stores about keys and aliases, and how it is laid out on
 * the token. Every record is one PKCS#11 data object whose label names it
 * and whose value is the record as JSON:
 *
 *   label  kmsgw/v1/<kind>/<generation>/<writer>/<name>
 *   kind   key | alias;  name = the key id or the alias name (which may hold '/')
 *
 * A record is never changed in place. A writer creates the next generation
 * (the commit point: one C_CreateObject), then deletes the older ones. A
 * crash in between leaves two generations, and every reader takes the
 * highest (ties broken by writer id), so a state change is either there
 * whole or not at all.
 */
import type { KeySpec } from '../config/config.js';

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';
export type RotationType = 'AUTOMATIC' | 'ON_DEMAND';

export interface MaterialRecord {
  version: number;
  /** The token objects: CKA_LABEL and/or CKA_ID (hex). */
  label?: string | undefined;
  id?: string | undefined;
  /** ISO time the material was made current. */
  createdAt: string;
  /** How the material came (absent for the key's first material). */
  rotationType?: RotationType | undefined;
}

export interface Tag {
  TagKey: string;
  TagValue: string;
}

export interface KeyRecord {
  keyId: string;
  keySpec: KeySpec;
  keyUsage: 'ENCRYPT_DECRYPT';
  description: string;
  creationDate: string;
  keyState: KeyState;
  /** When PendingDeletion: the ISO time after which the key is destroyed. */
  deletionDate?: string | undefined;
  pendingWindowInDays?: number | undefined;
  tags: Tag[];
  rotation: { enabled: boolean; periodDays: number; nextRotationDate?: string | undefined };
  materials: MaterialRecord[];
  currentVersion: number;
  /** 'config': seeded from the config file's key table; 'api': made by CreateKey. */
  source: 'config' | 'api';
}

export interface AliasRecord {
  aliasName: string;
  targetKeyId: string;
  creationDate: string;
  lastUpdatedDate: string;
}

export type RecordKind = 'key' | 'alias';

export interface RecordLabel {
  kind: RecordKind;
  generation: number;
  writer: string;
  name: string;
}

const PREFIX = 'kmsgw/v1/';

export function formatLabel(l: RecordLabel): string {
  return `${PREFIX}${l.kind}/${l.generation}/${l.writer}/${l.name}`;
}

export function parseLabel(label: string): RecordLabel | undefined {
  if (!label.startsWith(PREFIX)) return undefined;
  const parts = label.slice(PREFIX.length).split('/');
  if (parts.length < 4) return undefined;
  const [kind, gen, writer, ...rest] = parts as [string, string, string, ...string[]];
  const generation = Number(gen);
  if ((kind !== 'key' && kind !== 'alias') || !Number.isSafeInteger(generation) || generation < 0 || writer === '')
    return undefined;
  return { kind, generation, writer, name: rest.join('/') };
}

/** Whether `a` is a later generation than `b`. */
export function newer(a: RecordLabel, b: RecordLabel): boolean {
  return a.generation !== b.generation ? a.generation > b.generation : a.writer > b.writer;
}
