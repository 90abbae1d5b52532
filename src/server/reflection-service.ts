import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type ServerReflectionRequest as RequestV1,
  ServerReflectionResponseSchema as ResponseSchemaV1,
  ServerReflection as ServerReflectionV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  type ServerReflectionRequest as RequestV1Alpha,
  ServerReflectionResponseSchema as ResponseSchemaV1Alpha,
  ServerReflection as ServerReflectionV1Alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { ReflectionIndex } from "./reflection-index.js";

/** The two reflection services, same logic. Older grpcurl and many tools still ask v1alpha. */
export const REFLECTION_SERVICES = [ServerReflectionV1, ServerReflectionV1Alpha] as const;

/** gRPC status codes carried in `error_response.error_code` (numeric, as in google.rpc.Code). */
const NOT_FOUND = Code.NotFound;
const INVALID_ARGUMENT = Code.InvalidArgument;

/** A reflection answer independent of the protocol version. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** The request's oneof, which has the same cases in v1 and v1alpha. */
type Question = RequestV1["messageRequest"] | RequestV1Alpha["messageRequest"];

function notFound(message: string): Answer {
  return { case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: message } };
}

/** Answers one reflection request. `sent` holds the files already sent on this stream. */
export function answerReflection(index: ReflectionIndex, question: Question, sent: Set<string>): Answer {
  switch (question.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.serviceNames.map((name) => ({ name })) } };
    case "fileByFilename": {
      const file = index.fileByName(question.value);
      if (file === undefined) return notFound(`file not found: ${question.value}`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file, sent) } };
    }
    case "fileContainingSymbol": {
      const file = index.fileContainingSymbol(question.value);
      if (file === undefined) return notFound(`symbol not found: ${question.value}`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file, sent) } };
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = question.value;
      const file = index.fileContainingExtension(containingType, extensionNumber);
      if (file === undefined) return notFound(`extension not found: ${containingType}(${extensionNumber})`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file, sent) } };
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbersOf(question.value);
      if (numbers === undefined) return notFound(`type not found: ${question.value}`);
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: question.value, extensionNumber: numbers },
      };
    }
    case undefined:
      return {
        case: "errorResponse",
        value: { errorCode: INVALID_ARGUMENT, errorMessage: "empty reflection request: no message_request set" },
      };
    default: {
      const never: never = question;
      return never;
    }
  }
}

async function* requestsUntilAborted<T>(requests: AsyncIterable<T>, ctx: HandlerContext): AsyncGenerator<T> {
  for await (const req of requests) {
    if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason);
    yield req;
  }
}

/**
 * Registers `grpc.reflection.v1.ServerReflection` and `grpc.reflection.v1alpha.ServerReflection` on `router`,
 * answering from `index`: list_services, file_by_filename, file_containing_symbol, file_containing_extension and
 * all_extension_numbers_of_type; unknown names get an error_response with NOT_FOUND and the stream goes on.
 */
export function registerReflection(router: ConnectRouter, index: ReflectionIndex): void {
  router.service(ServerReflectionV1, {
    async *serverReflectionInfo(requests, ctx) {
      const sent = new Set<string>();
      for await (const req of requestsUntilAborted(requests, ctx)) {
        yield create(ResponseSchemaV1, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answerReflection(index, req.messageRequest, sent),
        });
      }
    },
  });
  router.service(ServerReflectionV1Alpha, {
    async *serverReflectionInfo(requests, ctx) {
      const sent = new Set<string>();
      for await (const req of requestsUntilAborted(requests, ctx)) {
        yield create(ResponseSchemaV1Alpha, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answerReflection(index, req.messageRequest, sent),
        });
      }
    },
  });
}
