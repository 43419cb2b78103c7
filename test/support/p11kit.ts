/**
 * Test support: a network HSM on one machine. `p11-kit server` (Debian
 * package p11-kit) exports a SoftHSM2 token on a unix socket; the gateway
 * reaches it through `p11-kit-client.so` (p11-kit-modules), as it would a
 * network HSM. The server forks one `p11-kit-remote` per client
 * connection, and that child does the work, so freezing or killing "the
 * HSM" means signalling the server and all its children.
 *
 * p11-kit 0.24.1 (Debian 12) forwards only the mechanisms its RPC can
 * serialise: CKM_RSA_X_509, CKM_RSA_PKCS_OAEP, key generation, random,
 * objects; not CKM_AES_GCM (C_EncryptInit answers CKR_MECHANISM_INVALID).
 * Tests through it therefore use RSA keys.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TokenDir } from './gateway.js';
import { SOFTHSM_MODULE } from './gateway.js';

export const P11KIT_CLIENT_MODULE = '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so';

export class P11KitServer {
  readonly socket: string;
  private child: ChildProcess | undefined;

  constructor(private readonly token: TokenDir) {
    this.socket = join(token.dir, '..', 'p11kit.sock');
  }

  /** What the gateway's environment needs to reach this server. */
  get address(): string {
    return `unix:path=${this.socket}`;
  }

  async start(): Promise<void> {
    rmSync(this.socket, { force: true });
    this.child = spawn('p11-kit', ['server', '-f', '-n', this.socket, '--provider', SOFTHSM_MODULE, `pkcs11:token=${this.token.label}`], {
      env: { PATH: process.env['PATH'] ?? '', SOFTHSM2_CONF: this.token.conf },
      stdio: 'ignore',
    });
    for (let i = 0; i < 100 && !existsSync(this.socket); i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(this.socket)) throw new Error('p11-kit server did not create its socket');
  }

  /** The server and its per-connection p11-kit-remote children. */
  pids(): number[] {
    const pid = this.child?.pid;
    if (pid === undefined || this.child?.exitCode !== null) return [];
    let children: number[] = [];
    try {
      children = execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      // no children yet
    }
    return [pid, ...children];
  }

  private signal(sig: NodeJS.Signals): number[] {
    const pids = this.pids();
    for (const p of pids) {
      try {
        process.kill(p, sig);
      } catch {
        // gone meanwhile
      }
    }
    return pids;
  }

  /** SIGSTOP: calls in flight and new calls hang, as with a network HSM that stopped answering. */
  freeze(): void {
    this.signal('SIGSTOP');
  }

  thaw(): void {
    this.signal('SIGCONT');
  }

  /** SIGKILL the server and every connection: calls fail (CKR_DEVICE_ERROR) until the module is re-initialised. */
  async kill(): Promise<void> {
    const child = this.child;
    this.signal('SIGCONT');
    this.signal('SIGKILL');
    if (child !== undefined && child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    this.child = undefined;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.socket, { force: true });
  }
}
