// A client built with @grpc/grpc-js — an independent gRPC implementation, standing in for "generated clients in
// other languages" — from the protobuf-es descriptors: the message codec is protobuf-es, the transport is grpc-js.
import { create, type DescMethod, type DescService, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

export type GrpcJsClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function definition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const m of service.methods) {
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      originalName: m.name,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: (value: object) => Buffer.from(toBinary(m.input, create(m.input, value as never))),
      requestDeserialize: (bytes: Buffer) => fromBinary(m.input, bytes),
      responseSerialize: (value: object) => Buffer.from(toBinary(m.output, create(m.output, value as never))),
      responseDeserialize: (bytes: Buffer) => fromBinary(m.output, bytes),
    };
  }
  return def;
}

/**
 * A grpc-js client for `service` at `address` (`host:port`; h2c unless TLS `credentials` are given). Close it with
 * `client.close()`.
 */
export function grpcJsClient(
  service: DescService,
  address: string,
  options: grpc.ClientOptions = {},
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): GrpcJsClient {
  const Ctor = grpc.makeGenericClientConstructor(definition(service), service.name);
  return new Ctor(address, credentials, options) as unknown as GrpcJsClient;
}

/** Calls a unary method and resolves with the response, or rejects with the grpc-js ServiceError. */
export function unary<M extends DescMethod & { methodKind: "unary" }>(
  client: GrpcJsClient,
  method: M,
  request: object,
  options: grpc.CallOptions = {},
): Promise<MessageShape<M["output"]>> {
  return new Promise((resolve, reject) => {
    const fn = client[method.localName] as (
      req: object,
      metadata: grpc.Metadata,
      options: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res?: MessageShape<M["output"]>) => void,
    ) => unknown;
    fn.call(client, request, new grpc.Metadata(), options, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res as MessageShape<M["output"]>);
    });
  });
}

/** Opens a bidi stream: write requests, read responses in order. */
export function bidi<M extends DescMethod & { methodKind: "bidi_streaming" }>(
  client: GrpcJsClient,
  method: M,
): grpc.ClientDuplexStream<object, MessageShape<M["output"]>> {
  const fn = client[method.localName] as () => grpc.ClientDuplexStream<object, MessageShape<M["output"]>>;
  return fn.call(client);
}

/** Sends one request on a bidi stream and waits for the next response. */
export function ask<T>(stream: grpc.ClientDuplexStream<object, T>, request: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const onData = (res: T): void => {
      stream.off("error", onError);
      resolve(res);
    };
    const onError = (err: Error): void => {
      stream.off("data", onData);
      reject(err);
    };
    stream.once("data", onData);
    stream.once("error", onError);
    stream.write(request);
  });
}
