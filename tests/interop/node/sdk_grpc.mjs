// ZITADEL's Node SDK (@zitadel/client) over native gRPC: the SDK's own server transport
// (`createServerTransport` from @zitadel/client/node, i.e. connect-node's gRPC transport with the
// SDK's bearer interceptor) and its v2 UserService and v1 ManagementService clients.
//
// Env: SWITCHYARD_URL (http://127.0.0.1:PORT), SWITCHYARD_TOKEN (a personal access token).
// Prints one JSON line; exits non-zero on any mismatch.
import { createServerTransport } from "@zitadel/client/node";
import { createUserServiceClient } from "@zitadel/client/v2";
import { createManagementServiceClient } from "@zitadel/client/v1";
import { env, run, v1Flow, v2Flow } from "./flow.mjs";

run(async () => {
  const { url, token } = env();
  // gRPC needs HTTP/2; plaintext (h2c) because the test server listens on http://.
  const transport = createServerTransport(token, { baseUrl: url, httpVersion: "2" });
  const v2 = await v2Flow(createUserServiceClient(transport), "sdk-grpc-v2");
  const v1 = await v1Flow(createManagementServiceClient(transport), "sdk-grpc-v1");
  return { client: "@zitadel/client/node createServerTransport (gRPC)", v2, v1 };
});
