// Clients of both services over grpc-web, each call with the session's bearer token, at the
// configured addresses only. A call the services answer with UNAUTHENTICATED calls `onRefused`
// (the page signs out once, whichever view made the call).

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AllocationService } from "./gen/invest/v1/allocation_pb.js";
import { InvestmentService } from "./gen/invest/v1/investment_pb.js";
import type { Config } from "./config.js";
import type { Session } from "./session.js";

export interface Api {
  investments: Client<typeof InvestmentService>;
  allocations: Client<typeof AllocationService>;
}

export function connect(config: Config, session: Session, onRefused: () => void): Api {
  const bearer: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${session.token}`);
    try {
      return await next(req);
    } catch (err) {
      if (ConnectError.from(err).code === Code.Unauthenticated) onRefused();
      throw err;
    }
  };
  const transport = (baseUrl: string) =>
    createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
  return {
    investments: createClient(InvestmentService, transport(config.investmentUrl)),
    allocations: createClient(AllocationService, transport(config.allocationUrl)),
  };
}
