// The sign-in view: an access key pasted (or brought by a link, see session.ts), checked to be
// a JWT before it is used; the services judge it.

import { find } from "../dom.js";
import * as session from "../session.js";

export class SignIn {
  private readonly message: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly token: HTMLTextAreaElement;

  constructor(private readonly root: HTMLElement) {
    this.message = find(root, ".error");
    this.form = find<HTMLFormElement>(root, "form");
    this.token = find<HTMLTextAreaElement>(root, "textarea");
  }

  /** Shows the form with `message` (once), and calls `onToken` with a plausible key. */
  show(message: string, onToken: (s: session.Session) => void) {
    this.root.hidden = false;
    this.message.textContent = message;
    this.token.value = "";
    this.form.onsubmit = (event) => {
      event.preventDefault();
      const token = this.token.value.trim();
      if (!session.claims(token)) {
        this.message.textContent = "That is not a valid access key: paste the whole key you were given.";
        this.token.setAttribute("aria-invalid", "true");
        this.token.focus();
        return;
      }
      this.token.removeAttribute("aria-invalid");
      onToken({ token });
    };
    this.token.focus();
  }

  hide() {
    this.root.hidden = true;
    this.message.textContent = "";
  }
}
