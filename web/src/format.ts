// How amounts, counts and times read on the page: the currency the service names
// (ListSubscriptionBalances' currency_code), thousands separators, dates in the reader's locale.

export class Format {
  private readonly money: Intl.NumberFormat;
  private readonly count: Intl.NumberFormat;
  private readonly when: Intl.DateTimeFormat;

  constructor(
    readonly currency = "USD",
    locale?: string,
    timeZone?: string,
  ) {
    this.money = new Intl.NumberFormat(locale, { style: "currency", currency });
    this.count = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
    this.when = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone });
  }

  /** "1234.50" -> "$1,234.50". The decimal string is formatted as written: no float. */
  amount(decimal: string): string {
    if (decimal === "") return "";
    // Intl formats a numeric string exactly (ECMA-402 NumberFormat v3).
    return this.money.format(decimal as unknown as number);
  }

  /** 1234n -> "1,234". */
  units(n: bigint | number): string {
    return this.count.format(n);
  }

  /** A protobuf timestamp (or milliseconds) as a date and time. */
  date(t: { seconds: bigint; nanos: number } | number | undefined): string {
    if (t === undefined) return "";
    const ms = typeof t === "number" ? t : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
    return this.when.format(new Date(ms));
  }
}
