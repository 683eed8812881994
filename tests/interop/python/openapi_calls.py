"""Calls switchyard's REST API driven by its own OpenAPI document (GET /openapi.json), as a
generated client would: each call is named by its operationId; its path, path parameters and
header parameters come from the document; the request body is validated against the
operation's requestBody schema before it is sent and the 200 answer against its response schema
(jsonschema, Draft 2020-12: OpenAPI 3.1's dialect). The document itself is validated first with
openapi-spec-validator.

One call or more per operation family: management v1 reads (GET with a path parameter, the org
header), creations (POST body "*"), state changes (POST with a path parameter and a body without
it), searches, PUT-free deletes with one and two path parameters, machine users and tokens; user
v2 creation, read, search, state change and delete. `x-zitadel-orgid` is shown to matter: a user
created in a second org is found with the header and not without it.

Env: SWITCHYARD_URL, SWITCHYARD_TOKEN. Prints one JSON line {"ok": true, "calls": N, ...};
exits non-zero on any mismatch.
"""

import json
import os
import re
import sys
import traceback
import uuid

import jsonschema
import requests
from openapi_spec_validator import validate

BASE = os.environ["SWITCHYARD_URL"].rstrip("/")
TOKEN = os.environ["SWITCHYARD_TOKEN"]


class DocClient:
    def __init__(self, doc):
        self.doc = doc
        self.ops = {}
        for path, item in doc["paths"].items():
            for method, op in item.items():
                self.ops[op["operationId"]] = (method.upper(), path, op)
        server = doc["servers"][0]["url"]
        self.root = BASE if server == "/" else server.rstrip("/")
        self.calls = 0

    def schema_validator(self, schema):
        # $refs point into #/components/schemas: carry the components along in the root.
        root = dict(schema)
        root["components"] = self.doc["components"]
        return jsonschema.Draft202012Validator(root)

    def call(self, op_id, path_params=None, body=None, headers=None, want=200):
        method, template, op = self.ops[op_id]
        params = op.get("parameters", [])
        declared_path = {p["name"] for p in params if p["in"] == "path"}
        declared_headers = {p["name"] for p in params if p["in"] == "header"}
        path_params = path_params or {}
        if set(path_params) != declared_path:
            raise AssertionError(f"{op_id}: path parameters {sorted(path_params)} vs {sorted(declared_path)}")
        path = re.sub(r"\{([^}]+)\}", lambda m: path_params[m.group(1)], template)
        sent_headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        for name, value in (headers or {}).items():
            if name not in declared_headers:
                raise AssertionError(f"{op_id}: header {name} is not a declared parameter")
            sent_headers[name] = value
        data = None
        if "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            body = {} if body is None else body
            self.schema_validator(schema).validate(body)
            props = schema.get("properties", {})
            for name in declared_path:
                if name in props:
                    raise AssertionError(f"{op_id}: body schema repeats path field {name}")
            data = json.dumps(body)
            sent_headers["Content-Type"] = "application/json"
        elif body is not None:
            raise AssertionError(f"{op_id}: the document declares no request body")
        response = requests.request(method, self.root + path, headers=sent_headers, data=data, timeout=10)
        self.calls += 1
        payload = response.json() if response.content else None
        if response.status_code != want:
            raise AssertionError(f"{op_id} {method} {path}: {response.status_code} {payload}, want {want}")
        if want == 200:
            schema = op["responses"]["200"]["content"]["application/json"]["schema"]
            self.schema_validator(schema).validate(payload)
        return payload


def main():
    doc = requests.get(BASE + "/openapi.json", timeout=10).json()
    validate(doc)
    client = DocClient(doc)
    suffix = uuid.uuid4().hex[:8]

    # Every management v1 operation declares the org header; no v2 one does.
    for op_id, (_, _, op) in client.ops.items():
        has = any(p["in"] == "header" and p["name"] == "x-zitadel-orgid" for p in op.get("parameters", []))
        if has != op_id.startswith("ManagementService_"):
            raise AssertionError(f"{op_id}: x-zitadel-orgid declared={has}")

    my_org = client.call("ManagementService_GetMyOrg")["org"]["id"]
    human = client.call(
        "ManagementService_AddHumanUser",
        body={
            "userName": f"doc-{suffix}",
            "profile": {"firstName": "Doc", "lastName": "Driven"},
            "email": {"email": f"doc-{suffix}@example.com", "isEmailVerified": True},
            "initialPassword": "Secret123!",
        },
    )["userId"]
    got = client.call("ManagementService_GetUserByID", {"id": human}, headers={"x-zitadel-orgid": my_org})
    assert got["user"]["id"] == human, got
    client.call("ManagementService_DeactivateUser", {"id": human}, body={})
    client.call("ManagementService_ReactivateUser", {"id": human}, body={})
    client.call("ManagementService_LockUser", {"id": human}, body={})
    client.call("ManagementService_UnlockUser", {"id": human}, body={})
    found = client.call(
        "ManagementService_ListUsers",
        body={"queries": [{"userNameQuery": {"userName": f"doc-{suffix}", "method": "TEXT_QUERY_METHOD_EQUALS"}}]},
    )
    assert [u["id"] for u in found.get("result", [])] == [human], found
    client.call("ManagementService_ListUserChanges", {"user_id": human}, body={})

    machine = client.call(
        "ManagementService_AddMachineUser",
        body={"userName": f"bot-{suffix}", "name": "Doc bot"},
    )["userId"]
    token = client.call("ManagementService_AddPersonalAccessToken", {"user_id": machine}, body={})["tokenId"]
    listed = client.call("ManagementService_ListPersonalAccessTokens", {"user_id": machine}, body={})
    assert [t["id"] for t in listed.get("result", [])] == [token], listed
    client.call("ManagementService_RemovePersonalAccessToken", {"user_id": machine, "token_id": token})
    client.call("ManagementService_ListOrgMembers", body={})

    # The org header selects the org: a user made in a second org is found only with it.
    other = client.call("ManagementService_AddOrg", body={"name": f"Doc Org {suffix}"})["id"]
    there = client.call(
        "ManagementService_AddHumanUser",
        headers={"x-zitadel-orgid": other},
        body={
            "userName": f"there-{suffix}",
            "profile": {"firstName": "Over", "lastName": "There"},
            "email": {"email": f"there-{suffix}@example.com", "isEmailVerified": True},
        },
    )["userId"]
    client.call("ManagementService_GetUserByID", {"id": there}, headers={"x-zitadel-orgid": other})
    client.call("ManagementService_GetUserByID", {"id": there}, want=404)
    client.call("ManagementService_RemoveUser", {"id": there}, headers={"x-zitadel-orgid": other})

    v2 = client.call(
        "UserService_AddHumanUser",
        body={
            "username": f"v2doc-{suffix}",
            "profile": {"givenName": "Doc", "familyName": "V2"},
            "email": {"email": f"v2doc-{suffix}@example.com", "isVerified": True},
            "password": {"password": "Secret123!"},
        },
    )["userId"]
    assert client.call("UserService_GetUserByID", {"user_id": v2})["user"]["userId"] == v2
    client.call("UserService_ListUsers", body={})
    client.call("UserService_DeactivateUser", {"user_id": v2}, body={})
    client.call("UserService_ReactivateUser", {"user_id": v2}, body={})
    client.call("UserService_DeleteUser", {"user_id": v2})
    client.call("ManagementService_RemoveUser", {"id": human})

    print(json.dumps({"ok": True, "calls": client.calls, "operations": len(client.ops), "title": doc["info"]["title"]}))


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - the test prints whatever went wrong
        traceback.print_exc()
        print(json.dumps({"ok": False}))
        sys.exit(1)
