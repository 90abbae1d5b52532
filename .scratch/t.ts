import { createProgram } from "../src/cli/program.js";
const p = createProgram();
const task = p.commands.find(c => c.name()==="task")!;
const run = task.commands.find(c => c.name()==="run")!;
console.log(run.options.map(o=>o.flags));
run.hook("preAction", (thisCmd, actionCmd) => { console.log("opts", actionCmd.name(), actionCmd.opts(), thisCmd.name()); });
try { await p.parseAsync(["node","stackl","task","run","system.sleep","--server","http://127.0.0.1:1"]); } catch(e) { console.log(String(e)); }
