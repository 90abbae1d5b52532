// `npm run cluster -- [--servers 2] [--workers 3] [--agents 2]`: the distributed mode on one machine, every part a
// separate process on loopback: PostgreSQL, NATS with JetStream, `stackl serve` replicas behind a TCP load balancer,
// `stackl worker` processes and `stackl-agent` processes (pool `common`). Ctrl-C stops everything cleanly.
import { parseArgs } from "node:util";
import { startCluster } from "../test/support/cluster.js";
import { startTcpProxy } from "../test/support/tcp-proxy.js";

const { values } = parseArgs({
  options: {
    servers: { type: "string", default: "2" },
    workers: { type: "string", default: "3" },
    agents: { type: "string", default: "2" },
    port: { type: "string", default: "7443" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  process.stdout.write(
    "usage: npm run cluster -- [--servers N] [--workers N] [--agents N] [--port P]\n" +
      "Starts PostgreSQL, NATS JetStream, N stackl serve replicas behind a TCP load balancer on --port,\n" +
      "N stackl worker processes and N stackl-agent processes on 127.0.0.1. Ctrl-C stops them all.\n",
  );
  process.exit(0);
}
const count = (name: string, v: string | undefined, min: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > 64) {
    process.stderr.write(`--${name}: expected an integer ${min}-64, got ${JSON.stringify(v)}\n`);
    process.exit(2);
  }
  return n;
};
const servers = count("servers", values.servers, 1);
const workers = count("workers", values.workers, 0);
const agents = count("agents", values.agents, 0);
const port = count("port", values.port, 0) === 0 ? 0 : Number(values.port);

const log = (line: string) => process.stdout.write(`  ${line}\n`);
process.stdout.write("starting the STACKL cluster…\n");
const cluster = await startCluster({ servers, workers, agents: 0, log });
const lb = await startTcpProxy(
  cluster.servers.map((s) => s.port),
  port,
);
log(`load balancer ${lb.url} → ${cluster.servers.map((s) => s.url).join(", ")}`);
for (let i = 0; i < agents; i++) await cluster.addAgent(`agent-${i + 1}`, lb.url);
process.stdout.write(
  `\nSTACKL cluster ready at ${lb.url}\n` +
    `  try: grpcurl -plaintext 127.0.0.1:${lb.port} list\n` +
    `       npm run stackl -- apply -f test/fixtures/stackl-tree --server ${lb.url}\n` +
    `       npm run stackl -- agents --server ${lb.url}\n` +
    `  logs: ${[...cluster.servers, ...cluster.workers].map((p) => p.logFile).join(" ")}\n` +
    "  stop: Ctrl-C\n",
);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\nstopping…\n");
  await lb.close();
  await cluster.stop();
  process.stdout.write("stopped\n");
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
