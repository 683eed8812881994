// A plain gRPC-Web client: connect-node's `createGrpcWebTransport` with the published service
// descriptors from @zitadel/proto (no ZITADEL SDK code), over HTTP/1.1 and over HTTP/2 (h2c).
//
// Env: SWITCHYARD_URL (http://127.0.0.1:PORT), SWITCHYARD_TOKEN (a personal access token).
// Prints one JSON line; exits non-zero on any mismatch.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { UserService } from "@zitadel/proto/zitadel/user/v2/user_service_pb.js";
import { ManagementService } from "@zitadel/proto/zitadel/management_pb.js";
import { bearer, env, run, v1Flow, v2Flow } from "./flow.mjs";

run(async () => {
  const { url, token } = env();
  const transport = (httpVersion) =>
    createGrpcWebTransport({ baseUrl: url, httpVersion, interceptors: [bearer(token)] });
  const http1 = transport("1.1");
  const http2 = transport("2");
  return {
    client: "@connectrpc/connect-node createGrpcWebTransport + @zitadel/proto descriptors",
    v2_http1: await v2Flow(createClient(UserService, http1), "grpcweb-v2-h1"),
    v2_http2: await v2Flow(createClient(UserService, http2), "grpcweb-v2-h2"),
    v1_http1: await v1Flow(createClient(ManagementService, http1), "grpcweb-v1-h1"),
    v1_http2: await v1Flow(createClient(ManagementService, http2), "grpcweb-v1-h2"),
  };
});
