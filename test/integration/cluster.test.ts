/**
 * The gateway as `make run` starts it on a multi-core machine: a cluster
 * primary that listens and hands each connection to one of KMSGW_WORKERS
 * worker processes, each with its own PKCS#11 instance. A client's
 * connections land on any worker, so what
 * one worker changes must be in force on every worker by the time its
 * client has the answer, /metrics must count every worker's requests, and
 * signals must reach every worker.
 */
import { execFileSync } from 'node:child_process';
import { Agent as HttpAgent, get as httpGet } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeleteAliasCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EncryptCommand,
  GenerateRandomCommand,
  KMSClient,
  ListAliasesCommand,
  ListKeysCommand,
  UpdateAliasCommand,
  UpdateKeyDescriptionCommand,
} from '@aws-sdk/client-kms';
import { expect } from 'chai';
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET, REGION, defaultConfig, kmsClient, makeToken, startExpectingFailure, startGateway, type GatewayProcess } from '../support/gateway.js';
import { metricSum, waitFor } from '../support/ops.js';
import { failure } from '../support/sdk-errors.js';

const WORKERS = 2;
/** Enough fresh connections that both workers serve some of them (the primary hands connections out in turn). */
const FRESH = 8;

/** The worker processes under the primary. */
function workerPids(gw: GatewayProcess): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(gw.child.pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Runs `call` once on each of FRESH new clients, so each goes over a new connection. */
async function onFreshConnections<T>(gw: GatewayProcess, call: (kms: KMSClient) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < FRESH; i++) {
    const kms = kmsClient(gw.url);
    try {
      out.push(await call(kms));
    } finally {
      kms.destroy();
    }
  }
  return out;
}

/** GET /healthz on a connection of its own: the status, the socket error's code, or 'no answer' after 5 s. */
function healthz(port: number, agent: HttpAgent): Promise<string> {
  return new Promise((done) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/healthz', agent, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => done(String(res.statusCode)));
    });
    req.on('timeout', () => {
      req.destroy();
      done('no answer');
    });
    req.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

describe('a gateway of two worker processes (node:cluster)', function () {
  this.timeout(90_000);
  let gw: GatewayProcess;

  before(async function () {
    gw = await startGateway({ workers: WORKERS });
  });

  after(async function () {
    await gw?.stop();
  });

  it('runs one primary and KMSGW_WORKERS workers, and announces itself once, when every worker listens', function () {
    expect(workerPids(gw)).to.have.length(WORKERS);
    const announced = gw.logs().split('\n').filter((l) => l.includes('kms-hsm-gateway listening'));
    expect(announced).to.have.length(1);
    expect(JSON.parse(announced[0] as string)).to.include({ workers: WORKERS });
  });

  it('created the configured keys once on a new token, though two workers opened it: each works from every worker', async function () {
    const answers = await onFreshConnections(gw, (kms) => kms.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('seeded once') })));
    expect(answers.every((a) => a.CiphertextBlob !== undefined)).to.equal(true);
    const rsa = await onFreshConnections(gw, (kms) => kms.send(new DescribeKeyCommand({ KeyId: 'alias/demo-rsa-2048' })));
    expect(rsa.every((a) => a.KeyMetadata?.Enabled === true)).to.equal(true);
  });

  it('a key and an alias created through one connection are usable at once on every other connection', async function () {
    const kms = kmsClient(gw.url);
    const created = await kms.send(new CreateKeyCommand({ Description: 'cluster read-your-writes' }));
    const keyId = created.KeyMetadata?.KeyId as string;
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/cluster-fresh', TargetKeyId: keyId }));
    kms.destroy();
    const described = await onFreshConnections(gw, (c) => c.send(new DescribeKeyCommand({ KeyId: keyId })));
    expect(described.map((d) => d.KeyMetadata?.KeyId)).to.deep.equal(Array(FRESH).fill(keyId));
    const sealed = await onFreshConnections(gw, (c) => c.send(new EncryptCommand({ KeyId: 'alias/cluster-fresh', Plaintext: Buffer.from('x') })));
    expect(sealed.every((s) => s.KeyId?.endsWith(keyId))).to.equal(true);
  });

  it('a key disabled through one connection is refused at once on every other connection', async function () {
    const kms = kmsClient(gw.url);
    const keyId = (await kms.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId as string;
    await kms.send(new DisableKeyCommand({ KeyId: keyId }));
    kms.destroy();
    const errors = await onFreshConnections(gw, async (c) => (await failure(c.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('x') })))).name);
    expect(errors).to.deep.equal(Array(FRESH).fill('DisabledException'));
  });

  it('two clients changing keys and aliases at once each see their change at once on another connection, and every worker ends with the same keys and aliases', async function () {
    const round = async (who: string, i: number, previous: string | undefined): Promise<string> => {
      const kms = kmsClient(gw.url);
      const fresh = kmsClient(gw.url);
      try {
        const keyId = (await kms.send(new CreateKeyCommand({ Description: `${who}-${i}` }))).KeyMetadata?.KeyId as string;
        const alias = `alias/both-${who}-${i}`;
        await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: keyId }));
        expect((await fresh.send(new DescribeKeyCommand({ KeyId: alias }))).KeyMetadata?.Description).to.equal(`${who}-${i}`);
        await kms.send(new UpdateKeyDescriptionCommand({ KeyId: keyId, Description: `${who}-${i} changed` }));
        expect((await fresh.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.Description).to.equal(`${who}-${i} changed`);
        if (previous !== undefined) {
          await kms.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: previous }));
          expect((await fresh.send(new DescribeKeyCommand({ KeyId: alias }))).KeyMetadata?.KeyId).to.equal(previous);
        }
        if (i % 2 === 0) {
          await kms.send(new DeleteAliasCommand({ AliasName: alias }));
          expect((await failure(fresh.send(new DescribeKeyCommand({ KeyId: alias })))).name).to.equal('NotFoundException');
        }
        return keyId;
      } finally {
        kms.destroy();
        fresh.destroy();
      }
    };
    await Promise.all(['a', 'b'].map(async (who) => {
      let previous: string | undefined;
      for (let i = 0; i < 6; i++) previous = await round(who, i, previous);
    }));
    const views = await onFreshConnections(gw, async (kms) => {
      const aliases = (await kms.send(new ListAliasesCommand({ Limit: 1000 }))).Aliases ?? [];
      const keys = (await kms.send(new ListKeysCommand({ Limit: 1000 }))).Keys ?? [];
      return JSON.stringify([aliases.map((a) => `${a.AliasName}>${a.TargetKeyId}`).sort(), keys.map((k) => k.KeyId).sort()]);
    });
    expect(new Set(views).size).to.equal(1);
    expect(JSON.parse(views[0] as string)[0].filter((a: string) => a.startsWith('alias/both-'))).to.have.length(6);
  });

  it('GET /metrics counts the requests of every worker, exactly as clients saw them', async function () {
    const count = async () => metricSum(await (await fetch(`${gw.url}/metrics`)).text(), 'kmsgw_requests_total', { operation: 'GenerateRandom', outcome: 'success' });
    const before = await count();
    await onFreshConnections(gw, (c) => c.send(new GenerateRandomCommand({ NumberOfBytes: 8 })));
    await onFreshConnections(gw, (c) => c.send(new GenerateRandomCommand({ NumberOfBytes: 8 })));
    expect(await count()).to.equal(before + 2 * FRESH);
  });

  it('every worker writes its own audit lines to the shared stdout, and lines written at once by both stay whole', async function () {
    // Many requests at once over fresh connections: both workers answer some and flush their lines in the same moments.
    const ids = (
      await Promise.all(
        Array.from({ length: 4 * FRESH }, async () => {
          const kms = kmsClient(gw.url);
          try {
            const out = await kms.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('audited'), EncryptionContext: { ['x'.repeat(200)]: 'v' } }));
            return out.$metadata.requestId ?? '';
          } finally {
            kms.destroy();
          }
        }),
      )
    ).filter((id) => id !== '');
    expect(ids).to.have.length(4 * FRESH);
    const lineOf = (id: string) => gw.logs().split('\n').find((l) => l.includes(`"requestId":"${id}"`));
    await waitFor('an audit line for every request', async () => (ids.every((id) => lineOf(id) !== undefined) ? true : undefined), 10_000);
    for (const id of ids) {
      const line = JSON.parse(lineOf(id) ?? '') as { operation: string; outcome: string; encryptionContextKeys: string[] };
      expect(line).to.include({ operation: 'Encrypt', outcome: 'success' });
      expect(line.encryptionContextKeys).to.deep.equal(['x'.repeat(200)]);
    }
  });

  it('SIGHUP re-reads the credentials file in every worker: a removed access key is refused on every connection', async function () {
    const file = join(gw.token.dir, 'credentials.json');
    const original = readFileSync(file, 'utf8');
    const extra = { accessKeyId: 'AKIACLUSTERHUP000001', secretAccessKey: 'cluster-hup-secret-0123456789abcdefghij' };
    const withExtra = (keys: object[]) => JSON.stringify({ principals: [{ name: 'demo', admin: true, accessKeys: keys }] });
    const demo = { accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET };
    const replace = (text: string) => {
      writeFileSync(`${file}.new`, text, { mode: 0o600 });
      chmodSync(`${file}.new`, 0o600);
      renameSync(`${file}.new`, file);
    };
    const reloads = () => gw.logs().split('\n').filter((l) => l.includes('credentials reloaded') && l.includes('"reason":"SIGHUP"')).length;
    replace(withExtra([demo, extra]));
    let seen = reloads();
    gw.child.kill('SIGHUP');
    await waitFor('every worker reloads', async () => (reloads() >= seen + WORKERS ? true : undefined), 10_000);
    const asExtra = () => new KMSClient({ endpoint: gw.url, region: REGION, credentials: extra, maxAttempts: 1 });
    const ok = await onFreshConnections(gw, async () => {
      const c = asExtra();
      try {
        return (await c.send(new GenerateRandomCommand({ NumberOfBytes: 4 }))).Plaintext?.length;
      } finally {
        c.destroy();
      }
    });
    expect(ok).to.deep.equal(Array(FRESH).fill(4));
    replace(original);
    seen = reloads();
    gw.child.kill('SIGHUP');
    await waitFor('every worker reloads again', async () => (reloads() >= seen + WORKERS ? true : undefined), 10_000);
    const refused = await onFreshConnections(gw, async () => {
      const c = asExtra();
      try {
        return (await failure(c.send(new GenerateRandomCommand({ NumberOfBytes: 4 })))).name;
      } finally {
        c.destroy();
      }
    });
    expect(refused).to.deep.equal(Array(FRESH).fill('UnrecognizedClientException'));
  });

  it('a worker that dies is replaced, and no connection opened in that moment is left unanswered', async function () {
    const [victim] = workerPids(gw);
    // 40 fresh connections, the SIGKILL after the 10th is opened. With
    // node:cluster's round-robin one of them hung in every try (the primary
    // had handed it to the dying worker and kept it, unread, forever).
    const agent = new HttpAgent({ keepAlive: false });
    const opened: Promise<string>[] = [];
    for (let i = 0; i < 40; i++) {
      opened.push(healthz(gw.port, agent));
      if (i === 10) process.kill(victim as number, 'SIGKILL');
      await new Promise((r) => setImmediate(r));
    }
    const outcomes = await Promise.all(opened);
    expect(outcomes.filter((o) => o === 'no answer'), outcomes.join(' ')).to.deep.equal([]);
    // A connection the worker had already taken dies with it (the client sees a reset and retries); every other one is answered.
    expect(outcomes.filter((o) => o !== '200' && o !== 'ECONNRESET' && o !== 'EPIPE'), outcomes.join(' ')).to.deep.equal([]);
    expect(outcomes.filter((o) => o === '200').length).to.be.greaterThan(30);
    await waitFor('a replacement worker', async () => {
      const pids = workerPids(gw);
      return pids.length === WORKERS && !pids.includes(victim as number) ? true : undefined;
    }, 30_000);
    const answers = await onFreshConnections(gw, (c) => c.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('after') })));
    expect(answers).to.have.length(FRESH);
  });

  it('SIGTERM stops the primary and every worker, with exit code 0', async function () {
    const workers = workerPids(gw);
    const exited = new Promise<number | null>((done) => gw.child.once('exit', (code) => done(code)));
    gw.child.kill('SIGTERM');
    expect(await exited).to.equal(0);
    for (const pid of workers) expect(() => process.kill(pid, 0), `worker ${pid} is gone`).to.throw();
  });
});

describe('stopping a two-worker gateway', function () {
  this.timeout(60_000);

  it('on SIGTERM, the workers finish the requests in flight on their connections, then all exit 0', async function () {
    const gw = await startGateway({ workers: WORKERS });
    const clients = Array.from({ length: 4 }, () => kmsClient(gw.url));
    const { CiphertextBlob } = await (clients[0] as KMSClient).send(
      new EncryptCommand({ KeyId: 'alias/demo-rsa-4096', EncryptionAlgorithm: 'RSAES_OAEP_SHA_256', Plaintext: Buffer.from('in flight') }),
    );
    // RSA-4096 decryption is the slowest thing the token does (~6 ms each on SoftHSM2); four clients, so both workers have some.
    const calls = clients.flatMap((kms) =>
      Array.from({ length: 10 }, () =>
        kms.send(new DecryptCommand({ KeyId: 'alias/demo-rsa-4096', EncryptionAlgorithm: 'RSAES_OAEP_SHA_256', CiphertextBlob })).then((r) => Buffer.from(r.Plaintext ?? []).toString()),
      ),
    );
    await new Promise((r) => setTimeout(r, 30));
    const exited = new Promise<number | null>((done) => gw.child.once('exit', (code) => done(code)));
    gw.child.kill('SIGTERM');
    const results = await Promise.allSettled(calls);
    expect(await exited, gw.logs()).to.equal(0);
    const answered = results.filter((r): r is PromiseFulfilledResult<string> => r.status === 'fulfilled');
    for (const r of answered) expect(r.value).to.equal('in flight');
    expect(answered.length).to.be.greaterThan(0);
    for (const kms of clients) kms.destroy();
  });

  it('whose port is taken: stops with exit code 1 and says which address it could not have', async function () {
    const taken = createNetServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (taken.address() as AddressInfo).port;
      const { code, stderr } = await startExpectingFailure({ config: defaultConfig(), env: { KMSGW_WORKERS: String(WORKERS), KMSGW_PORT: String(port) } });
      expect(code, stderr).to.equal(1);
      expect(stderr).to.include(`cannot listen on 127.0.0.1:${port}`).and.to.include('EADDRINUSE');
    } finally {
      taken.close();
    }
  });
});

describe('a two-worker gateway on a token that refuses its PIN', function () {
  this.timeout(60_000);

  it('starts only its first worker, so the PIN is tried once, and answers KeyUnavailableException', async function () {
    const token = makeToken('kmsgw-dev');
    writeFileSync(token.pinFile, 'wrong-pin-0000\n', { mode: 0o600 });
    const gw = await startGateway({ token, workers: WORKERS });
    try {
      expect(workerPids(gw)).to.have.length(1);
      expect(gw.logs()).to.include('no other worker starts');
      const err = await failure(kmsClient(gw.url).send(new GenerateRandomCommand({ NumberOfBytes: 4 })));
      expect(err.name).to.equal('KeyUnavailableException');
    } finally {
      await gw.stop();
    }
  });
});
