import { type Command, Option } from "commander";
import { type ConfigKey, type ConfigSetting, configSettings } from "../config/config.js";

/** Adds a flag for each of `keys` (all settings by default) to `command`; help shows the variable and default. */
export function addConfigOptions(command: Command, keys?: readonly ConfigKey[]): Command {
  const all = Object.keys(configSettings) as ConfigKey[];
  for (const key of keys ?? all) {
    const setting: ConfigSetting = configSettings[key];
    const def = setting.defaultText === undefined ? "" : `, default ${setting.defaultText}`;
    const option = new Option(setting.flag, `${setting.help} (env ${setting.env}${def})`);
    command.addOption(option);
  }
  return command;
}

/**
 * The configuration flags given on the command line, keyed by config key, as raw text for `loadConfig` (which
 * validates them exactly like environment values).
 */
export function configFlags(command: Command): Partial<Record<ConfigKey, string>> {
  const opts = command.opts<Record<string, unknown>>();
  const flags: Partial<Record<ConfigKey, string>> = {};
  for (const [key, setting] of Object.entries(configSettings) as [ConfigKey, ConfigSetting][]) {
    const attribute = new Option(setting.flag).attributeName();
    const value = opts[attribute];
    if (typeof value === "string") flags[key] = value;
  }
  return flags;
}
