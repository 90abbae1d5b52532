// A minimal TCP load balancer for tests and the local cluster: each new connection goes to the next backend that
// accepts it (round robin, skipping dead ones), like the TCP load balancer in front of `stackl serve` replicas in
// production. Agents connect through it and reconnect to a surviving replica when theirs dies.
import net from "node:net";

export interface TcpProxy {
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startTcpProxy(backends: readonly number[], port = 0): Promise<TcpProxy> {
  let next = 0;
  const sockets = new Set<net.Socket>();
  const connect = (client: net.Socket, tries: number) => {
    if (tries >= backends.length) {
      client.destroy();
      return;
    }
    const backend = backends[next++ % backends.length] as number;
    const upstream = net.connect({ host: "127.0.0.1", port: backend });
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
      sockets.add(upstream);
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.once("error", () => {
      if (!connected) connect(client, tries + 1);
      else client.destroy();
    });
    upstream.once("close", () => {
      sockets.delete(upstream);
      if (connected) client.destroy();
    });
    client.once("close", () => upstream.destroy());
    client.once("error", () => upstream.destroy());
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    connect(client, 0);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
