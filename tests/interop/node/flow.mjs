// The user-lifecycle flow shared by the Node interop scripts. Each flow takes a connect-es client
// (whatever transport it was built on), runs create → deactivate → reactivate → get → reactivate
// again, checks every step, and returns a plain object of what it saw. A mismatch throws.
import { ConnectError, Code } from "@connectrpc/connect";
import { ErrorDetailSchema } from "@zitadel/proto/zitadel/message_pb.js";
import { UserState as UserStateV2 } from "@zitadel/proto/zitadel/user/v2/user_pb.js";
import { UserState as UserStateV1 } from "@zitadel/proto/zitadel/user_pb.js";

/** The URL and token from the environment (set by tests/interop.rs). */
export function env() {
  const url = process.env.SWITCHYARD_URL;
  const token = process.env.SWITCHYARD_TOKEN;
  if (!url || !token) {
    throw new Error("SWITCHYARD_URL and SWITCHYARD_TOKEN must be set");
  }
  return { url, token };
}

/** A connect interceptor that sets `authorization: Bearer <token>`. */
export function bearer(token) {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

function check(what, actual, expected) {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** A per-run unique user name (no clock: a counter plus the process id). */
let counter = 0;
export function uniqueName(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/** Expects `call` to fail; returns what the error carried. */
async function expectError(what, call) {
  try {
    await call();
  } catch (err) {
    const ce = ConnectError.from(err);
    const details = ce.findDetails(ErrorDetailSchema);
    return {
      code: Code[ce.code],
      rawMessage: ce.rawMessage,
      errorDetail: details.length > 0 ? { id: details[0].id, message: details[0].message } : null,
    };
  }
  throw new Error(`${what}: expected an error, the call succeeded`);
}

function checkPrecondition(what, got, id) {
  check(`${what} code`, got.code, "FailedPrecondition");
  check(`${what} message`, got.rawMessage, `User is not inactive (${id})`);
  if (got.errorDetail === null) {
    throw new Error(`${what}: no zitadel.v1.ErrorDetail in the error's details`);
  }
  check(`${what} ErrorDetail.id`, got.errorDetail.id, id);
  check(`${what} ErrorDetail.message`, got.errorDetail.message, "User is not inactive");
}

/** zitadel.user.v2.UserService: AddHumanUser … ReactivateUser (again). */
export async function v2Flow(users, prefix) {
  const username = uniqueName(prefix);
  const added = await users.addHumanUser({
    username,
    profile: { givenName: "Grace", familyName: "Hopper" },
    email: { email: `${username}@example.com`, verification: { case: "isVerified", value: true } },
    passwordType: { case: "password", value: { password: "Secret123!", changeRequired: false } },
  });
  if (!added.userId) throw new Error("v2 AddHumanUser: empty userId");
  const userId = added.userId;
  const deactivated = await users.deactivateUser({ userId });
  const reactivated = await users.reactivateUser({ userId });
  const got = await users.getUserByID({ userId });
  check("v2 GetUserByID user.userId", got.user?.userId, userId);
  check("v2 GetUserByID user.username", got.user?.username, username);
  check("v2 GetUserByID user.state", got.user?.state, UserStateV2.ACTIVE);
  const human = got.user?.type?.case === "human" ? got.user.type.value : undefined;
  check("v2 GetUserByID human.email.email", human?.email?.email, `${username}@example.com`);
  check("v2 GetUserByID human.email.isVerified", human?.email?.isVerified, true);
  const again = await expectError("v2 second ReactivateUser", () =>
    users.reactivateUser({ userId }),
  );
  checkPrecondition("v2 second ReactivateUser", again, "COMMAND-s5qqcz97hf");
  return {
    userId,
    username,
    addSequence: String(added.details?.sequence ?? ""),
    deactivateSequence: String(deactivated.details?.sequence ?? ""),
    reactivateSequence: String(reactivated.details?.sequence ?? ""),
    state: UserStateV2[got.user.state],
    secondReactivate: again,
  };
}

/** zitadel.management.v1.ManagementService: GetMyOrg, AddHumanUser … ReactivateUser (again). */
export async function v1Flow(mgmt, prefix) {
  const org = await mgmt.getMyOrg({});
  if (!org.org?.id) throw new Error("v1 GetMyOrg: no org id");
  const userName = uniqueName(prefix);
  const added = await mgmt.addHumanUser({
    userName,
    profile: { firstName: "Ada", lastName: "Lovelace" },
    email: { email: `${userName}@example.com`, isEmailVerified: true },
    initialPassword: "Secret123!",
  });
  if (!added.userId) throw new Error("v1 AddHumanUser: empty userId");
  check("v1 AddHumanUser details.resourceOwner", added.details?.resourceOwner, org.org.id);
  const id = added.userId;
  await mgmt.deactivateUser({ id });
  await mgmt.reactivateUser({ id });
  const got = await mgmt.getUserByID({ id });
  check("v1 GetUserByID user.id", got.user?.id, id);
  check("v1 GetUserByID user.userName", got.user?.userName, userName);
  check("v1 GetUserByID user.state", got.user?.state, UserStateV1.ACTIVE);
  const again = await expectError("v1 second ReactivateUser", () => mgmt.reactivateUser({ id }));
  checkPrecondition("v1 second ReactivateUser", again, "COMMAND-6M0sf");
  return {
    orgId: org.org.id,
    userId: id,
    userName,
    state: UserStateV1[got.user.state],
    secondReactivate: again,
  };
}

/** Runs `main`, prints its result as one JSON line, and exits non-zero on any failure. */
export async function run(main) {
  try {
    const result = await main();
    process.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`);
  } catch (err) {
    const detail =
      err instanceof ConnectError
        ? { code: Code[err.code], rawMessage: err.rawMessage, metadata: Object.fromEntries(err.metadata) }
        : {};
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(err?.stack ?? err), ...detail })}\n`);
    process.exitCode = 1;
  }
}
