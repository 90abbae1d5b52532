/**
 * The agent's version, reported in Hello and by `--version`. The single-binary build (agent/build.mjs) replaces
 * `__STACKL_AGENT_VERSION__` with the package version; runs from source report `<package version>-dev`.
 */
declare const __STACKL_AGENT_VERSION__: string | undefined;

export const AGENT_VERSION: string =
  typeof __STACKL_AGENT_VERSION__ === "string" ? __STACKL_AGENT_VERSION__ : "0.1.0-dev";
