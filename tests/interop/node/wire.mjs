// Codecs and compression as connect-node speaks them: its gRPC-Web transport with
// `useBinaryFormat: false` (`application/grpc-web+json`), and its gRPC-Web and Connect transports
// with `sendCompression: gzip` (every request message compressed: `compressMinBytes: 0`) and gzip
// accepted back. Each runs the shared v2 and v1 flows, then a ListUsers large enough for the
// server to compress its answer; an interceptor records the answer's encoding headers.
//
// Env: SWITCHYARD_URL (http://127.0.0.1:PORT), SWITCHYARD_TOKEN (a personal access token).
// Prints one JSON line; exits non-zero on any mismatch.
import { createClient } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { UserService } from "@zitadel/proto/zitadel/user/v2/user_service_pb.js";
import { ManagementService } from "@zitadel/proto/zitadel/management_pb.js";
import { bearer, env, run, uniqueName, v1Flow, v2Flow } from "./flow.mjs";

/** An interceptor that keeps, per call, the encoding headers of the answer. */
function recorder(seen) {
  return (next) => async (req) => {
    const res = await next(req);
    seen.push({
      method: req.method.name,
      contentType: res.header.get("content-type"),
      contentEncoding: res.header.get("content-encoding"),
      grpcEncoding: res.header.get("grpc-encoding"),
      acceptEncoding: res.header.get("accept-encoding") ?? res.header.get("grpc-accept-encoding"),
    });
    return res;
  };
}

/** Adds users with long names, then lists them: the list is several KiB. */
async function bigList(mgmt, prefix) {
  const pad = "compressible-".repeat(12);
  const names = [];
  for (let i = 0; i < 6; i += 1) {
    const userName = `${uniqueName(prefix)}-${pad}`;
    await mgmt.addHumanUser({
      userName,
      profile: { firstName: `Ada ${pad}`, lastName: `Lovelace ${pad}` },
      email: { email: `${uniqueName(prefix)}@example.com`, isEmailVerified: true },
      initialPassword: "Secret123!",
    });
    names.push(userName);
  }
  const listed = await mgmt.listUsers({});
  const got = new Set(listed.result.map((u) => u.userName));
  const missing = names.filter((n) => !got.has(n));
  if (missing.length > 0) throw new Error(`ListUsers is missing ${missing.join(", ")}`);
  return { listed: listed.result.length };
}

/** The flows over `transport`, with what the answers' headers said. */
async function flows(makeTransport, prefix) {
  const seen = [];
  const transport = makeTransport([bearer(env().token), recorder(seen)]);
  const v2 = await v2Flow(createClient(UserService, transport), `${prefix}-v2`);
  const mgmt = createClient(ManagementService, transport);
  const v1 = await v1Flow(mgmt, `${prefix}-v1`);
  const list = await bigList(mgmt, `${prefix}-big`);
  const listSeen = seen.filter((s) => s.method === "ListUsers");
  return { v2, v1, list, seen, listSeen };
}

run(async () => {
  const { url } = env();
  const gzip = { sendCompression: compressionGzip, acceptCompression: [compressionGzip], compressMinBytes: 0 };
  return {
    client: "@connectrpc/connect-node createGrpcWebTransport / createConnectTransport",
    grpcWebJsonHttp1: await flows(
      (interceptors) =>
        createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false, interceptors }),
      "gwjson-h1",
    ),
    grpcWebJsonHttp2: await flows(
      (interceptors) =>
        createGrpcWebTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: false, interceptors }),
      "gwjson-h2",
    ),
    grpcWebGzip: await flows(
      (interceptors) => createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", ...gzip, interceptors }),
      "gwgzip",
    ),
    connectGzipJson: await flows(
      (interceptors) =>
        createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false, ...gzip, interceptors }),
      "cgzip-json",
    ),
    connectGzipProto: await flows(
      (interceptors) =>
        createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, ...gzip, interceptors }),
      "cgzip-proto",
    ),
  };
});
