import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "../../../src/observability/logger.js";
import { type HealthComponent, HealthMonitor } from "../../../src/server/health-monitor.js";

function component(name: string, ready: boolean, services?: string[]): HealthComponent & { ready: boolean } {
  return {
    name,
    ready,
    ...(services === undefined ? {} : { services }),
    async check() {
      return this.ready;
    },
  };
}

describe("HealthMonitor", () => {
  it("is NOT_SERVING until the first round, then SERVING only when every component is ready", async () => {
    const store = component("store", true);
    const bus = component("bus", false);
    const m = new HealthMonitor({ components: [store, bus], services: ["a.A"], logger: silentLogger() });
    assert.equal(m.status(""), "NOT_SERVING");
    await m.checkOnce(AbortSignal.timeout(1_000));
    assert.equal(m.status(""), "NOT_SERVING");
    assert.equal(m.status("a.A"), "NOT_SERVING");
    bus.ready = true;
    await m.checkOnce(AbortSignal.timeout(1_000));
    assert.equal(m.status(""), "SERVING");
    assert.equal(m.status("a.A"), "SERVING");
    assert.equal(m.status("b.B"), undefined);
    assert.deepEqual(m.snapshot(), { status: "SERVING", draining: false, components: { store: true, bus: true } });
    m.drain();
    assert.equal(m.status(""), "NOT_SERVING");
    assert.equal(m.snapshot().draining, true);
  });

  it("a component gates only the services it names; the overall status needs all", async () => {
    const policy = component("policy", false, ["a.Policy"]);
    const m = new HealthMonitor({ components: [policy], services: ["a.Policy", "a.Docs"], logger: silentLogger() });
    await m.checkOnce(AbortSignal.timeout(1_000));
    assert.equal(m.status("a.Docs"), "SERVING");
    assert.equal(m.status("a.Policy"), "NOT_SERVING");
    assert.equal(m.status(""), "NOT_SERVING");
  });

  it("a check that throws or does not answer in time counts as not ready", async () => {
    const throws: HealthComponent = { name: "throws", check: async () => Promise.reject(new Error("down")) };
    const hangs: HealthComponent = { name: "hangs", check: () => new Promise<boolean>(() => undefined) };
    const m = new HealthMonitor({ components: [throws, hangs], logger: silentLogger(), checkTimeoutMs: 50 });
    await m.checkOnce(AbortSignal.timeout(5_000));
    assert.deepEqual(m.snapshot().components, { throws: false, hangs: false });
  });

  it("watch yields the current status, then every change, and ends when its signal aborts", async () => {
    const bus = component("bus", true);
    const m = new HealthMonitor({ components: [bus], logger: silentLogger() });
    await m.checkOnce(AbortSignal.timeout(1_000));
    const stop = new AbortController();
    const it = m.watch("", stop.signal);
    assert.deepEqual(await it.next(), { value: "SERVING", done: false });
    bus.ready = false;
    await m.checkOnce(AbortSignal.timeout(1_000));
    bus.ready = true;
    await m.checkOnce(AbortSignal.timeout(1_000)); // two changes while nobody was reading: both are delivered
    assert.deepEqual(await it.next(), { value: "NOT_SERVING", done: false });
    assert.deepEqual(await it.next(), { value: "SERVING", done: false });
    const pending = it.next();
    stop.abort();
    assert.deepEqual(await pending, { value: undefined, done: true });
    const unknown = m.watch("x.Y", AbortSignal.timeout(1_000));
    assert.deepEqual(await unknown.next(), { value: undefined, done: false }); // SERVICE_UNKNOWN
    await unknown.return(undefined);
  });

  it("refuses two components with the same name", () => {
    assert.throws(
      () => new HealthMonitor({ components: [component("a", true), component("a", true)], logger: silentLogger() }),
      /registered twice/,
    );
  });
});
