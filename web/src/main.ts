// Starts the page: the configuration, then the sign-in view or the dashboard. A sign-in link
// (`#token=`) opened in this tab while it is already open signs in with that key.

import "./style.css";
import { runDashboard, type Shell } from "./app.js";
import { loadConfig, type Config } from "./config.js";
import { find } from "./dom.js";
import * as session from "./session.js";
import { SignIn } from "./views/signin.js";

const shell: Shell = {
  app: find(document, "#app"),
  link: find(document, "#link"),
  who: find(document, "#who"),
  signOut: find<HTMLButtonElement>(document, "#sign-out"),
  announce: find(document, "#announce"),
};
const signIn = new SignIn(find(document, "#sign-in"));

/** Nothing works without the configuration: say so instead of guessing addresses. */
function showFatal(message: string) {
  const fatal = find(document, "#fatal");
  fatal.textContent = message;
  fatal.hidden = false;
}

/** The one running dashboard's end, so a new sign-in ends the old one first. */
let signOutCurrent: (() => void) | undefined;

function start(config: Config, s: session.Session) {
  signOutCurrent?.();
  signIn.hide();
  session.save(sessionStorage, s);
  let ended = false;
  signOutCurrent = () => {
    if (!ended) shell.signOut.click();
  };
  void runDashboard(config, s, shell, (message) => {
    ended = true;
    signOutCurrent = undefined;
    signIn.show(message, (next) => start(config, next));
  });
}

// The token leaves the address bar first, whatever happens next.
const current = session.load(location, sessionStorage, history);
let config: Config;
try {
  config = await loadConfig((input, init) => fetch(input, init));
} catch (err) {
  showFatal(`The dashboard's configuration could not be read: ${err instanceof Error ? err.message : String(err)}`);
  throw err;
}
window.addEventListener("hashchange", () => {
  if (!/(^#|&)token=/.test(location.hash)) return;
  const next = session.load(location, sessionStorage, history);
  if (next) start(config, next);
});
if (current) start(config, current);
else signIn.show("", (s) => start(config, s));
