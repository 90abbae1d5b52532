import { stringify, parse } from "yaml";
const o = { a: "yes", b: "no", c: "1e3", d: "line1\nline2\n", e: {}, f: [], g: "2021-06-14", h: "0o17", i: "on", j: "~", k: "", l: "y", m: "012", n:"a: b", big: "x".repeat(150) };
console.log(stringify(o, { version: "1.1", lineWidth: 0 }));
console.log(stringify(o, { version: "1.2", lineWidth: 0 }));
