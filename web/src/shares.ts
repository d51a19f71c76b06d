// The shares field: digits only (Number() would take "1e3", "0x10" or " 1.0 "), at least 1, and
// no more than the units the page shows as available. The server stays the judge.

export type SharesCheck = { shares: bigint } | { error: string };

/** The most shares one investment may ask for (the API's limit). */
export const MAX_SHARES = 1_000_000_000n;

export function checkShares(text: string, available?: bigint): SharesCheck {
  const t = text.trim();
  if (t === "") return { error: "Enter how many shares to buy." };
  if (!/^\d+$/.test(t)) return { error: "Enter a whole number of shares, digits only." };
  const shares = BigInt(t);
  if (shares < 1n) return { error: "Buy at least 1 share." };
  if (shares > MAX_SHARES) return { error: "That is more shares than one investment can buy." };
  if (available !== undefined && shares > available) {
    return {
      error:
        available === 0n
          ? "No shares of this deal are available now."
          : `Only ${available} ${available === 1n ? "share is" : "shares are"} available in this deal.`,
    };
  }
  return { shares };
}
