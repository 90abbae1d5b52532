import { DEFAULT_HOST, DEFAULT_PORT } from "./config.js";
import { ConfigError } from "./config-error.js";

/** Configuration of client commands (`stackl get`, `stackl apply`, …): which server to talk to. */
export interface ClientConfig {
  /**
   * Base URL of the STACKL server. `http://` = plaintext (HTTP/2 prior knowledge), `https://` = TLS.
   * @default "http://127.0.0.1:7443"
   */
  readonly server: string;
}

export const SERVER_ENV = "STACKL_SERVER";
export const DEFAULT_SERVER = `http://${DEFAULT_HOST}:${DEFAULT_PORT}`;

export interface LoadClientConfigInput {
  /** @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** `--server`; overrides STACKL_SERVER. */
  server?: string | undefined;
}

/** Reads and validates the client configuration; throws `ConfigError` naming STACKL_SERVER (or --server). */
export function loadClientConfig(input: LoadClientConfigInput = {}): ClientConfig {
  const env = input.env ?? process.env;
  const fromFlag = input.server !== undefined && input.server !== "";
  const raw = fromFlag ? (input.server as string) : env[SERVER_ENV] || DEFAULT_SERVER;
  const label = fromFlag ? `--server (${SERVER_ENV})` : SERVER_ENV;
  if (!URL.canParse(raw)) {
    throw new ConfigError(`${label}: expected an http:// or https:// URL, got ${JSON.stringify(raw)}`, [SERVER_ENV]);
  }
  const url = new URL(raw);
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search !== "" || url.hash !== "") {
    throw new ConfigError(`${label}: expected an http:// or https:// URL, got ${JSON.stringify(raw)}`, [SERVER_ENV]);
  }
  return Object.freeze({ server: url.href.replace(/\/+$/, "") });
}
