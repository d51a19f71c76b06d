// Unary grpc-web calls made from the test itself, as another client (or an operator's tool)
// would make them: the protobuf written out field by field, the answer checked for grpc-status 0.

import http from "node:http";
import https from "node:https";

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

/** One protobuf field: a string (length-delimited) or an integer (varint). */
export function field(number, value) {
  if (typeof value === "string") {
    const bytes = Buffer.from(value);
    return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
  }
  return Buffer.concat([varint(number << 3), varint(value)]);
}

/** Calls `method` (e.g. "invest.v1.AllocationService/ReverseAllocation") at `serviceOrigin` with
 * `fields`, as a page at `pageOrigin` would (CORS); `ca` for HTTPS. Resolves to the raw answer. */
export async function unary({ serviceOrigin, method, bearer, pageOrigin, ca, fields }) {
  const msg = Buffer.concat(fields);
  const header = Buffer.alloc(5);
  header.writeUInt32BE(msg.length, 1);
  const frame = Buffer.concat([header, msg]);
  const url = new URL(`${serviceOrigin}/${method}`);
  const body = await new Promise((resolve, reject) => {
    const req = (url.protocol === "https:" ? https : http).request(
      url,
      {
        method: "POST",
        ca,
        headers: {
          "content-type": "application/grpc-web+proto",
          "x-grpc-web": "1",
          authorization: `Bearer ${bearer}`,
          origin: pageOrigin,
          "content-length": frame.length,
        },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks).toString("latin1")));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(frame);
  });
  if (!/grpc-status:\s*0/.test(body)) throw new Error(`${method}: ${JSON.stringify(body.slice(-200))}`);
  return body;
}
