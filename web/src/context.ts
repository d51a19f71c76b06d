// What every signed-in view shares: the clients, how to format, deal names, the session's
// lifetime, and the page's one live region for announcements.

import type { Api } from "./api.js";
import type { DealNames } from "./deals.js";
import type { Problem } from "./errors.js";
import type { Format } from "./format.js";

export interface Context {
  api: Api;
  format: Format;
  deals: DealNames;
  /** Aborted when the user signs out or the token is refused. */
  signal: AbortSignal;
  /** A failed call: a refused token signs out; anything else is the view's to show. */
  failed(problem: Problem): void;
  /** Says something to screen-reader users without moving the focus. */
  announce(text: string): void;
}
