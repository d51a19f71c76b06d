// Requests the test makes itself rather than the page: a page's request delivered from here (its
// answer then withheld or delayed), and grpc-web calls as another client or an operator's tool.

import { randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { field, unary } from "./grpcweb.mjs";

/** The calls for a page at `origin` using the services at `investOrigin` and `allocOrigin`;
 * `ca` for HTTPS. */
export function elsewhere({ origin, investOrigin, allocOrigin, ca }) {
  return {
    /** Sends a request the page made to the real service from here, and reads the whole answer
     * (status, headers, body): the service acts on it whatever the page is then told. */
    async deliverOnly(request) {
      const url = new URL(request.url());
      const headers = { ...request.headers() };
      for (const h of ["host", "connection", "content-length"]) delete headers[h];
      const body = request.postDataBuffer() ?? Buffer.alloc(0);
      return new Promise((resolve, reject) => {
        const req = (url.protocol === "https:" ? https : http).request(
          url,
          { method: request.method(), headers: { ...headers, "content-length": body.length }, ca },
          (res) => {
            const chunks = [];
            res.on("data", (c) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    },

    /** CreateInvestment over grpc-web from here, as another client would (subscription_id = 1,
     * deal_id = 2, shares = 3). */
    createElsewhere: (bearer, subscriptionId, dealId, shares) =>
      unary({
        serviceOrigin: investOrigin,
        method: "invest.v1.InvestmentService/CreateInvestment",
        bearer,
        pageOrigin: origin,
        ca,
        fields: [field(1, subscriptionId), field(2, dealId), field(3, shares)],
      }),

    /** ReverseAllocation as an operator's tool would call it (investment_id = 1, reason = 2,
     * request_id = 3). */
    reverseElsewhere: (bearer, investmentId, reason) =>
      unary({
        serviceOrigin: allocOrigin,
        method: "invest.v1.AllocationService/ReverseAllocation",
        bearer,
        pageOrigin: origin,
        ca,
        fields: [field(1, investmentId), field(2, reason), field(3, randomUUID())],
      }),
  };
}
