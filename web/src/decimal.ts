// Money as the API sends it (decimal strings with two places) in exact integer cents: a cost
// preview or a portfolio total is never a float.

const MONEY = /^(-?)(\d+)(?:\.(\d{1,2}))?$/;

/** "12.5" -> 1250n; undefined for anything that is not a decimal with at most two places. */
export function toCents(amount: string): bigint | undefined {
  const m = MONEY.exec(amount.trim());
  if (!m) return undefined;
  const cents = BigInt(m[2]) * 100n + BigInt((m[3] ?? "").padEnd(2, "0"));
  return m[1] === "-" ? -cents : cents;
}

/** 1250n -> "12.50". */
export function fromCents(cents: bigint): string {
  const sign = cents < 0n ? "-" : "";
  const abs = cents < 0n ? -cents : cents;
  return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, "0")}`;
}

/** shares x price, exactly; undefined when the price is not a decimal. */
export function cost(shares: bigint, price: string): string | undefined {
  const cents = toCents(price);
  return cents === undefined ? undefined : fromCents(cents * shares);
}

/** `part` of `whole` in percent with one decimal ("33.3"), exactly rounded half up. */
export function percent(part: bigint, whole: bigint): string {
  if (whole <= 0n) return "0.0";
  const tenths = (part * 2000n + whole) / (2n * whole);
  return `${tenths / 10n}.${tenths % 10n}`;
}
