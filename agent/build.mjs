#!/usr/bin/env node
// Builds the single-file `stackl-agent` executable (Node single executable application):
//   1. esbuild bundles agent/src/main.ts and its dependencies into one CommonJS file;
//   2. `node --experimental-sea-config` turns it into a SEA preparation blob (with a V8 code cache);
//   3. the blob is injected with postject into a copy of the running Node binary (symbols stripped when `strip`
//      is available), flipping the SEA sentinel fuse.
// Usage: npx node agent/build.mjs [--out dist/stackl-agent] [--no-strip]
// Run it with the Node that should be embedded (the repo's `node` devDependency via `npx node`, i.e. Node 24).
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** The fuse postject flips so that Node looks for the injected blob (Node SEA docs). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const SEA_RESOURCE = "NODE_SEA_BLOB";

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function parseArgs(argv) {
  const opts = { out: path.join(root, "dist", "stackl-agent"), strip: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--out") opts.out = path.resolve(argv[++i] ?? "");
    else if (a.startsWith("--out=")) opts.out = path.resolve(a.slice(6));
    else if (a === "--no-strip") opts.strip = false;
    else if (a === "--help" || a === "-h") {
      process.stdout.write("usage: node agent/build.mjs [--out FILE] [--no-strip]\n");
      process.exit(0);
    } else {
      process.stderr.write(`build.mjs: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  return opts;
}

function hasStrip() {
  try {
    execFileSync("strip", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function mib(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const major = Number(process.versions.node.split(".")[0]);
  if (major < 22) {
    throw new Error(`build with Node >= 22 (this is ${process.version}); use \`npx node agent/build.mjs\``);
  }
  const version = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).version;
  const work = mkdtempSync(path.join(tmpdir(), "stackl-agent-build-"));
  const started = Date.now();
  try {
    const bundle = path.join(work, "stackl-agent.cjs");
    const result = await build({
      entryPoints: [path.join(root, "agent", "src", "main.ts")],
      outfile: bundle,
      bundle: true,
      platform: "node",
      format: "cjs",
      target: `node${major}`,
      minify: true,
      keepNames: true,
      legalComments: "none",
      define: { __STACKL_AGENT_VERSION__: JSON.stringify(version) },
      logLevel: "warning",
      metafile: true,
    });
    const inputs = Object.keys(result.metafile.inputs);
    const fromSrc = inputs.filter((f) => f.startsWith("src/"));
    if (fromSrc.length > 0) throw new Error(`agent/ must not import src/: ${fromSrc.join(", ")}`);

    const blob = path.join(work, "sea-prep.blob");
    const seaConfig = path.join(work, "sea-config.json");
    writeFileSync(
      seaConfig,
      JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }),
    );
    execFileSync(process.execPath, ["--experimental-sea-config", seaConfig], {
      stdio: ["ignore", "ignore", "inherit"],
    });

    mkdirSync(path.dirname(opts.out), { recursive: true });
    rmSync(opts.out, { force: true });
    copyFileSync(process.execPath, opts.out);
    chmodSync(opts.out, 0o755);
    const stripped = opts.strip && process.platform === "linux" && hasStrip();
    // Symbols and debug info are of no use in the agent (it loads no native addons; .dynsym stays); strip's
    // warnings about Node's many ELF notes are noise, so its output is only shown when it fails.
    if (stripped) execFileSync("strip", ["--strip-all", opts.out], { stdio: ["ignore", "pipe", "pipe"] });

    // postject's CLI in a child process, so that LIEF's harmless "Can't find string offset for section name
    // '.note…'" warnings about Node's ELF notes can be filtered out of its output.
    const postjectCli = path.join(path.dirname(require.resolve("postject")), "cli.js");
    const injected = spawnSync(
      process.execPath,
      [postjectCli, opts.out, SEA_RESOURCE, blob, "--sentinel-fuse", SEA_FUSE],
      { encoding: "utf8" },
    );
    const noise = /^warning: Can't find string offset for section name '\.note[^']*'$/;
    const output = `${injected.stdout}${injected.stderr}`
      .split("\n")
      .filter((line) => line.trim() !== "" && !noise.test(line.trim()));
    if (injected.status !== 0) throw new Error(`postject failed:\n${output.join("\n")}`);

    const printed = execFileSync(opts.out, ["--version"], { encoding: "utf8" }).trim();
    if (!printed.includes(version)) throw new Error(`built binary printed "${printed}", expected version ${version}`);
    const size = statSync(opts.out).size;
    process.stdout.write(
      `${path.relative(process.cwd(), opts.out) || opts.out}: ${printed}, ${mib(size)} ` +
        `(bundle ${mib(statSync(bundle).size)}, Node ${process.version}${stripped ? ", stripped" : ""}) ` +
        `in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`build.mjs: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
