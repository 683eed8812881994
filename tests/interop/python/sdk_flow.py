"""ZITADEL's Python SDK (PyPI `zitadel-client`) against switchyard.

The SDK speaks the Connect protocol with JSON bodies to the v2 API: every call is
`POST {host}/zitadel.user.v2.UserService/<Method>` with `Content-Type: application/json`,
`Accept: application/json` and `Authorization: Bearer <PAT>`; a non-2xx answer raises
`zitadel_client.ApiError(code=<HTTP status>, response_body=<parsed JSON>)`.

Flow, with the SDK's own client classes and PAT authentication (`Zitadel.with_access_token`):
AddHumanUser (password, verified email) -> DeactivateUser -> ReactivateUser -> GetUserByID (state
USER_STATE_ACTIVE) -> ReactivateUser again, which must fail with Connect code failed_precondition,
HTTP 400, ZITADEL's message and a zitadel.v1.ErrorDetail detail.

Env: SWITCHYARD_URL (http://127.0.0.1:PORT), SWITCHYARD_TOKEN (a personal access token).
Prints one JSON line; exits non-zero on any mismatch.
"""

import json
import os
import sys
import traceback
from urllib.parse import urlsplit

from zitadel_client import ApiError, Zitadel
from zitadel_client.models import (
    UserServiceAddHumanUserRequest,
    UserServiceDeactivateUserRequest,
    UserServiceGetUserByIDRequest,
    UserServicePassword,
    UserServiceReactivateUserRequest,
    UserServiceSetHumanEmail,
    UserServiceSetHumanProfile,
    UserServiceUserState,
)


class Mismatch(Exception):
    pass


def check(what, actual, expected):
    if actual != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")


def record_requests(client, log):
    """Observes (does not change) what the SDK sends: wraps its REST client's request()."""
    rest = client.users.api_client.rest_client
    inner = rest.request

    def request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        response = inner(method, url, headers=headers, body=body, post_params=post_params,
                         _request_timeout=_request_timeout)
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        log.append({
            "method": method,
            "path": urlsplit(url).path,
            "contentType": headers.get("content-type"),
            "accept": headers.get("accept"),
            "bearer": headers.get("authorization", "").startswith("Bearer "),
            "status": response.status,
        })
        return response

    rest.request = request


def main():
    url = os.environ.get("SWITCHYARD_URL")
    token = os.environ.get("SWITCHYARD_TOKEN")
    if not url or not token:
        raise Mismatch("SWITCHYARD_URL and SWITCHYARD_TOKEN must be set")

    requests = []
    with Zitadel.with_access_token(url, token) as client:
        record_requests(client, requests)
        username = f"py-sdk-{os.getpid()}"
        added = client.users.add_human_user(UserServiceAddHumanUserRequest(
            username=username,
            profile=UserServiceSetHumanProfile(given_name="Guido", family_name="van Rossum"),
            email=UserServiceSetHumanEmail(email=f"{username}@example.com", is_verified=True),
            password=UserServicePassword(password="Secret123!", change_required=False),
        ))
        if not added.user_id:
            raise Mismatch("AddHumanUser: empty userId")
        user_id = added.user_id
        deactivated = client.users.deactivate_user(UserServiceDeactivateUserRequest(user_id=user_id))
        reactivated = client.users.reactivate_user(UserServiceReactivateUserRequest(user_id=user_id))
        got = client.users.get_user_by_id(UserServiceGetUserByIDRequest(user_id=user_id))
        user = got.user
        check("GetUserByID user.userId", user and user.user_id, user_id)
        check("GetUserByID user.username", user.username, username)
        check("GetUserByID user.state", user.state, UserServiceUserState.USER_STATE_ACTIVE)
        check("GetUserByID human.email.email", user.human and user.human.email and user.human.email.email,
              f"{username}@example.com")
        check("GetUserByID human.email.isVerified", user.human.email.is_verified, True)

        try:
            client.users.reactivate_user(UserServiceReactivateUserRequest(user_id=user_id))
        except ApiError as err:
            second = {"httpStatus": err.code, "body": err.response_body}
        else:
            raise Mismatch("second ReactivateUser: expected an error, the call succeeded")

    body = second["body"]
    check("second ReactivateUser HTTP status", second["httpStatus"], 400)
    if not isinstance(body, dict):
        raise Mismatch(f"second ReactivateUser: body is not a JSON object: {body!r}")
    check("second ReactivateUser code", body.get("code"), "failed_precondition")
    check("second ReactivateUser message", body.get("message"),
          "User is not inactive (COMMAND-s5qqcz97hf)")
    details = body.get("details") or []
    if not any(d.get("type") == "zitadel.v1.ErrorDetail" for d in details if isinstance(d, dict)):
        raise Mismatch(f"second ReactivateUser: no zitadel.v1.ErrorDetail detail in {details!r}")

    return {
        "client": "zitadel-client (Python) Zitadel.with_access_token",
        "userId": user_id,
        "username": username,
        "addSequence": str(added.details.sequence) if added.details else None,
        "deactivateSequence": str(deactivated.details.sequence) if deactivated.details else None,
        "reactivateSequence": str(reactivated.details.sequence) if reactivated.details else None,
        "state": user.state.value,
        "secondReactivate": second,
        "requests": requests,
    }


if __name__ == "__main__":
    try:
        result = main()
    except Exception as err:  # noqa: BLE001 -- report anything as one JSON line
        extra = {}
        if isinstance(err, ApiError):
            extra = {"httpStatus": err.code, "body": err.response_body}
        print(json.dumps({"ok": False, "error": "".join(traceback.format_exception(err)), **extra}))
        sys.exit(1)
    print(json.dumps({"ok": True, **result}, default=str))
