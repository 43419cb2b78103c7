/**
 * The gateway's operational surface, in-process: the express app over the
 * in-memory fake HSM and a real KeyStore, on real HTTP (port 0), signed as
 * the SDKs sign. Every KMS answer moves the request counters by exactly one,
 * with the operation and the error type the client saw; /healthz, /readyz and
 * /metrics answer without a signature and without an audit line.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import { createApp } from '../../src/app.js';
import { readinessCheck } from '../../src/api/health.js';
import { parseCredentials } from '../../src/auth/credentials.js';
import { PolicyAuthorizer } from '../../src/auth/policy.js';
import { SigV4Authenticator } from '../../src/auth/sigv4.js';
import { DependencyTimeoutException, KeyUnavailableException } from '../../src/errors.js';
import { KeyStore, type KmsKey } from '../../src/keys/key-store.js';
import { createLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { FakeHsm } from '../support/fake-hsm.js';
import { ACCOUNT, REGION, ROOT, rawRequest } from '../support/gateway.js';

/** One sample of the Prometheus text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the text format's sample lines (comments must be HELP or TYPE). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      expect(line, 'comment line').to.match(/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* /);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `sample line: ${line}`).to.not.equal(null);
    const labels: Record<string, string> = {};
    for (const l of (m![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels[l[1]!] = l[2]!;
    // Go's ParseFloat, which Prometheus uses, takes NaN and ±Inf in any case (prom-client writes `Nan` before the first event loop sample).
    const raw = m![3]!;
    const value = /^[+-]?inf$/i.test(raw) ? (raw.startsWith('-') ? -Infinity : Infinity) : /^nan$/i.test(raw) ? NaN : Number(raw);
    expect(Number.isNaN(value) && !/^nan$/i.test(raw), `value of ${line}`).to.equal(false);
    samples.push({ name: m![1]!, labels, value });
  }
  return samples;
}

/** The value of one sample (0 when the series does not exist yet). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length);
  return found?.value ?? 0;
}

/** The sum over every series of a metric. */
function sumOf(samples: Sample[], name: string): number {
  return samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);
}

describe('request metrics and the health endpoints (in-process app, fake HSM)', () => {
  let hsm: FakeHsm;
  let keys: KeyStore;
  let metrics: Metrics;
  let server: Server;
  let url: string;
  let aes: KmsKey;
  let hsmReady: { ready: boolean; reason?: string };
  const auditLines: string[] = [];

  before(async () => {
    hsm = new FakeHsm();
    keys = new KeyStore({ region: REGION, accountId: ACCOUNT }, hsm, { log: { info() {}, warn() {} } });
    metrics = createMetrics();
    hsmReady = { ready: true };
    const demo = parseCredentials(JSON.parse(readFileSync(join(ROOT, 'config', 'demo-credentials.json'), 'utf8')), 'demo-credentials.json');
    const app = createApp({
      keys,
      hsm,
      log: createLogger('silent'),
      auth: {
        authenticator: new SigV4Authenticator({ region: REGION, credentials: { lookup: (id) => demo.get(id) } }),
        authorizer: new PolicyAuthorizer([], ACCOUNT),
      },
      audit: { write: (line) => void auditLines.push(line), close: async () => undefined },
      metrics,
      ready: readinessCheck(keys, { readiness: async () => hsmReady }),
    });
    server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await keys.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function scrape(): Promise<Sample[]> {
    const res = await fetch(`${url}/metrics`);
    expect(res.status).to.equal(200);
    return parseExposition(await res.text());
  }

  const encrypt = (keyId: string) => rawRequest(url, { target: 'TrentService.Encrypt', body: JSON.stringify({ KeyId: keyId, Plaintext: 'aGVsbG8=' }) });

  describe('before the key state is loaded from the token', () => {
    it('/healthz answers 200 ok: the process is alive, whatever the HSM does', async () => {
      const res = await fetch(`${url}/healthz`);
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ status: 'ok' });
      expect(res.headers.get('cache-control')).to.equal('no-store');
    });

    it('/readyz answers 503 and says the key state is not loaded', async () => {
      const res = await fetch(`${url}/readyz`);
      expect(res.status).to.equal(503);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(await res.json()).to.deep.equal({ status: 'not ready', reasons: ['key state not loaded from the HSM'] });
    });

    it('a signed Encrypt answers the retryable KeyUnavailableException, counted with key_id="unknown"', async () => {
      const res = await encrypt('alias/anything');
      expect(res.status).to.equal(500);
      expect(res.body).to.deep.equal({ __type: 'KeyUnavailableException', message: 'The key state is not loaded from the HSM yet.' });
      const s = await scrape();
      expect(valueOf(s, 'kmsgw_requests_total', { operation: 'Encrypt', outcome: 'KeyUnavailableException' })).to.equal(1);
      expect(valueOf(s, 'kmsgw_key_unavailable_total', { key_id: 'unknown', operation: 'Encrypt' })).to.equal(1);
      expect(valueOf(s, 'kmsgw_key_state_loaded', {})).to.equal(0);
    });

    it('an unsigned request still gets its authentication error first', async () => {
      const res = await rawRequest(url, { target: 'TrentService.Encrypt', body: '{}', signed: false });
      expect(res.status).to.equal(400);
      expect(res.body?.['__type']).to.equal('MissingAuthenticationTokenException');
      const s = await scrape();
      expect(valueOf(s, 'kmsgw_requests_total', { operation: 'Encrypt', outcome: 'MissingAuthenticationTokenException' })).to.equal(1);
    });

    it('operations that touch no key (GenerateRandom, CreateKey) are refused the same way', async () => {
      for (const target of ['GenerateRandom', 'CreateKey']) {
        const res = await rawRequest(url, { target: `TrentService.${target}`, body: target === 'GenerateRandom' ? '{"NumberOfBytes":16}' : '{}' });
        expect(res.body?.['__type'], target).to.equal('KeyUnavailableException');
      }
      expect(keys.size).to.equal(0);
    });
  });

  describe('once the key state is loaded', () => {
    before(async () => {
      await keys.init({ keys: [] });
      aes = await keys.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    });

    it('/readyz answers 200 ready', async () => {
      const res = await fetch(`${url}/readyz`);
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ status: 'ready' });
    });

    it('/readyz answers 503 with the HSM\'s own reason while the HSM says it is not ready', async () => {
      hsmReady = { ready: false, reason: 'HSM unavailable (circuit open)' };
      try {
        const res = await fetch(`${url}/readyz`);
        expect(res.status).to.equal(503);
        expect(await res.json()).to.deep.equal({ status: 'not ready', reasons: ['HSM unavailable (circuit open)'] });
      } finally {
        hsmReady = { ready: true };
      }
    });

    it('each answer moves its counter by exactly one and the duration histogram of its operation', async () => {
      const before = await scrape();
      const answers = [
        await encrypt(aes.keyId), // success
        await encrypt(aes.keyId), // success
        await rawRequest(url, { target: 'TrentService.Encrypt', body: '{"KeyId":"alias/demo-aes"}' }), // ValidationException (no Plaintext)
        await encrypt('alias/nope'), // NotFoundException
        await rawRequest(url, { target: 'TrentService.DescribeKey', body: JSON.stringify({ KeyId: aes.keyId }) }), // success
      ];
      expect(answers.map((a) => a.body?.['__type'] ?? 'success')).to.deep.equal(['success', 'success', 'ValidationException', 'NotFoundException', 'success']);
      const after = await scrape();
      const moved = (labels: Record<string, string>) =>
        valueOf(after, 'kmsgw_requests_total', labels) - valueOf(before, 'kmsgw_requests_total', labels);
      expect(moved({ operation: 'Encrypt', outcome: 'success' })).to.equal(2);
      expect(moved({ operation: 'Encrypt', outcome: 'ValidationException' })).to.equal(1);
      expect(moved({ operation: 'Encrypt', outcome: 'NotFoundException' })).to.equal(1);
      expect(moved({ operation: 'DescribeKey', outcome: 'success' })).to.equal(1);
      expect(sumOf(after, 'kmsgw_requests_total') - sumOf(before, 'kmsgw_requests_total')).to.equal(5);
      const count = (s: Sample[], operation: string) => valueOf(s, 'kmsgw_request_duration_seconds_count', { operation });
      expect(count(after, 'Encrypt') - count(before, 'Encrypt')).to.equal(4);
      expect(count(after, 'DescribeKey') - count(before, 'DescribeKey')).to.equal(1);
      expect(valueOf(after, 'kmsgw_request_duration_seconds_bucket', { operation: 'Encrypt', le: '+Inf' })).to.equal(count(after, 'Encrypt'));
      expect(valueOf(after, 'kmsgw_request_duration_seconds_sum', { operation: 'Encrypt' })).to.be.greaterThan(0);
    });

    it('an unknown target is counted as operation="unknown", whatever the client wrote', async () => {
      const before = await scrape();
      for (const target of ['TrentService.NoSuchThing', 'Evil.${jndi}', '']) {
        const res = await rawRequest(url, { target, body: '{}' });
        expect(res.body?.['__type']).to.equal('UnknownOperationException');
      }
      const after = await scrape();
      const labels = { operation: 'unknown', outcome: 'UnknownOperationException' };
      expect(valueOf(after, 'kmsgw_requests_total', labels) - valueOf(before, 'kmsgw_requests_total', labels)).to.equal(3);
      expect(after.some((s) => s.labels['operation'] === 'NoSuchThing' || (s.labels['operation'] ?? '').includes('jndi'))).to.equal(false);
    });

    it('when the HSM answers KeyUnavailableException for a known key, it is counted with that key\'s id', async () => {
      hsm.failOn('aesGcmSeal', () => new KeyUnavailableException(`${aes.arn} is unavailable.`));
      const res = await encrypt(aes.arn);
      expect(res.status).to.equal(500);
      expect(res.body?.['__type']).to.equal('KeyUnavailableException');
      const s = await scrape();
      expect(valueOf(s, 'kmsgw_key_unavailable_total', { key_id: aes.keyId, operation: 'Encrypt' })).to.equal(1);
      // The raw client string (here an ARN) never becomes a label value.
      expect(s.some((x) => x.labels['key_id'] === aes.arn)).to.equal(false);
    });

    it('when the HSM passes its deadline, DependencyTimeoutException is counted in kmsgw_hsm_timeouts_total, whose series existed at 0 before', async () => {
      const before = (await scrape()).find((x) => x.name === 'kmsgw_hsm_timeouts_total' && x.labels['operation'] === 'Encrypt');
      expect(before?.value, 'the series exists from the start, so rate() sees the first timeout').to.equal(0);
      hsm.failOn('aesGcmSeal', () => new DependencyTimeoutException('The HSM did not answer in time.'));
      const res = await encrypt(aes.keyId);
      expect(res.status).to.equal(503);
      expect(res.body?.['__type']).to.equal('DependencyTimeoutException');
      const s = await scrape();
      expect(valueOf(s, 'kmsgw_hsm_timeouts_total', { operation: 'Encrypt' })).to.equal(1);
      expect(valueOf(s, 'kmsgw_requests_total', { operation: 'Encrypt', outcome: 'DependencyTimeoutException' })).to.equal(1);
    });

    it('what is not POST / (GET /, POST /other) is not a KMS request and is not counted', async () => {
      const before = sumOf(await scrape(), 'kmsgw_requests_total');
      expect((await rawRequest(url, { method: 'GET', target: 'TrentService.Encrypt' })).body?.['__type']).to.equal('UnknownOperationException');
      expect((await rawRequest(`${url}/other`, { target: 'TrentService.Encrypt' })).body?.['__type']).to.equal('UnknownOperationException');
      expect(sumOf(await scrape(), 'kmsgw_requests_total')).to.equal(before);
    });
  });

  describe('/metrics', () => {
    it('is the Prometheus text format (version 0.0.4) that promtool accepts, with the process metrics', async () => {
      const res = await fetch(`${url}/metrics`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.equal('text/plain; version=0.0.4; charset=utf-8');
      const text = await res.text();
      const samples = parseExposition(text);
      for (const name of ['kmsgw_requests_total', 'kmsgw_request_duration_seconds_bucket', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds'])
        expect(samples.some((s) => s.name === name), name).to.equal(true);
      // promtool parses the whole exposition (exit 1 on a parse error) and
      // lints it (exit 3 on findings): it must parse, and the gateway's own
      // metrics must lint clean (prom-client's nodejs_active_*_total gauges
      // draw a finding that is not ours to fix).
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      const findings = `${check.stdout}${check.stderr}`;
      expect(check.status, findings).to.be.oneOf([0, 3]);
      expect(findings).to.not.match(/kmsgw_|error while linting|parsing error/);
    });

    it('scrapes and probes need no signature and leave no audit line', async () => {
      const lines = auditLines.length;
      for (const path of ['/metrics', '/healthz', '/readyz']) await fetch(`${url}${path}`);
      expect(auditLines.length).to.equal(lines);
    });

    it('only GET (and HEAD) is served there: POST /metrics is not a KMS call', async () => {
      const res = await rawRequest(`${url}/metrics`, { target: 'TrentService.Encrypt', body: '{}' });
      expect(res.status).to.equal(400);
      expect(res.body?.['__type']).to.equal('UnknownOperationException');
    });
  });
});
