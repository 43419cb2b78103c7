/**
 * The operations files, checked with the real tools (no Docker engine runs
 * here, so images are never built and containers never run):
 * - config/prometheus/: `promtool check config`, `promtool check rules` and
 *   the rule unit tests (`promtool test rules`) pass;
 * - docker-compose.yml: `docker-compose config` accepts it, and the paths it
 *   mounts agree with what Prometheus, Grafana and the gateway config expect;
 * - the Grafana dashboard queries only metrics a live gateway's /metrics has,
 *   and has a panel for every kmsgw_ metric it exports;
 * - the container entrypoint (scripts/docker-entrypoint.sh), run outside
 *   Docker on an empty "volume": it initialises the token with
 *   softhsm/init-token.sh, makes the TLS material the compose config needs,
 *   and becomes the gateway, which the image's health check finds healthy
 *   and which a real Prometheus, run with the stack's own prometheus.yml
 *   (only paths and the target address rewritten), scrapes over https,
 *   verifying the certificate with the CA the entrypoint published.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { expect } from 'chai';
import { ROOT, defaultConfig, startGateway, tableKey, type GatewayProcess } from '../support/gateway.js';
import { exposedMetricTypes, isExposed, metricNamesIn, promQuery, promValue, runTool, scratchDir, startPrometheus, waitFor } from '../support/ops.js';

type Json = Record<string, any>;

const PROM_DIR = join(ROOT, 'config', 'prometheus');
const DASHBOARD = join(ROOT, 'config', 'grafana', 'dashboards', 'kms-hsm-gateway.json');
const COMPOSE_CONFIG = join(ROOT, 'config', 'compose', 'gateway.json');

function readJson(path: string): Json {
  return JSON.parse(readFileSync(path, 'utf8')) as Json;
}

/** Every query of the dashboard: panel targets (rows included) and template variables. */
function dashboardQueries(d: Json): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const visit = (panels: Json[]) => {
    for (const p of panels) {
      for (const t of (p['targets'] ?? []) as Json[]) out.push({ where: `panel "${p['title']}" ${t['refId']}`, expr: String(t['expr']) });
      visit((p['panels'] ?? []) as Json[]);
    }
  };
  visit(d['panels'] as Json[]);
  for (const v of d['templating']['list'] as Json[]) {
    if (v['type'] !== 'query') continue;
    const q = typeof v['query'] === 'string' ? v['query'] : v['query']['query'];
    out.push({ where: `variable $${v['name']}`, expr: String(q) });
  }
  return out;
}

describe('ops config: Prometheus rules, compose file, Grafana dashboard', function () {
  this.timeout(120_000);

  describe('Prometheus files, checked by promtool', () => {
    it('promtool check config accepts prometheus.yml and the rule file it names', () => {
      const r = runTool('promtool', ['check', 'config', join(PROM_DIR, 'prometheus.yml')]);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/SUCCESS: 1 rule files found/);
    });

    it('promtool check rules accepts alerts.yml with its six alerts', () => {
      const r = runTool('promtool', ['check', 'rules', join(PROM_DIR, 'alerts.yml')]);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/SUCCESS: 6 rules found/);
    });

    it('the alert unit tests pass: key unavailable, HSM timeouts, token down, error ratio, latency and gateway down fire when they should and not before', () => {
      const r = runTool('promtool', ['test', 'rules', join(PROM_DIR, 'alerts.test.yml')]);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/SUCCESS/);
      const tested = readFileSync(join(PROM_DIR, 'alerts.test.yml'), 'utf8');
      for (const alert of ['KmsGatewayKeyUnavailable', 'KmsGatewayHsmTimeouts', 'KmsGatewayHsmTokenDown', 'KmsGatewayHighErrorRatio', 'KmsGatewayHighLatency', 'KmsGatewayDown'])
        expect(tested, alert).to.include(`alertname: ${alert}`);
    });

    it('Prometheus scrapes the compose service gateway:8443 over https, verifying it with the CA the entrypoint publishes', () => {
      const yml = readFileSync(join(PROM_DIR, 'prometheus.yml'), 'utf8');
      expect(yml).to.match(/job_name: kms-hsm-gateway/);
      expect(yml).to.match(/scrape_interval: 15s/);
      expect(yml).to.match(/scheme: https/);
      expect(yml).to.match(/ca_file: \/etc\/kmsgw-ca\/ca\.crt/);
      expect(yml).to.include("targets: ['gateway:8443']");
      const gw = readJson(COMPOSE_CONFIG);
      expect(gw['listen']).to.deep.include({ host: '0.0.0.0', port: 8443 });
    });
  });

  describe('docker-compose.yml', () => {
    let normalised = '';

    before(() => {
      const r = runTool('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config'], { cwd: ROOT });
      expect(r.code, r.stderr).to.equal(0);
      normalised = r.stdout;
    });

    it('docker-compose config accepts it: the gateway, the token initialiser, Prometheus and Grafana', () => {
      for (const service of ['gateway', 'hsm-init', 'prometheus', 'grafana']) expect(normalised).to.match(new RegExp(`^  ${service}:$`, 'm'));
      for (const volume of ['kmsgw-data', 'kmsgw-public', 'prometheus-data', 'grafana-data']) expect(normalised).to.match(new RegExp(`^  ${volume}: ?\\{?\\}?$`, 'm'));
      // The token is initialised (once, by the entrypoint's --init-only) before the gateway and Prometheus start.
      expect(normalised).to.include('- --init-only');
      expect(normalised).to.match(/hsm-init:\n\s+condition: service_completed_successfully/);
    });

    it('mounts what the other files expect: the gateway config, the CA for Prometheus, the Grafana provisioning and dashboards', () => {
      expect(normalised).to.include(`${join(ROOT, 'config', 'compose', 'gateway.json')}:/etc/kmsgw/gateway.json:ro`);
      expect(normalised).to.include('kmsgw-data:/var/lib/kmsgw:rw');
      expect(normalised).to.include('kmsgw-public:/var/lib/kmsgw-public:rw');
      expect(normalised).to.include('kmsgw-public:/etc/kmsgw-ca:ro');
      expect(normalised).to.include(`${join(ROOT, 'config', 'prometheus')}:/etc/prometheus:ro`);
      expect(normalised).to.include(`${join(ROOT, 'config', 'grafana', 'provisioning')}:/etc/grafana/provisioning:ro`);
      expect(normalised).to.include(`${join(ROOT, 'config', 'grafana', 'dashboards')}:/etc/grafana/dashboards:ro`);
      const provider = readFileSync(join(ROOT, 'config', 'grafana', 'provisioning', 'dashboards', 'dashboards.yml'), 'utf8');
      expect(provider).to.match(/path: \/etc\/grafana\/dashboards$/m);
      const datasource = readFileSync(join(ROOT, 'config', 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8');
      expect(datasource).to.match(/uid: prometheus$/m);
      expect(datasource).to.match(/url: http:\/\/prometheus:9090$/m);
      // The token label the entrypoint initialises is the one the gateway config opens.
      expect(normalised).to.include(`KMSGW_TOKEN_LABEL: ${readJson(COMPOSE_CONFIG)['hsm']['token']['label']}`);
    });

    it('the Dockerfile runs the same entrypoint and health check scripts as non-root', () => {
      const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
      expect(dockerfile).to.match(/^FROM node:20-bookworm-slim/m);
      expect(dockerfile).to.match(/^ENTRYPOINT \["\/app\/scripts\/docker-entrypoint\.sh"\]$/m);
      expect(dockerfile).to.match(/^HEALTHCHECK [\s\S]*CMD \["node", "\/app\/scripts\/healthcheck\.mjs"\]$/m);
      expect(dockerfile).to.match(/^USER kmsgw$/m);
      expect(dockerfile).to.match(/softhsm2 p11-kit-modules/);
      expect(dockerfile).to.include('COPY softhsm/init-token.sh ./softhsm/');
    });
  });

  describe('the Grafana dashboard', () => {
    const dashboard = readJson(DASHBOARD);
    let gw: GatewayProcess | undefined;

    after(async () => {
      await gw?.stop();
    });

    it('is a provisioned dashboard (uid kms-hsm-gateway, schemaVersion 39) on the provisioned Prometheus datasource', () => {
      expect(dashboard['uid']).to.equal('kms-hsm-gateway');
      expect(dashboard['schemaVersion']).to.equal(39);
      const dsVar = (dashboard['templating']['list'] as Json[]).find((v) => v['type'] === 'datasource');
      expect(dsVar?.['query']).to.equal('prometheus');
      expect(dsVar?.['current']['value']).to.equal('prometheus');
      const panels = (dashboard['panels'] as Json[]).filter((p) => p['type'] !== 'row');
      for (const p of panels) expect(p['datasource'], p['title']).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
      const titles = panels.map((p) => p['title'] as string);
      for (const t of [
        'Request rate by operation',
        'Error rate by outcome',
        'Request latency p50 / p99 by operation',
        'HSM call latency p50 / p99 by mechanism',
        'Key unavailable by key and operation',
        'HSM timeouts by operation',
        'HSM sessions by state',
        'Circuit breaker',
        'HSM token',
        'Resident memory',
        'CPU',
        'Event-loop lag',
      ])
        expect(titles).to.include(t);
    });

    it('the metric-name reader finds the metrics of a query, and not its functions, labels, keywords or variables', () => {
      expect(
        metricNamesIn(
          'histogram_quantile(0.99, sum by (operation, le) (rate(kmsgw_request_duration_seconds_bucket{job="$job", outcome=~"a|b"}[$__rate_interval]))) / on(job) group_left(instance) max without (x) (up offset 5m) > 1e-3',
        ),
      ).to.deep.equal(['kmsgw_request_duration_seconds_bucket', 'up']);
      expect(metricNamesIn('label_values(kmsgw_hsm_token_up{job="$job"}, instance)')).to.deep.equal(['kmsgw_hsm_token_up']);
      expect(metricNamesIn('(max by (job, instance) (kmsgw_hsm_token_up) == 0) or (max by (job, instance) (kmsgw_hsm_circuit_open) == 1)')).to.deep.equal([
        'kmsgw_hsm_circuit_open',
        'kmsgw_hsm_token_up',
      ]);
      const types = new Map([['h', 'histogram'], ['c_total', 'counter']]);
      expect(['h_bucket', 'h_sum', 'h_count', 'c_total'].every((n) => isExposed(n, types))).to.equal(true);
      expect(['c_total_count', 'h_total', 'nope'].some((n) => isExposed(n, types))).to.equal(false);
    });

    it("every query uses only metric names a live gateway's /metrics exports, and every kmsgw_ metric has a panel", async () => {
      gw = await startGateway({ config: { ...defaultConfig(), keys: [tableKey('6f1d2c3b-0a9e-4c8d-9b7a-1e2f3a4b5c01', 'ops-dashboard-aes')] } });
      const res = await fetch(`${gw.url}/metrics`);
      expect(res.status, 'GET /metrics').to.equal(200);
      const types = exposedMetricTypes(await res.text());
      expect(types.size).to.be.greaterThan(10);

      const queries = dashboardQueries(dashboard);
      expect(queries.length).to.be.greaterThan(20);
      const used = new Set<string>();
      const missing: string[] = [];
      for (const q of queries) {
        const names = metricNamesIn(q.expr);
        expect(names, `${q.where}: no metric in ${q.expr}`).to.not.be.empty;
        for (const name of names) {
          used.add(types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, ''));
          // `up` is Prometheus' own, per scrape target.
          if (name !== 'up' && !isExposed(name, types)) missing.push(`${q.where}: ${name}`);
        }
      }
      expect(missing, 'metrics the dashboard queries but /metrics does not export').to.deep.equal([]);
      const kmsgw = [...types.keys()].filter((n) => n.startsWith('kmsgw_'));
      expect(kmsgw.filter((n) => !used.has(n)), 'kmsgw_ metrics without a panel').to.deep.equal([]);
      for (const n of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds']) expect(used, n).to.include(n);
    });
  });

  describe('the container entrypoint, run outside Docker', () => {
    // Two "volumes" as in docker-compose.yml: the token volume and the public one (CA certificate).
    let volume = '';
    let dataDir = '';
    let publicDir = '';
    let env: Record<string, string> = {};
    let child: ChildProcess | undefined;
    let output = '';
    let port = 0;

    before(() => {
      volume = scratchDir('entrypoint');
      dataDir = join(volume, 'kmsgw');
      publicDir = join(volume, 'kmsgw-public');
      env = {
        PATH: process.env['PATH'] ?? '',
        KMSGW_DATA_DIR: dataDir,
        KMSGW_CONFIG: COMPOSE_CONFIG,
        KMSGW_TOKEN_LABEL: 'kmsgw-compose',
        KMSGW_PUBLIC_DIR: publicDir,
        KMSGW_TLS_SELF_SIGNED_SANS: 'DNS:gateway,DNS:localhost,IP:127.0.0.1',
        // The compose config's port is 8443; any free one here.
        KMSGW_PORT: '0',
      };
    });

    after(async () => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((done) => child?.once('exit', done));
        child.kill('SIGTERM');
        await exited;
      }
    });

    function healthcheck(url: string, ca?: string) {
      return runTool(process.execPath, [join(ROOT, 'scripts', 'healthcheck.mjs')], {
        env: { PATH: env['PATH'] ?? '', KMSGW_HEALTHCHECK_URL: url, ...(ca === undefined ? {} : { KMSGW_HEALTHCHECK_CA: ca }) },
        timeoutMs: 10_000,
      });
    }

    it('on an empty volume it initialises the token with softhsm/init-token.sh, makes TLS material and execs a gateway that answers /healthz and /metrics over TLS', async () => {
      expect(existsSync(dataDir)).to.equal(false);
      child = spawn(join(ROOT, 'scripts', 'docker-entrypoint.sh'), [], { cwd: volume, env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
      port = await waitFor(
        'the gateway to listen',
        async () => {
          if (child?.exitCode !== null) throw new Error(`entrypoint exited ${child?.exitCode}:\n${output}`);
          const m = /"port":(\d+)[^\n]*kms-hsm-gateway listening/.exec(output);
          return m === null ? undefined : Number(m[1]);
        },
        60_000,
        100,
      );
      expect(output).to.match(/init-token: created directory, .*initialised token 'kmsgw-compose'/);
      expect(output).to.include('made a self-signed CA and a server certificate');
      // exec: the process the "container" started is now the gateway itself (PID 1 in Docker).
      expect(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0')).to.include('dist/src/main.js');

      // The volume: token store, private PIN, credentials and server key; the CA key is gone; the CA certificate is public.
      expect(readdirSync(join(dataDir, 'tokens'))).to.have.length(1);
      for (const f of ['pin', 'so-pin', 'credentials.json', 'tls/gateway.key']) expect(statSync(join(dataDir, f)).mode & 0o077, f).to.equal(0);
      expect(existsSync(join(dataDir, 'tls', 'ca.key'))).to.equal(false);
      expect(statSync(join(publicDir, 'ca.crt')).mode & 0o777).to.equal(0o644);

      // What Prometheus does in the stack: https with the published CA (the certificate names IP:127.0.0.1 too).
      const ca = readFileSync(join(publicDir, 'ca.crt'));
      const get = (path: string) =>
        new Promise<{ status: number; body: string }>((done, fail) => {
          const req = httpsRequest({ host: '127.0.0.1', port, path, ca }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => done({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', fail);
          req.end();
        });
      const health = await get('/healthz');
      expect(health.status).to.equal(200);
      const metrics = await get('/metrics');
      expect(metrics.status).to.equal(200);
      expect(metrics.body).to.match(/^# TYPE kmsgw_hsm_token_up gauge$/m);

      // The image's HEALTHCHECK command against it.
      const ok = healthcheck(`https://127.0.0.1:${port}/healthz`, join(publicDir, 'ca.crt'));
      expect(ok.code, ok.stderr).to.equal(0);
      // Without the CA it does not trust the self-signed chain.
      const untrusted = healthcheck(`https://127.0.0.1:${port}/healthz`);
      expect(untrusted.code).to.equal(1);
      expect(untrusted.stderr).to.match(/certificate/);
    });

    it("Prometheus, with the stack's own prometheus.yml, scrapes that gateway over https and verifies it, by the name gateway, with the published CA", async () => {
      expect(port, 'the previous test started the gateway').to.be.greaterThan(0);
      // Only what differs outside compose is rewritten: where the CA is
      // mounted, where the service is reachable (127.0.0.1 instead of the
      // name `gateway`, which is still the name verified), and the interval.
      const original = readFileSync(join(PROM_DIR, 'prometheus.yml'), 'utf8');
      const rewritten = [
        ['ca_file: /etc/kmsgw-ca/ca.crt', `ca_file: ${join(publicDir, 'ca.crt')}\n      server_name: gateway`],
        ["targets: ['gateway:8443']", `targets: ['127.0.0.1:${port}']`],
        ['  - alerts.yml', `  - ${join(PROM_DIR, 'alerts.yml')}`],
        ['scrape_interval: 15s\n    scrape_timeout: 10s', 'scrape_interval: 1s\n    scrape_timeout: 1s'],
      ].reduce((text, [from, to]) => {
        expect(text, `prometheus.yml has ${from}`).to.include(from);
        return text.replace(from as string, to as string);
      }, original);
      const prom = await startPrometheus(rewritten);
      try {
        const up = await waitFor('a scrape of the TLS gateway', async () => {
          const r = await promQuery(prom, 'up{job="kms-hsm-gateway"}');
          return r.length === 1 ? r[0] : undefined;
        });
        const targets = (await (await fetch(`${prom.url}/api/v1/targets`)).json()) as Json;
        const target = (targets['data']['activeTargets'] as Json[])[0];
        expect(up?.value, `scrape error: ${target?.['lastError']}`).to.equal(1);
        expect(target?.['scrapeUrl']).to.equal(`https://127.0.0.1:${port}/metrics`);
        expect(await promValue(prom, 'kmsgw_hsm_token_up{job="kms-hsm-gateway"}')).to.equal(1);
      } finally {
        await prom.stop();
      }
    });

    it('with KMSGW_TOKEN_LABEL empty (a real HSM instead of SoftHSM2) it makes no token, only the credentials and the TLS material', () => {
      const other = join(volume, 'real-hsm');
      const r = runTool(join(ROOT, 'scripts', 'docker-entrypoint.sh'), ['--init-only'], {
        env: { ...env, KMSGW_TOKEN_LABEL: '', KMSGW_DATA_DIR: other, KMSGW_PUBLIC_DIR: join(volume, 'real-hsm-public') },
      });
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.include('no SoftHSM2 token to initialise');
      expect(readdirSync(other).sort()).to.deep.equal(['credentials.json', 'tls']);
      expect(statSync(other).mode & 0o777).to.equal(0o700);
    });

    it('the image health check fails when nothing answers', () => {
      const r = healthcheck('http://127.0.0.1:1/healthz');
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/ECONNREFUSED/);
    });

    it('stops on SIGTERM with exit 0, and run again on the same volume (--init-only) keeps the token, the PIN and the certificate', async () => {
      expect(child, 'the previous test started the entrypoint').to.not.equal(undefined);
      const exited = new Promise<number | null>((done) => child?.once('exit', (code) => done(code)));
      child?.kill('SIGTERM');
      expect(await exited, output).to.equal(0);

      const before = ['pin', 'tls/gateway.crt', 'tls/gateway.key'].map((f) => readFileSync(join(dataDir, f), 'utf8'));
      const r = runTool(join(ROOT, 'scripts', 'docker-entrypoint.sh'), ['--init-only'], { env });
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/token 'kmsgw-compose' already initialised .*; nothing to do/);
      expect(r.stdout).to.include('TLS certificate present');
      expect(r.stdout).to.include('--init-only: not starting the gateway');
      const after = ['pin', 'tls/gateway.crt', 'tls/gateway.key'].map((f) => readFileSync(join(dataDir, f), 'utf8'));
      expect(after).to.deep.equal(before);
    });
  });
});
