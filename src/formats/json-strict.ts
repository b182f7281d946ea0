/**
 * What JSON.parse forgives and the reference safetensors reader (serde_json) does not: a key
 * given twice in one object (JSON.parse keeps the last) and a count written as `32.0` or
 * `3.2e1` (JSON.parse yields the integer 32; serde refuses a float where it expects usize).
 * docs/formats.md, safetensors. Runs over text JSON.parse already accepted, so it only tracks
 * structure, strings and number tokens.
 */

export interface JsonStrictIssues {
  /** The first key repeated within one object, with the path of that object. */
  duplicateKey?: { path: string[]; key: string };
  /** Number tokens with a fraction or exponent, with the key path leading to them. */
  nonIntegerNumbers: { path: string[]; token: string }[];
}

type Frame = { kind: 'object'; keys: Set<string>; key?: string; expectKey: boolean } | { kind: 'array' };

export function strictJsonIssues(text: string): JsonStrictIssues {
  const issues: JsonStrictIssues = { nonIntegerNumbers: [] };
  const stack: Frame[] = [];
  const pathOf = (frames: Frame[] = stack) => frames.flatMap((f) => (f.kind === 'object' && f.key !== undefined ? [f.key] : []));
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.kind === 'object' && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key) && !issues.duplicateKey) issues.duplicateKey = { path: pathOf(stack.slice(0, -1)), key };
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = j + 1;
    } else if (c === '{') {
      stack.push({ kind: 'object', keys: new Set(), expectKey: true });
      i++;
    } else if (c === '[') {
      stack.push({ kind: 'array' });
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      i++;
    } else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top?.kind === 'object') top.expectKey = true;
      i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[0-9eE.+-]/.test(text[j])) j++;
      const token = text.slice(i, j);
      if (/[.eE]/.test(token)) issues.nonIntegerNumbers.push({ path: pathOf(), token });
      i = j;
    } else {
      i++;
    }
  }
  return issues;
}
