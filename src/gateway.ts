/**
 * Wires a gateway from a validated config: the token, the key store, the
 * express app and an HTTP listener. main.ts calls it for real; tests call it
 * to start a gateway in-process on port 0.
 */
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { createApp } from './app.js';
import { AllowAllAuthorizer, HeaderShapeAuthenticator } from './auth/placeholder.js';
import { readPin, type Config } from './config/config.js';
import type { Hsm } from './hsm/hsm.js';
import { Pkcs11Hsm } from './hsm/pkcs11/pkcs11-hsm.js';
import { KeyStore, type Clock } from './keys/key-store.js';
import type { Logger } from './log.js';

export interface RunningGateway {
  server: Server;
  url: string;
  port: number;
  hsm: Hsm;
  keys: KeyStore;
  close(): Promise<void>;
}

export interface GatewayOptions {
  env?: NodeJS.ProcessEnv;
  /** Only tests shorten days (see main.ts). */
  clock?: Clock;
}

export async function startGateway(config: Config, log: Logger, opts: GatewayOptions = {}): Promise<RunningGateway> {
  const env = opts.env ?? process.env;
  const hsm = await Pkcs11Hsm.open({
    module: config.hsm.module,
    token: config.hsm.token,
    pin: readPin(config.hsm.pin, env),
    sessionPoolSize: config.hsm.sessionPoolSize,
    log,
  });
  try {
    const keys = new KeyStore(config, hsm, { clock: opts.clock, refreshMs: config.state.refreshMs, log });
    await keys.init(config);
    keys.start();
    const authenticator = new HeaderShapeAuthenticator();
    const authorizer = new AllowAllAuthorizer();
    const app = createApp({ keys, hsm, log, auth: { authenticator, authorizer } });
    const server = createServer(app);
    // While stopping, answers in flight close their connection behind them.
    let closing = false;
    server.on('request', (req, res) => {
      res.once('finish', () => {
        if (closing) req.socket.end();
      });
    });
    // Slow clients do not hold sockets forever.
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, config.listen.host, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
    return {
      server,
      port,
      url: `http://${host}:${port}`,
      hsm,
      keys,
      async close() {
        // Stop accepting, let requests in flight finish (idle keep-alive
        // sockets are closed now, busy ones after a grace period).
        closing = true;
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          setTimeout(() => server.closeAllConnections(), 5_000).unref();
        });
        await keys.stop();
        await hsm.close();
      },
    };
  } catch (e) {
    await hsm.close();
    throw e;
  }
}
