// Connect GET as connect-node sends it: its Connect transport with `useHttpGet: true` calls a
// method whose descriptor says `idempotency_level = NO_SIDE_EFFECTS` with GET (the message in
// the query), JSON and binary, plain and gzipped (`sendCompression: gzip`, which it puts in the
// `compression` query parameter), and every other method with POST. The descriptors are the
// gateway's own (a FileDescriptorSet file), read at run time: no generated code.
//
// What went on the wire is read from Node's own HTTP client (its `http.client.request.start`
// diagnostics channel: the method and the path with its query), not from the transport's
// interceptors, which see every call before connect-node turns it into a GET.
//
// Env: SWITCHYARD_URL (http://127.0.0.1:PORT), SWITCHYARD_DESCRIPTORS (the descriptor set).
// Prints one JSON line; exits non-zero on any mismatch. tests/gateway.rs checks in the
// gateway's access log that the calls arrived with the HTTP method the script says it used.
import { subscribe } from "node:diagnostics_channel";
import { readFileSync } from "node:fs";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport } from "@connectrpc/connect-node";
import { run } from "./flow.mjs";

const url = process.env.SWITCHYARD_URL;
const descriptors = process.env.SWITCHYARD_DESCRIPTORS;
if (!url || !descriptors) throw new Error("SWITCHYARD_URL and SWITCHYARD_DESCRIPTORS must be set");

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptors)));
const service = registry.getService("conformance.v1.ConformanceService");
const Everything = registry.getMessage("conformance.v1.Everything");
if (!service || !Everything) throw new Error("the descriptor set lacks conformance.v1");

/** Every HTTP/1.1 request Node sent, in order: its method and path (with the query). */
const wire = [];
// Node 20 may publish the same request twice (seen for a GET on a reused socket): count each
// request object once.
const published = new WeakSet();
subscribe("http.client.request.start", ({ request }) => {
  if (published.has(request)) return;
  published.add(request);
  wire.push({ httpMethod: request.method, path: request.path });
});

/** An interceptor that keeps, per call, the answer's headers that matter here. */
function recorder(sent) {
  return (next) => async (req) => {
    const res = await next(req);
    sent.push({
      method: req.method.name,
      contentEncoding: res.header.get("content-encoding"),
      vary: res.header.get("vary"),
    });
    return res;
  };
}

function check(what, actual, expected) {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Lookup (GET) and Echo (POST) over one transport; `tag` marks the messages. */
async function calls(options, tag) {
  const sent = [];
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    useHttpGet: true,
    interceptors: [recorder(sent)],
    ...options,
  });
  const client = createClient(service, transport);
  const first = wire.length;
  // Large enough (about 3 KiB) that the answer is worth compressing.
  const s = `${tag}-${"x".repeat(3000)}`;
  const looked = await client.lookup(create(Everything, { s, i64: 7n }));
  check(`${tag} Lookup s`, looked.s, s);
  check(`${tag} Lookup i64`, looked.i64, 7n);
  const echoed = await client.echo(create(Everything, { s: `${tag}-echo` }));
  check(`${tag} Echo s`, echoed.s, `${tag}-echo`);
  const requests = wire.slice(first);
  check(`${tag} HTTP requests ${JSON.stringify(requests)}`, requests.length, 2);
  const [lookup, echo] = requests;
  check(`${tag} Lookup HTTP method`, lookup.httpMethod, "GET");
  check(`${tag} Lookup path`, lookup.path.split("?")[0], "/conformance.v1.ConformanceService/Lookup");
  check(`${tag} Lookup Vary`, sent[0].vary, "accept-encoding");
  check(`${tag} Echo HTTP method`, echo.httpMethod, "POST");
  return { tag, requests, answers: sent };
}

run(async () => ({
  client: "@connectrpc/connect-node createConnectTransport useHttpGet",
  calls: [
    await calls({ useBinaryFormat: false }, "get-json"),
    await calls({ useBinaryFormat: true }, "get-proto"),
    await calls(
      {
        useBinaryFormat: true,
        sendCompression: compressionGzip,
        acceptCompression: [compressionGzip],
        compressMinBytes: 0,
      },
      "get-gzip",
    ),
  ],
}));
