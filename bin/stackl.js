#!/usr/bin/env node
// The `stackl` command: runs the TypeScript sources through tsx (a runtime dependency), so no build step is needed.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
