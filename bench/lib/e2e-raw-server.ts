/**
 * The raw baseline of bench/e2e.ts: the hops of STACKL's job path with no STACKL code, in one child process (like a
 * `stackl serve` replica), using the same libraries, the same generated messages and the same wire protocol:
 *
 *   JobService.RunJob (connect-node, gRPC over h2c) → INSERT … RETURNING into PostgreSQL → JetStream publish (awaiting
 *   the ack) → the RPC returns.  A durable pull consumer (`consume()`, explicit acks) in the same process takes the
 *   message → pushes a JobOffer to a fake agent over its AgentService.Connect bidi stream (round robin over the
 *   connected agents, at most `RAW_AGENT_CAPACITY` jobs in flight per agent, like an agent's capacity) → the agent
 *   answers JobResult on the stream → UPDATE … SET state = 'done' → JetStream ack.
 *
 * No validation, no auth, no interceptors, no logging, no fencing: the floor the product is compared with.
 *
 * Environment: RAW_DATABASE_URL, RAW_NATS_URL, RAW_NAME (its stream; default `default`), RAW_AGENT_CAPACITY
 * (default 16), RAW_PG_POOL (default 10, STACKL's default pool size). Prints `listening <port>` on stdout once ready; SIGTERM stops it.
 */
import { randomUUID } from "node:crypto";
import http2 from "node:http2";
import { create, fromBinary, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  AckPolicy,
  DeliverPolicy,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import pg from "pg";
import {
  AgentService,
  type ConnectRequest,
  type ConnectResponse,
  ConnectResponseSchema,
} from "../../gen/stackl/v1/agents_pb.js";
import { JobService, JobSpecSchema, JobState } from "../../gen/stackl/v1/jobs_pb.js";

/** Several raw servers may share one PostgreSQL and NATS: each has its own stream (RAW_NAME). */
const NAME = (process.env.RAW_NAME ?? "default").replace(/[^A-Za-z0-9_-]/g, "_");
const STREAM = `RAW_E2E_${NAME}`;
const SUBJECT = `raw.e2e.${NAME}`;
const DURABLE = `raw-dispatch-${NAME}`;

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

interface AgentConn {
  name: string;
  capacity: number;
  inFlight: number;
  queue: ConnectResponse[];
  wake: (() => void) | undefined;
  closed: boolean;
}

async function main(): Promise<void> {
  const capacity = Number(process.env.RAW_AGENT_CAPACITY ?? 16);
  const db = new pg.Pool({
    connectionString: env("RAW_DATABASE_URL"),
    max: Number(process.env.RAW_PG_POOL ?? 10),
    application_name: "raw-baseline",
  });
  db.on("error", () => undefined);
  await db.query(`CREATE TABLE IF NOT EXISTS raw_jobs (
    id text PRIMARY KEY, state text NOT NULL, target text NOT NULL, spec jsonb NOT NULL,
    created_at timestamptz NOT NULL, done_at timestamptz)`);

  const nc = await connect({ servers: env("RAW_NATS_URL") });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(STREAM).catch(() => undefined);
  await jsm.streams.add({
    name: STREAM,
    subjects: [SUBJECT],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
  await jsm.consumers.add(STREAM, {
    durable_name: DURABLE,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: 4096,
    ack_wait: 30_000_000_000,
  });
  const js = jetstream(nc);

  // ------------------------------------------------------------------------------------------- dispatch to agents
  const agents: AgentConn[] = [];
  let rr = 0;
  /** Consumed messages waiting for a free agent slot. */
  const waiting: { id: string; spec: Uint8Array; msg: JsMsg }[] = [];
  /** job id → its JetStream message (acked after the UPDATE). */
  const inFlight = new Map<string, { msg: JsMsg; agent: AgentConn }>();

  const push = (a: AgentConn, m: ConnectResponse): void => {
    a.queue.push(m);
    const w = a.wake;
    a.wake = undefined;
    w?.();
  };

  const dispatch = (): void => {
    while (waiting.length > 0) {
      let chosen: AgentConn | undefined;
      for (let i = 0; i < agents.length; i++) {
        const a = agents[(rr + i) % agents.length] as AgentConn;
        if (!a.closed && a.inFlight < a.capacity) {
          chosen = a;
          rr = (rr + i + 1) % agents.length;
          break;
        }
      }
      if (chosen === undefined) return;
      const job = waiting.shift() as (typeof waiting)[number];
      chosen.inFlight++;
      inFlight.set(job.id, { msg: job.msg, agent: chosen });
      push(
        chosen,
        create(ConnectResponseSchema, {
          msg: {
            case: "jobOffer",
            value: { jobId: job.id, epoch: 1n, spec: fromBinary(JobSpecSchema, job.spec), nextLogSeq: 1n },
          },
        }),
      );
    }
  };

  const onResult = async (jobId: string): Promise<void> => {
    const f = inFlight.get(jobId);
    if (f === undefined) return;
    inFlight.delete(jobId);
    await db.query("UPDATE raw_jobs SET state = 'done', done_at = now() WHERE id = $1", [jobId]);
    f.agent.inFlight--;
    f.msg.ack();
    dispatch();
  };

  const consumer = await js.consumers.get(STREAM, DURABLE);
  const messages = await consumer.consume({ max_messages: 256 });
  void (async () => {
    for await (const m of messages) {
      const id = m.headers?.get("job-id") ?? "";
      waiting.push({ id, spec: m.data, msg: m });
      dispatch();
    }
  })();

  // ------------------------------------------------------------------------------------------------ RPC handlers
  const routes = (router: ConnectRouter): void => {
    router.service(JobService, {
      async runJob(req) {
        const spec = create(JobSpecSchema, req.spec ?? {});
        const id = `raw_${randomUUID()}`;
        const res = await db.query<{ id: string }>(
          `INSERT INTO raw_jobs (id, state, target, spec, created_at)
           VALUES ($1, 'pending', $2, $3::jsonb, now()) RETURNING id`,
          [id, req.target, JSON.stringify(toJson(JobSpecSchema, spec) as JsonValue)],
        );
        const h = headers();
        h.set("job-id", id);
        await js.publish(SUBJECT, toBinary(JobSpecSchema, spec), { headers: h });
        return {
          job: {
            id: res.rows[0]?.id ?? id,
            state: JobState.PENDING,
            target: req.target,
            spec,
            createTime: timestampNow(),
          },
        };
      },
    });
    router.service(AgentService, {
      async *connect(requests: AsyncIterable<ConnectRequest>, ctx: HandlerContext) {
        const it = requests[Symbol.asyncIterator]();
        const first = await it.next();
        if (first.done || first.value.msg.case !== "hello") throw new Error("expected hello");
        const hello = first.value.msg.value;
        const a: AgentConn = {
          name: hello.name,
          capacity: Math.min(capacity, hello.maxConcurrentJobs || capacity),
          inFlight: 0,
          queue: [],
          wake: undefined,
          closed: false,
        };
        agents.push(a);
        void (async () => {
          try {
            for (;;) {
              const r = await it.next();
              if (r.done) break;
              if (r.value.msg.case === "jobResult") void onResult(r.value.msg.value.jobId);
            }
          } catch {
            // stream ended
          }
          a.closed = true;
          const w = a.wake;
          a.wake = undefined;
          w?.();
        })();
        yield create(ConnectResponseSchema, { msg: { case: "welcome", value: { sessionId: randomUUID() } } });
        dispatch();
        try {
          while (!a.closed && !ctx.signal.aborted) {
            const next = a.queue.shift();
            if (next !== undefined) {
              yield next;
              continue;
            }
            await new Promise<void>((resolve) => {
              a.wake = resolve;
            });
          }
        } finally {
          a.closed = true;
          agents.splice(agents.indexOf(a), 1);
        }
      },
    });
  };

  const server = http2.createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`listening ${port}\n`);

  const stop = async (): Promise<void> => {
    messages.stop();
    for (const a of agents) {
      a.closed = true;
      a.wake?.();
    }
    server.close();
    await nc.drain().catch(() => undefined);
    await db.end().catch(() => undefined);
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
