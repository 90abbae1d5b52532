// Stack instances end to end on the distributed mode: PostgreSQL, NATS JetStream, a `stackl serve` process, a
// `stackl worker` process and a real `stackl-agent` process running the shell automation.
import { startCluster } from "../../support/cluster.js";
import { lifecycleSuite } from "../../support/stack-lifecycle-suite.js";

lifecycleSuite(
  "stack lifecycle on PostgreSQL + NATS with stackl serve, stackl worker and stackl-agent processes",
  async () => {
    const cluster = await startCluster({ servers: 1, workers: 1, agents: 1 });
    return { url: cluster.servers[0]?.url ?? "", close: () => cluster.stop() };
  },
);
