/**
 * The benchmark's pure pieces (bench/): what it reads from wrk, the RSS
 * statistics, the target verdicts and the report. No timing is asserted:
 * speed is what `make bench` measures, never what a test checks.
 */
import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { cpuMicrosPerRequest, renderMarkdown, renderSvg, targetBudgets, verdicts, type BenchResult, type LoadRun, type ReferenceMode } from '../../bench/report.js';
import { median, parseWrkOutput, slopeMbPerMin, slopeStandardErrorMbPerMin, summarizeRss, WRK_RESULT_MARKER } from '../../bench/stats.js';
import { wrkScript, type WireRequest } from '../../bench/wrk.js';

const WRK_LINE = `${WRK_RESULT_MARKER}{"requests":24000,"duration_us":8000000,"mean_us":2100.5,"p50_us":1800,"p90_us":3200,"p99_us":9500,"max_us":41000,"status":3,"connect":0,"read":1,"write":0,"timeout":2}`;

function run(workload: string, connections: number, rps: number, p99 = 5): LoadRun {
  return {
    workload,
    connections,
    keys: 5,
    requests: rps * 8,
    seconds: 8,
    rps,
    latencyMs: { mean: 2, p50: 2, p90: 3, p99, max: 20 },
    non2xx: 0,
    socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
    gatewayCpuPercent: 190,
    wrkCpuPercent: 40,
    processes: [{ pid: 10, role: 'primary', peakMb: 80 }],
  };
}

function result(over: { encryptRps?: number; p99?: number; rsaRps?: number; afterRps?: number; soakSlope?: number; peakMb?: number } = {}): BenchResult {
  const token = {
    aesOneProcess: { ops: 160_000, seconds: 8, rate: 20_000 },
    aesProcesses: { processes: 2, rate: 36_000, perProcess: [] },
    aesGuarded: { ops: 80_000, seconds: 8, rate: 10_000, inFlight: 32 },
    rsaDecryptOneProcess: { ops: 13_600, seconds: 8, rate: 1_700 },
  };
  const runs = [run('Encrypt 4 KB', 32, over.encryptRps ?? 13_000, over.p99), run('Decrypt RSA-2048', 32, over.rsaRps ?? 3_000)];
  const before = runs[0] as LoadRun;
  const after = { ...run('Encrypt 4 KB', 32, over.afterRps ?? 12_500), keys: 1000 };
  const soakRun = run('Mix', 32, 9_000);
  const base = {
    startedAt: '2026-01-01T12:00:00.000Z',
    finishedAt: '2026-01-01T12:05:30.000Z',
    settings: { seconds: 8, warmUpSeconds: 5, soakSeconds: 60, keys: 1000, connections: [32, 64], quick: false, mix: 'all of it' },
    machine: { cores: 2, cpuModel: 'Test CPU', node: 'v20', softhsm: '2.6.1', wrk: 'wrk 4.1', commit: 'abc', kmsgwWorkers: 2 },
    token,
    runs,
    keyScaling: { keysBefore: 5, keysAfter: 1000, createSeconds: 30, createFailures: 0, before, after, ratio: after.rps / before.rps },
    memory: {
      underLoad: [{ pid: 10, role: 'primary' as const, peakMb: over.peakMb ?? 90 }],
      soak: {
        run: { ...soakRun, seconds: 60 },
        processes: [{ pid: 10, role: 'primary' as const, peakMb: 85, first10sMb: 80, last10sMb: 81, slopeMbPerMin: over.soakSlope ?? 0.5, slopeSeMbPerMin: 0.3, samples: [] }],
      },
    },
    files: { json: 'results/bench-x.json', markdown: 'results/bench-x.md', svg: 'results/bench-x.svg' },
  };
  return { ...base, targets: verdicts(base) };
}

describe('the benchmark (bench/)', () => {
  describe('reading wrk', () => {
    it('takes req/s, latency percentiles in ms and the error counts from the line the Lua done() prints', () => {
      const r = parseWrkOutput(`Running 8s test @ http://127.0.0.1:1/\n  2 threads and 32 connections\n${WRK_LINE}\n`);
      expect(r.rps).to.equal(3000);
      expect(r.latencyMs).to.deep.equal({ mean: 2.1005, p50: 1.8, p90: 3.2, p99: 9.5, max: 41 });
      expect(r.non2xx).to.equal(3);
      expect(r.socketErrors).to.deep.equal({ connect: 0, read: 1, write: 0, timeout: 2 });
    });

    it('fails loudly when wrk printed no result line (a script error, a crash)', () => {
      expect(() => parseWrkOutput('PANIC: unprotected error in call to Lua API\n')).to.throw(/no result line/);
    });
  });

  describe('the RSS series of a soak', () => {
    it('gives the trend in MB per minute by least squares, whatever the noise around it', () => {
      const growing = Array.from({ length: 61 }, (_, t) => ({ t, mb: 100 + t / 10 + (t % 2 === 0 ? 3 : -3) }));
      expect(slopeMbPerMin(growing)).to.be.closeTo(6, 0.2);
      expect(slopeMbPerMin(Array.from({ length: 61 }, (_, t) => ({ t, mb: 100 })))).to.equal(0);
      expect(slopeMbPerMin([{ t: 0, mb: 1 }])).to.equal(0);
    });

    it('gives the standard error of that slope: 0 on a straight line, larger the more the samples scatter about it', () => {
      const line = Array.from({ length: 61 }, (_, t) => ({ t, mb: 100 + t / 10 }));
      expect(slopeStandardErrorMbPerMin(line)).to.be.closeTo(0, 1e-9);
      const scatter = (amplitude: number) => Array.from({ length: 61 }, (_, t) => ({ t, mb: 100 + t / 10 + (t % 2 === 0 ? amplitude : -amplitude) }));
      // Residuals of +-3 MB about the line over 61 one-second samples: sqrt(9 * 61 / 59 / sum((t - 30)^2)) * 60 = 1.33 MB/min.
      expect(slopeStandardErrorMbPerMin(scatter(3))).to.be.closeTo(1.33, 0.02);
      expect(slopeStandardErrorMbPerMin(scatter(6))).to.be.closeTo(2.66, 0.04);
      expect(slopeStandardErrorMbPerMin([{ t: 0, mb: 1 }, { t: 1, mb: 2 }])).to.be.NaN;
      expect(summarizeRss(scatter(3)).slopeSeMbPerMin).to.be.closeTo(1.33, 0.02);
    });

    it('takes the median of an odd and of an even count, and of none', () => {
      expect(median([3, 1, 2])).to.equal(2);
      expect(median([4, 1, 3, 2])).to.equal(2.5);
      expect(median([])).to.be.NaN;
    });

    it('reports the peak and the means of the first and the last 10 seconds', () => {
      const samples = Array.from({ length: 60 }, (_, t) => ({ t, mb: t < 10 ? 50 : t >= 50 ? 70 : 60 }));
      samples[30] = { t: 30, mb: 99 };
      expect(summarizeRss(samples)).to.include({ peakMb: 99, first10sMb: 50 });
      expect(summarizeRss(samples).last10sMb).to.equal(70);
    });
  });

  describe('the targets of issue 5', () => {
    it('passes a gateway at 0.65 of the token one-process limit with p99 5 ms, RSA at 1.76x, keys 0.96, 90 MB and flat', () => {
      expect(result().targets.map((t) => t.pass)).to.deep.equal([true, true, true, true]);
    });

    it('fails each target on its own threshold', () => {
      expect(result({ encryptRps: 11_000 }).targets[0]?.pass, '0.55 x').to.equal(false);
      expect(result({ p99: 10 }).targets[0]?.pass, 'p99 10 ms').to.equal(false);
      expect(result({ rsaRps: 2_700 }).targets[1]?.pass, '1.59 x').to.equal(false);
      expect(result({ afterRps: 11_000 }).targets[2]?.pass, '0.85').to.equal(false);
      expect(result({ peakMb: 200 }).targets[3]?.pass, '200 MB').to.equal(false);
      expect(result({ soakSlope: 2.5 }).targets[3]?.pass, 'growing').to.equal(false);
    });

    it('judges the key count by the median of the alternating pairs when the run has them, not by the two runs minutes apart', () => {
      const r = result({ afterRps: 9_000 });
      const pair = (first: 'few' | 'many', few: number, many: number) => ({ first, few: run('Encrypt 4 KB', 32, few), many: { ...run('Encrypt 4 KB', 32, many), keys: 1000 } });
      const pairs = [pair('few', 10_000, 9_800), pair('many', 8_000, 6_400), pair('few', 11_000, 10_450)];
      const keyScaling = { ...r.keyScaling, pairs, ratio: 0.95 };
      const judged = verdicts({ ...r, keyScaling });
      expect(judged[2]?.pass).to.equal(true);
      expect(judged[2]?.measured).to.equal('median of 3 alternating pairs 0.95 (0.98, 0.80, 0.95)');
      const md = renderMarkdown({ ...r, keyScaling, targets: judged });
      expect(md).to.contain('| 2 | 1000 keys | 8,000 | 5.0 | 6,400 | 5.0 | 0.80 |');
      expect(md).to.contain('Ratio 1000 keys / 5 keys: 0.95, the median of the pairs (the two runs above alone: 0.69).');
      expect(md).not.to.contain('The token alone');
    });

    it('prints a ratio that misses its target by less than 0.005 to 3 decimals, so it never reads as the target beside FAIL', () => {
      const r = result({ afterRps: 9_000 });
      const pair = (few: number, many: number) => ({ first: 'few' as const, few: run('Encrypt 4 KB', 32, few), many: { ...run('Encrypt 4 KB', 32, many), keys: 1000 } });
      const miss = verdicts({ ...r, keyScaling: { ...r.keyScaling, pairs: [pair(10_000, 8_960)], ratio: 0.896 } })[2];
      expect(miss?.pass).to.equal(false);
      expect(miss?.measured).to.equal('median of 1 alternating pairs 0.896 (0.90)');
      const hit = verdicts({ ...r, keyScaling: { ...r.keyScaling, pairs: [pair(10_000, 9_000)], ratio: 0.9 } })[2];
      expect(hit?.pass).to.equal(true);
      expect(hit?.measured).to.equal('median of 1 alternating pairs 0.90 (0.90)');
      const rsa = verdicts(result({ rsaRps: 1.598 * r.token.rsaDecryptOneProcess.rate }))[1];
      expect(rsa?.pass).to.equal(false);
      expect(rsa?.measured).to.contain('= 1.598 x token one-process rate');
    });

    it('sets the token alone on the same two tokens next to the verdict, without changing it', () => {
      const r = result({ afterRps: 9_000 });
      const pair = (first: 'few' | 'many', few: number, many: number) => ({ first, few: run('Encrypt 4 KB', 32, few), many: { ...run('Encrypt 4 KB', 32, many), keys: 1000 } });
      const rate = (r: number) => ({ ops: r * 8, seconds: 8, rate: r });
      const tokenPairs = [
        { first: 'few' as const, few: rate(47_000), many: rate(41_500) },
        { first: 'many' as const, few: rate(46_000), many: rate(40_000) },
        { first: 'few' as const, few: rate(48_000), many: rate(43_000) },
      ];
      const keyScaling = { ...r.keyScaling, pairs: [pair('few', 10_000, 8_800)], ratio: 0.88, tokenPairs, tokenRatio: 0.88 };
      const judged = verdicts({ ...r, keyScaling });
      expect(judged[2]?.pass).to.equal(false);
      expect(judged[2]?.measured).to.equal('median of 1 alternating pairs 0.88 (0.88); the token alone 0.88');
      const md = renderMarkdown({ ...r, keyScaling, targets: judged });
      expect(md).to.contain('41,500 / 47,000 = 0.88; 40,000 / 46,000 = 0.87; 43,000 / 48,000 = 0.90; median 0.88: how much the token itself slows down');
    });

    it('says when the token limits were read twice, and that the ratios use the higher reading', () => {
      const r = result();
      expect(renderMarkdown(r)).not.to.contain('were read twice');
      const readings = { start: { aesOneProcess: 10_876, aesProcesses: 24_121, rsaDecryptOneProcess: 1_129 }, end: { aesOneProcess: 20_000, aesProcesses: 36_000, rsaDecryptOneProcess: 1_700 } };
      const md = renderMarkdown({ ...r, token: { ...r.token, readings } });
      expect(md).to.contain('(AES one-process 10,876 then 20,000/s, 2-process 24,121 then 36,000/s, RSA-2048 decrypt 1,129 then 1,700/s); the table and every ratio use the higher reading.');
    });

    it('renders the table and a PASS/FAIL list with measured value and target', () => {
      const md = renderMarkdown(result({ encryptRps: 1_000 }));
      expect(md).to.contain('| Encrypt 4 KB | 32 | 1,000 |');
      expect(md).to.contain('- **FAIL** Encrypt 4 KB SYMMETRIC_DEFAULT, 32 connections, SigV4 checked: 1,000 req/s = 0.05 x token one-process limit (20,000/s); p99 5.0 ms (target >= 0.6 x, p99 < 10 ms)');
      expect(md).to.contain('- **PASS** Decrypt RSA-2048');
      expect(md).to.contain('![req/s per workload](bench-x.svg)');
      expect(renderSvg(result())).to.match(/^<svg [^]*<\/svg>\n$/);
    });

    it('sets the gateway against the bare reference servers measured in the same run, with the CPU each step adds per request', () => {
      const r = result({ encryptRps: 4_000 });
      expect(renderMarkdown(r)).not.to.contain('## Reference servers');
      const ref = (mode: ReferenceMode, rps: number) => ({ ...run('x', 32, rps), mode, cpuPercent: 192, wrkCpuPercent: 30 });
      const md = renderMarkdown({ ...r, references: [ref('software', 16_000), ref('hsm-inline', 12_000), ref('hsm-layer', 8_000)] });
      expect(md).to.contain('## Reference servers (bare node:http, 2 processes, the same Encrypt 4 KB load at 32 connections)');
      // req/s, CPU per request (192% of a core over req/s), x token one-process limit (20,000/s), gateway Encrypt 4 KB (4,000 req/s) over this.
      expect(md).to.match(/\| AES-256-GCM in node:crypto [^|]* \| 16,000 \|[^\n]*\| 192 \| 120 \| 30 \| 0\.80 \| 0\.25 \|/);
      expect(md).to.match(/\| the token called synchronously on the event loop [^|]* \| 12,000 \|[^\n]*\| 160 \| 30 \| 0\.60 \| 0\.33 \|/);
      expect(md).to.match(/\| the gateway's HSM layer [^|]* \| 8,000 \|[^\n]*\| 240 \| 30 \| 0\.40 \| 0\.50 \|/);
      // The gateway's own row, for the same column.
      const enc = r.runs.find((x) => x.workload === 'Encrypt 4 KB' && x.connections === 32);
      const gatewayMicros = Math.round(((enc?.gatewayCpuPercent ?? 0) / 100) * 1e6 / 4_000).toLocaleString('en-US');
      expect(md).to.match(new RegExp(`\\| the gateway \\(Encrypt 4 KB above\\) \\| 4,000 \\|[^\\n]*\\| ${gatewayMicros} \\|[^\\n]*\\| 0\\.20 \\| +\\|$`, 'm'));
    });

    it('says what each throughput target leaves per request beside wrk and the token, next to what the gateway and the bare servers spent', () => {
      const ref = (mode: ReferenceMode, rps: number) => ({ ...run('x', 32, rps), mode, cpuPercent: 192, wrkCpuPercent: 30 });
      const r = { ...result(), references: [ref('software', 16_000), ref('hsm-layer', 8_000)] };
      // Encrypt 4 KB: 0.6 x 20,000/s = 12,000 req/s on 2 cores leaves 166.7 us a request; wrk took 40% of a core at
      // 13,000 req/s (30.8 us), the token 50 us an operation (20,000/s), so 85.9 us are left for everything else.
      const [enc, rsa] = targetBudgets(r);
      expect(enc?.targetRps).to.equal(12_000);
      expect(enc?.machineMicros).to.be.closeTo(166.7, 0.1);
      expect(enc?.wrkMicros).to.be.closeTo(30.8, 0.1);
      expect(enc?.tokenMicros).to.equal(50);
      expect(enc?.besideTokenMicros).to.be.closeTo(85.9, 0.1);
      expect(enc?.gatewayBesideTokenMicros).to.be.closeTo(146.2 - 50, 0.1);
      expect(enc?.bareHttpMicros).to.equal(120);
      expect(enc?.bareLanesBesideTokenMicros).to.equal(240 - 50);
      // RSA-2048 Decrypt: 1.6 x 1,700/s = 2,720 req/s leaves 735.3 us; wrk 133.3 us at 3,000 req/s; the token 588.2 us.
      expect(rsa?.targetRps).to.equal(2_720);
      expect(rsa?.besideTokenMicros).to.be.closeTo(735.3 - 133.3 - 588.2, 0.1);
      expect(rsa?.bareLanesBesideTokenMicros, 'the references serve Encrypt 4 KB only').to.equal(undefined);
      // Where the run read the session-copy rate (the gateway's default), the token's share is the cheaper copy's.
      const copies = targetBudgets({ ...r, token: { ...r.token, aesCopyOneProcess: { ops: 320_000, seconds: 8, rate: 40_000 } } });
      expect(copies[0]?.tokenMicros).to.equal(25);
      expect(copies[0]?.targetRps, 'the target still reads the key-object limit').to.equal(12_000);
      const md = renderMarkdown(r);
      expect(md).to.contain('## What the throughput targets leave per request');
      expect(md).to.match(/\| Encrypt 4 KB \| 12,000 \| 167 \| 31 \| 50 \([^)]*\) \| 86 \| 96 \| 120 \| 190 \|/);
      expect(md).to.match(/\| Decrypt RSA-2048 \| 2,720 \| 735 \| 133 \| 588 \([^)]*\) \| 14 \| 45 \| 120 \| n\/a \|/);
      // Without a gateway run of the workload there is nothing to set beside, and no row.
      expect(targetBudgets({ ...r, runs: [] })).to.deep.equal([]);
    });

    it('counts CPU per request over the whole server, and none when nothing was answered', () => {
      expect(cpuMicrosPerRequest(190, 10_000)).to.equal(190);
      expect(cpuMicrosPerRequest(190, 0)).to.be.NaN;
    });
  });

  describe('the wrk script', () => {
    const wrkMissing = spawnSync('wrk', ['-v']).error !== undefined;

    it('replays the pre-signed requests byte for byte, a mix in its documented order', async function () {
      if (wrkMissing) this.skip(); // `make bench-deps` installs it
      const seen: { headers: IncomingHttpHeaders; body: string }[] = [];
      const server = createServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          seen.push({ headers: req.headers, body });
          res.writeHead(seen.length % 10 === 0 ? 400 : 200).end('{}');
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const req = (target: string, body: string): WireRequest => ({
        method: 'POST',
        path: '/',
        headers: { Host: host, 'x-amz-target': target, authorization: 'AWS4-HMAC-SHA256 Credential=a/b, Signature="x\\y"' },
        body,
      });
      const script = join(mkdtempSync(join(tmpdir(), 'bench-test-')), 'mix.lua');
      writeFileSync(script, wrkScript([req('A', '{"a":"\\"quoted\\""}'), req('B', '{}')], [0, 0, 1]));
      try {
        // One thread, one connection: the order per thread is the order on the wire.
        const child = spawn('wrk', ['-t1', '-c1', '-d1s', '-s', script, `http://${host}/`]);
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        await new Promise((r) => child.once('close', r));
        const r = parseWrkOutput(out);
        expect(r.requests).to.be.greaterThan(3);
        // wrk calls request() once before the run to check it, so the cycle starts one step in.
        const targets = seen.slice(0, 9).map((s) => s.headers['x-amz-target']);
        expect(targets.filter((t) => t === 'A')).to.have.length(6);
        expect(targets.slice(0, 6)).to.deep.equal(targets.slice(3, 9));
        expect(seen[0]?.body).to.equal('{"a":"\\"quoted\\""}');
        expect(seen[0]?.headers['authorization']).to.equal('AWS4-HMAC-SHA256 Credential=a/b, Signature="x\\y"');
        expect(seen[0]?.headers['host']).to.equal(host);
        // Every 10th answer is a 400: wrk counts it as an HTTP error.
        expect(r.non2xx).to.equal(Math.floor(r.requests / 10));
      } finally {
        server.closeAllConnections();
        server.close();
      }
    });
  });
});
