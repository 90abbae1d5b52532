#!/usr/bin/env node
import { runCli } from "./cli/program.js";
// The `stackl` command: `stackl serve | worker | dev | version`, and (later) the client commands.
import { EXIT_LINGER_MS } from "./cli/run-server.js";

const code = await runCli(process.argv);
process.exitCode = code;
// Exit even if a stray handle would keep the event loop alive; a clean run is gone before this fires.
setTimeout(() => process.exit(code), EXIT_LINGER_MS).unref();
