// Maps a position in text decoded from UTF-8 back to a byte offset, exactly, whatever the bytes.

/**
 * The number of leading bytes of `bytes` whose UTF-8 decoding (as `Buffer#toString('utf8')` does
 * it: the WHATWG decoder, one U+FFFD per maximal invalid subpart) holds the first `units` UTF-16
 * code units. Replacement characters stand for 1 to 3 bytes, so re-encoding the decoded text
 * cannot give this number. A position between the two code units of a surrogate pair rounds up
 * to the end of its 4-byte character. Runs in JavaScript over the bytes up to that point.
 */
export function utf8ByteOffset(bytes: Uint8Array, units: number): number {
  const len = bytes.length;
  let i = 0;
  let seen = 0;
  while (seen < units && i < len) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      seen++;
      continue;
    }
    let need: number;
    let lower = 0x80;
    let upper = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lower = 0xa0;
      else if (b === 0xed) upper = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lower = 0x90;
      else if (b === 0xf4) upper = 0x8f;
    } else {
      // Never the start of a sequence: one U+FFFD for this byte.
      i++;
      seen++;
      continue;
    }
    let j = i + 1;
    while (need > 0 && j < len) {
      const c = bytes[j]!;
      if (c < lower || c > upper) break;
      lower = 0x80;
      upper = 0xbf;
      j++;
      need--;
    }
    // A complete 4-byte sequence is two code units; anything cut short is one U+FFFD, and the
    // byte that cut it starts the next character.
    seen += need === 0 && j - i === 4 ? 2 : 1;
    i = j;
  }
  return i;
}
