/**
 * Wires a gateway from a validated config: the token, the key store, the
 * express app and an HTTP listener. main.ts calls it for real; tests call it
 * to start a gateway in-process on port 0.
 */
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFileSync, statSync } from 'node:fs';
import { openAuditSink } from './api/audit.js';
import { answerClientErrors } from './api/client-errors.js';
import { createApp } from './app.js';
import { CredentialStore } from './auth/credentials.js';
import { SigV4Authenticator } from './auth/sigv4.js';
import { PolicyAuthorizer } from './auth/policy.js';
import { ConfigError, listenUrl, readPin, type Config } from './config/config.js';
import type { GuardedHsm } from './hsm/guarded-hsm.js';
import { openPkcs11Hsm } from './hsm/pkcs11/open.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { KeyStore, type Clock } from './keys/key-store.js';
import { startKeyLoader, type KeyLoader } from './keys/key-loader.js';
import { readinessCheck } from './api/health.js';
import type { Logger } from './log.js';
import type { ClusterChannel } from './cluster/worker-channel.js';
import { AggregatorRegistry } from 'prom-client';

export interface RunningGateway {
  server: Server;
  /** Where it listens; in a cluster worker, the config's address (the primary listens, and may have picked the port). */
  url: string;
  port: number;
  /** In a cluster worker: serves a client connection the primary handed over (not read from yet). */
  accept(socket: Socket): void;
  hsm: GuardedHsm;
  keys: KeyStore;
  metrics: Metrics;
  close(): Promise<void>;
}

export interface GatewayOptions {
  env?: NodeJS.ProcessEnv;
  /** Only tests shorten days (see main.ts). */
  clock?: Clock;
  /** Set in a cluster worker (src/cluster/): audit, metrics and key state changes go through the primary. */
  cluster?: ClusterChannel;
}

type TlsConfig = NonNullable<Config['listen']['tls']>;

/** Reads one file named by `listen.tls.<field>`; failures name the field. */
function readTlsFile(field: keyof TlsConfig, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(`listen.tls.${field}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/**
 * The TLS material, read before the token is opened. The private key file
 * is refused when group or others may read it, as the PIN file is.
 */
function readTls(tls: TlsConfig): { cert: Buffer; key: Buffer; ca?: Buffer } {
  let mode: number;
  try {
    mode = statSync(tls.keyFile).mode;
  } catch (e) {
    throw new ConfigError(`listen.tls.keyFile: cannot read ${tls.keyFile} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  if ((mode & 0o077) !== 0)
    throw new ConfigError(`listen.tls.keyFile: ${tls.keyFile} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  const out: { cert: Buffer; key: Buffer; ca?: Buffer } = { cert: readTlsFile('certFile', tls.certFile), key: readTlsFile('keyFile', tls.keyFile) };
  if (tls.clientCaFile !== undefined) out.ca = readTlsFile('clientCaFile', tls.clientCaFile);
  return out;
}

export async function startGateway(config: Config, log: Logger, opts: GatewayOptions = {}): Promise<RunningGateway> {
  const env = opts.env ?? process.env;
  // Files first: a bad TLS or audit path stops start-up before the token is touched.
  const tls = config.listen.tls === undefined ? undefined : readTls(config.listen.tls);
  // The credentials file too (refused when group or others may read it); followed once listening.
  const credentials = CredentialStore.load(config.auth.credentialsFile, log);
  const channel = opts.cluster;
  // Each cluster worker writes its own audit lines: O_APPEND writes of whole lines to a file, or whole-line writes of at most PIPE_BUF to stdout.
  const audit = openAuditSink(config.audit.file, log);
  const metrics = createMetrics();
  // The primary aggregates this worker's registry for /metrics: constructing
  // an AggregatorRegistry is what makes prom-client answer the primary's requests.
  if (channel !== undefined) {
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([metrics.registry]);
  }
  let hsm: GuardedHsm;
  try {
    // Never fails for an unreachable token: the gateway starts and becomes ready when the token appears.
    hsm = await openPkcs11Hsm(config.hsm, readPin(config.hsm.pin, env), log, metrics);
  } catch (e) {
    await audit.close();
    throw e;
  }
  let loader: KeyLoader | undefined;
  try {
    const keys = new KeyStore(config, hsm, {
      clock: opts.clock,
      refreshMs: config.state.refreshMs,
      fullRefreshMs: config.state.fullRefreshMs,
      log,
      onCommitted: channel === undefined ? undefined : (changes) => channel.publishStateChange(changes),
      // In a cluster only the worker the primary picks runs deletions and automatic rotations.
      backgroundWork: channel === undefined,
    });
    channel?.onRefresh((changes) => keys.applyChanges(changes));
    channel?.onLeader(() => keys.setBackgroundWork(true));
    // One attempt now (a healthy token serves from the first request on); when
    // the token is unreachable the gateway listens anyway, every KMS request
    // answers KeyUnavailableException and the load (with the seeding of the
    // config's keys) is retried in the background until it succeeds; then the
    // KeyStore's refresh starts.
    loader = await startKeyLoader({ keys, config, log, retryMs: config.hsm.probeIntervalMs, gauge: metrics.keyStateLoaded });
    const keyLoader = loader;
    const authenticator = new SigV4Authenticator({ region: config.region, credentials });
    const authorizer = new PolicyAuthorizer(config.policies, config.accountId);
    const ready = readinessCheck(keys, hsm);
    const app = createApp({
      keys,
      hsm,
      log,
      auth: { authenticator, authorizer },
      audit,
      metrics,
      ready,
      ...(channel === undefined ? {} : { metricsText: () => channel.metrics() }),
    });
    // Slow clients do not hold sockets forever: a request (headers and body)
    // must arrive within requestTimeoutMs, its headers within 10 s of it, a
    // TLS handshake too; the deadlines are checked every second (Node's
    // default check runs only every 30 s).
    const requestTimeout = config.listen.requestTimeoutMs;
    const headersTimeout = Math.min(10_000, requestTimeout);
    // requireHostHeader off: a request without Host gets the app's KMS error
    // (its signature cannot verify) rather than Node's bare 400.
    const timeouts = { requestTimeout, headersTimeout, connectionsCheckingInterval: Math.min(1_000, requestTimeout), requireHostHeader: false };
    const server: Server =
      tls === undefined
        ? createServer(timeouts, app)
        : createTlsServer(
            {
              ...timeouts,
              cert: tls.cert,
              key: tls.key,
              minVersion: 'TLSv1.2',
              handshakeTimeout: headersTimeout,
              // With a client CA, a client without a certificate that chains to it is refused in the handshake.
              ...(tls.ca === undefined ? {} : { ca: tls.ca, requestCert: true, rejectUnauthorized: true }),
            },
            app,
          );
    // While stopping, answers in flight close their connection behind them.
    let closing = false;
    server.on('request', (req, res) => {
      res.once('finish', () => {
        if (closing) req.socket.end();
      });
    });
    server.keepAliveTimeout = 65_000;
    answerClientErrors(server);
    // Connections the cluster primary handed over (cluster/connections.ts),
    // until they close: a server that never listened does not wait for them
    // when it closes, so close() below does.
    const handedOver = new Set<Socket>();
    if (channel === undefined) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.listen.port, config.listen.host, () => resolve());
      });
    } else {
      // Node 20's HTTP server starts tracking its connections (the request
      // and header deadlines, closeIdleConnections) on 'listening'; this one
      // is fed by the primary and never listens itself.
      server.emit('listening');
    }
    const port = channel === undefined ? (server.address() as AddressInfo).port : config.listen.port;
    // Reload on SIGHUP and on file change from now on.
    credentials.start();
    return {
      server,
      port,
      url: listenUrl(config.listen.host, port, tls !== undefined),
      hsm,
      keys,
      metrics,
      accept(socket) {
        if (closing) {
          socket.destroy();
          return;
        }
        handedOver.add(socket);
        socket.once('close', () => handedOver.delete(socket));
        server.emit('connection', socket);
      },
      async close() {
        // Stop accepting, let requests in flight finish (idle keep-alive
        // sockets are closed now, busy ones after a grace period).
        closing = true;
        credentials.close();
        await new Promise<void>((resolve) => {
          let closed = false;
          const drained = () => {
            if (closed && handedOver.size === 0) resolve();
          };
          server.close(() => {
            closed = true;
            drained();
          });
          for (const s of handedOver) s.once('close', drained);
          server.closeIdleConnections();
          setTimeout(() => {
            server.closeAllConnections();
            // Handed-over sockets the HTTP server does not track yet (a TLS handshake not finished).
            for (const s of handedOver) s.destroy();
          }, 5_000).unref();
        });
        await keyLoader.stop();
        await keys.stop();
        await hsm.close();
        await audit.close();
      },
    };
  } catch (e) {
    await loader?.stop();
    await hsm.close();
    await audit.close();
    throw e;
  }
}
