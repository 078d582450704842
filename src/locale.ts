/**
 * The caller's preferred language for the IDV pages, as a BCP 47 tag. Intl does the validation
 * (Unicode BCP 47 locale identifiers: "en", "de-CH", "zh-Hant-TW", "en-u-ca-gregory"), so the
 * gateway never carries its own copy of the grammar; the canonical form ("en-US" for "EN-us") is
 * what the platform gets. Tags that ECMA-402 refuses (private-use only "x-…", grandfathered
 * "i-klingon", "en_US") are refused too.
 */

// RFC 5646 §4.4.1 suggests 35 characters covers real tags; extensions can run longer.
const MAX_LOCALE_LENGTH = 64;

/** The canonical tag, or null when the value is not a BCP 47 language tag. */
export function canonicalLocale(value: string): string | null {
  if (value.length === 0 || value.length > MAX_LOCALE_LENGTH) return null;
  try {
    const [canonical] = Intl.getCanonicalLocales(value);
    return canonical ?? null;
  } catch {
    return null;
  }
}
