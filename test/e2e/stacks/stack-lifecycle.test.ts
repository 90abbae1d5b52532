// Stack instances end to end on the embedded default: `stackl dev`'s runtime (PGlite, in-process bus, workers and
// the in-process agent). The suite itself is in test/support/stack-lifecycle-suite.ts.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type RuntimeServer, startRuntimeServer } from "../../support/runtime-server.js";
import { lifecycleSuite } from "../../support/stack-lifecycle-suite.js";

lifecycleSuite("stack lifecycle on the embedded default (dev runtime, in-process agent)", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "stackl-dev-"));
  const server: RuntimeServer = await startRuntimeServer({ STACKL_DATA_DIR: dir }, "dev");
  return {
    url: server.url,
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
