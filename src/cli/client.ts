import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { type Command, Option } from "commander";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { AgentService } from "../../gen/stackl/v1/agents_pb.js";
import { DocumentService } from "../../gen/stackl/v1/documents_pb.js";
import { JobService } from "../../gen/stackl/v1/jobs_pb.js";
import { PolicyService } from "../../gen/stackl/v1/policies_pb.js";
import { StackInstanceService } from "../../gen/stackl/v1/stack_instances_pb.js";
import { TaskService } from "../../gen/stackl/v1/tasks_pb.js";
import { type ClientConfig, DEFAULT_SERVER, loadClientConfig, SERVER_ENV } from "../config/client-config.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../config/config.js";

/**
 * Clients of the public API for the CLI's client commands (`apply`, `get`, …). They use ONLY the generated code in
 * `gen/` and the Connect protocol over HTTP/2 (h2c for `http://`, TLS for `https://`), exactly like any other client.
 */
export interface StacklClients {
  readonly transport: Transport;
  readonly documents: Client<typeof DocumentService>;
  readonly stackInstances: Client<typeof StackInstanceService>;
  readonly tasks: Client<typeof TaskService>;
  readonly jobs: Client<typeof JobService>;
  readonly agents: Client<typeof AgentService>;
  readonly policies: Client<typeof PolicyService>;
  readonly health: Client<typeof Health>;
}

export interface ClientOptions {
  /**
   * Largest message read from or sent to the server.
   * @default 4 MiB (the server's default limit)
   */
  maxMessageBytes?: number;
  /**
   * HTTP/2 keepalive PING interval (a dead server is noticed on long watches).
   * @default 10_000
   */
  pingIntervalMs?: number;
  /** @default [] */
  interceptors?: Interceptor[];
}

/** Connect transport to the configured server. */
export function createStacklTransport(config: ClientConfig, options: ClientOptions = {}): Transport {
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  // API token (STACKL_TOKEN) for servers configured with STACKL_API_TOKENS.
  const token = process.env.STACKL_TOKEN?.trim();
  const auth: Interceptor[] = token
    ? [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${token}`);
          return next(req);
        },
      ]
    : [];
  return createConnectTransport({
    baseUrl: config.server,
    httpVersion: "2",
    readMaxBytes: maxBytes,
    writeMaxBytes: maxBytes,
    pingIntervalMs: options.pingIntervalMs ?? 10_000,
    interceptors: [...auth, ...(options.interceptors ?? [])],
  });
}

/** One client per public service, sharing one transport (one HTTP/2 connection). */
export function createStacklClients(config: ClientConfig, options: ClientOptions = {}): StacklClients {
  const transport = createStacklTransport(config, options);
  const client = <S extends DescService>(service: S): Client<S> => createClient(service, transport);
  return {
    transport,
    documents: client(DocumentService),
    stackInstances: client(StackInstanceService),
    tasks: client(TaskService),
    jobs: client(JobService),
    agents: client(AgentService),
    policies: client(PolicyService),
    health: client(Health),
  };
}

/** Adds `--server <url>` to a client command. */
export function addClientOptions(command: Command): Command {
  return command.addOption(
    new Option("--server <url>", `STACKL server (env ${SERVER_ENV}, default ${DEFAULT_SERVER})`),
  );
}

/** The client configuration of a command that called `addClientOptions` (validates; throws ConfigError). */
export function clientConfigOf(command: Command): ClientConfig {
  const { server } = command.opts<{ server?: string }>();
  return loadClientConfig({ server });
}
