// The browser test's page (tests/browser.rs, driven by ../browser.mjs). Bundled by esbuild into
// app.js next to index.html (`node browser.mjs --bundle DIR`).
//
// From a different origin than the API, with @connectrpc/connect-web and @zitadel/proto's v2
// UserService descriptor, it runs one user lifecycle over gRPC-Web (binary) and one over Connect
// (JSON): AddHumanUser (verified email, password) → DeactivateUser → ReactivateUser →
// GetUserByID → ReactivateUser again (expected FAILED_PRECONDITION with a zitadel ErrorDetail).
// Every outcome, including errors (a CORS refusal surfaces as a TypeError wrapped in a
// ConnectError), is written as JSON into <pre id="result">, which then gets data-done="1".
//
// Parameters, in the URL fragment (never sent to the static server):
//   #api=<switchyard base URL>&token=<personal access token>&run=<unique run id>
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { ErrorDetailSchema } from "@zitadel/proto/zitadel/message_pb.js";
import { UserState } from "@zitadel/proto/zitadel/user/v2/user_pb.js";
import { UserService } from "@zitadel/proto/zitadel/user/v2/user_service_pb.js";

/** A plain, JSON-able account of an error: ConnectError code, raw message, ErrorDetail, cause. */
function describeError(err) {
  const out = { name: err?.name ?? typeof err, message: String(err?.message ?? err) };
  if (err instanceof ConnectError) {
    out.code = Code[err.code];
    out.rawMessage = err.rawMessage;
    const details = err.findDetails(ErrorDetailSchema);
    if (details.length > 0) {
      out.errorDetail = { id: details[0].id, message: details[0].message };
    }
    if (err.cause !== undefined) {
      out.cause = { name: err.cause?.name, message: String(err.cause?.message ?? err.cause) };
    }
  }
  return out;
}

/** One lifecycle on `transport`; never throws: failures are recorded with the step reached. */
async function lifecycle(protocol, transport, username) {
  const out = { protocol, username, steps: [] };
  let step = "AddHumanUser";
  try {
    const users = createClient(UserService, transport);
    // x-request-id is readable only if the server exposes it (access-control-expose-headers).
    let requestId = null;
    const added = await users.addHumanUser(
      {
        username,
        profile: { givenName: "Grace", familyName: "Hopper" },
        email: { email: `${username}@example.com`, verification: { case: "isVerified", value: true } },
        passwordType: { case: "password", value: { password: "Secret123!", changeRequired: false } },
      },
      { onHeader: (headers) => (requestId = headers.get("x-request-id")) },
    );
    out.steps.push(step);
    out.userId = added.userId;
    out.addSequence = String(added.details?.sequence ?? "");
    out.exposedRequestId = requestId;

    step = "DeactivateUser";
    const deactivated = await users.deactivateUser({ userId: added.userId });
    out.steps.push(step);
    out.deactivateSequence = String(deactivated.details?.sequence ?? "");

    step = "ReactivateUser";
    const reactivated = await users.reactivateUser({ userId: added.userId });
    out.steps.push(step);
    out.reactivateSequence = String(reactivated.details?.sequence ?? "");

    step = "GetUserByID";
    const got = await users.getUserByID({ userId: added.userId });
    out.steps.push(step);
    out.gotUsername = got.user?.username;
    out.state = got.user ? UserState[got.user.state] : null;

    step = "ReactivateUser (again)";
    try {
      await users.reactivateUser({ userId: added.userId });
      out.secondReactivate = { unexpectedSuccess: true };
    } catch (err) {
      out.secondReactivate = describeError(err);
    }
    out.steps.push(step);
    out.ok = true;
  } catch (err) {
    out.ok = false;
    out.failedStep = step;
    out.error = describeError(err);
  }
  return out;
}

function publish(result) {
  const pre = document.getElementById("result");
  pre.textContent = JSON.stringify(result);
  pre.dataset.done = "1";
}

async function main() {
  const params = new URLSearchParams(location.hash.slice(1));
  const api = params.get("api");
  const token = params.get("token");
  const run = params.get("run");
  if (!api || !token || !run) {
    throw new Error("the page needs #api=…&token=…&run=… in its URL");
  }
  const bearer = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const grpcWeb = createGrpcWebTransport({ baseUrl: api, interceptors: [bearer] });
  const connect = createConnectTransport({ baseUrl: api, interceptors: [bearer] });
  const flows = {
    grpcWeb: await lifecycle("grpc-web", grpcWeb, `browser-grpcweb-${run}`),
    connect: await lifecycle("connect", connect, `browser-connect-${run}`),
  };
  return { ok: flows.grpcWeb.ok && flows.connect.ok, origin: location.origin, api, flows };
}

main().then(publish, (err) =>
  publish({ ok: false, origin: location.origin, error: describeError(err) }),
);
